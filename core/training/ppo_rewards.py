"""What PPO rewards an answer with: the reward model, the clinicians' judgements, consistency.

The score of an answer (one number per sequence, put on its last token by ``ppo_math``):

    w_rm * z(reward model)                      every prompt
  + w_clinical * clinical_reward(verdict, J)    only prompts a clinician judged (J, from a rating)
  - contradiction_penalty                       when the reason contradicts the verdict word
  + reward_fn                                   an optional scripted extra (tests, experiments)

then normalised with running moments over all steps (``RunningMoments``), so the KL coefficient
and the value head always see rewards of unit scale. ``z(reward model)`` is the reward model's
score standardised by its own running moments first: a Bradley-Terry score has no fixed scale,
and without this its scale, not the weights, would decide how it weighs against the plan's
clinical reward (about +-3).

The clinical reward reads a ``Judgement`` (a clinician's true verdict and severity) and never a
case's ground-truth fields (``error_type``, ``severity``, ``meta``): a real workspace has none,
and the demo must not be easier than real life. A prompt no clinician judged gets the reward
model's score alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.cases.records import Case
from core.clinical.rewards import clinical_reward
from core.clinical.verdicts import Label, parse_verdict
from core.training.judgement import Judgement
from core.training.ppo_math import RunningMoments

if TYPE_CHECKING:
    from core.training.ppo_config import PPOConfig
    from core.training.reward import RewardModel

RewardFn = Callable[[Sequence[Case], Sequence[str]], list[float]]


# What a reason says, in the words verdicts and clinicians use (demo verdicts, the heuristic's,
# the simulated reviewers' rationales). An "error" cue means "something is wrong here".
_ERROR_CUES = re.compile(
    r"\b(does not|doesn't|do not|did not|cannot) (show|fit|match|support|demonstrate)\b"
    r"|\bnot (an? )?(accepted|indicated|appropriate|supported|shown|visible|seen|consistent)\b"
    r"|\bno (evidence|sign|signs)\b|\bunsupported\b|\binappropriate\b|\bcontraindicated\b"
    r"|\bmismatch(es|ed)?\b|\bincorrect\b|\bwrong\b|\bshould not\b|\bnot recommended\b"
    r"|\bunrelated\b|\bmissing\b|\babsent\b",
    re.IGNORECASE,
)
# Only cues that say "the stated treatment is right": an ERROR reason may well name what the
# image shows or what would be indicated instead.
_CORRECT_CUES = re.compile(
    r"\b(fits|matches|consistent with|appropriate|accepted|standard of care)\b", re.IGNORECASE
)
_NEGATION = re.compile(r"\b(not|no|never|without|\w+n't)\s+(\w+\s+){0,2}$", re.IGNORECASE)


def reason_contradicts(text: str) -> bool:
    """Whether an answer's reason argues against its own verdict word.

    ``CORRECT - the image does not show X`` and ``CORRECT - X is not an accepted treatment`` say
    there is an error; ``ERROR - X fits Y`` says there is none. An answer with no reason, no cue
    or no verdict word (UNPARSEABLE: the clinical reward already counts it wrong) does not
    contradict itself.
    """
    label, reason = parse_verdict(text)
    if label is Label.UNPARSEABLE or not reason:
        return False
    says_error = bool(_ERROR_CUES.search(reason))
    if label is Label.CORRECT:
        return says_error
    if says_error:
        return False
    for cue in _CORRECT_CUES.finditer(reason):
        if not _NEGATION.search(reason[: cue.start()]):
            return True
    return False


@dataclass(frozen=True)
class ScoredBatch:
    """One rollout batch's rewards: ``score`` is what PPO optimises (normalised); the rest is
    reported. ``clinical`` is None where no clinician judged the prompt."""

    score: list[float]
    raw: list[float]
    reward_model: list[float] | None
    clinical: list[float | None]
    contradicts: list[bool]

    def stats(self) -> dict[str, float]:
        """Means for the history: ``reward`` (raw score), ``clinical`` (over judged answers,
        absent when none was judged), ``judged``, ``contradictions``, ``rm_score``."""
        n = len(self.raw)
        out = {
            "reward": sum(self.raw) / n,
            "judged": float(sum(c is not None for c in self.clinical)),
            "contradictions": sum(self.contradicts) / n,
        }
        judged = [c for c in self.clinical if c is not None]
        if judged:
            out["clinical"] = sum(judged) / len(judged)
        if self.reward_model is not None:
            out["rm_score"] = sum(self.reward_model) / n
        return out


class RewardComposer:
    """Scores answers for PPO (see the module docstring). Keeps the running moments, so one
    instance lives as long as one PPO run.

    Args:
        config: the weights, the penalty and whether to normalise.
        reward_model: the learned reward (optional).
        judgements: ``case_id -> Judgement`` from the clinicians' ratings (optional).
        reward_fn: an extra ``(cases, texts) -> scores`` (optional).
    """

    def __init__(
        self,
        config: PPOConfig,
        reward_model: RewardModel | None = None,
        judgements: Mapping[str, Judgement] | None = None,
        reward_fn: RewardFn | None = None,
    ) -> None:
        self.config = config
        self.reward_model = reward_model
        self.judgements = dict(judgements or {})
        self.reward_fn = reward_fn
        self.rm_moments = RunningMoments()
        self.moments = RunningMoments()

    def clinical(self, cases: Sequence[Case], texts: Sequence[str]) -> list[float | None]:
        """The plan's clinical reward of each answer where a clinician judged its case."""
        out: list[float | None] = []
        for case, text in zip(cases, texts, strict=True):
            judged = self.judgements.get(case.case_id)
            label = parse_verdict(text)[0]
            # clinical_reward reads .is_error, .severity and .case_id, which a Judgement has.
            out.append(None if judged is None else clinical_reward(label, judged))  # type: ignore[arg-type]
        return out

    def __call__(self, cases: Sequence[Case], texts: Sequence[str]) -> ScoredBatch:
        cfg = self.config
        n = len(cases)
        raw = [0.0] * n
        rm: list[float] | None = None
        if self.reward_model is not None and cfg.reward_model_weight:
            rm = self.reward_model.score(cases, texts)
            self.rm_moments.update(rm)
            z = self.rm_moments.normalise(rm) if cfg.normalize_rewards else rm
            raw = [r + cfg.reward_model_weight * v for r, v in zip(raw, z, strict=True)]
        clinical: list[float | None] = [None] * n
        if cfg.clinical_weight:
            clinical = self.clinical(cases, texts)
        raw = [r + cfg.clinical_weight * (c or 0.0) for r, c in zip(raw, clinical, strict=True)]
        contradicts = [reason_contradicts(t) for t in texts]
        raw = [r - cfg.contradiction_penalty * k for r, k in zip(raw, contradicts, strict=True)]
        if self.reward_fn is not None:
            extra = list(self.reward_fn(cases, texts))
            raw = [r + e for r, e in zip(raw, extra, strict=True)]
        score = list(raw)
        if cfg.normalize_rewards:
            self.moments.update(raw)
            score = self.moments.normalise(raw)
        return ScoredBatch(score, raw, rm, clinical, contradicts)


def judgements_from(items: Sequence[Any]) -> dict[str, Judgement]:
    """``case_id -> Judgement`` from objects with ``case_id``, ``true_label`` and ``severity``
    attributes (ratings, simulated ratings), the last one per case winning."""
    out: dict[str, Judgement] = {}
    for item in items:
        case_id = getattr(item, "case_id", None) or item.case.case_id
        label = str(item.true_label)
        severity = getattr(item, "severity", None) if label == Label.ERROR else None
        out[case_id] = Judgement(case_id, label, severity)
    return out
