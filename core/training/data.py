"""What the trainers learn from, read from files, and nothing a real workspace does not have.

Core trains from files, never from the database (docs/architecture.md). The store exports the standing
ratings twice, by one rule (``feedback_db.pairs``): ``expert_feedback.jsonl`` (TRL preference
pairs) and the KTO file of the same ratings (one row per rated answer, desirable or not, so a tie
or a "both wrong" without a rationale, which make no pair, are there too). Every row carries the
case's own fields (``finding``, ``treatment``, ``modality``) and the rating (``true_label``,
``severity``, ``preference``, ``rationale``, the two answers).

**Ground truth is never read.** A case's ``error_type``, ``severity`` (of the case) and ``meta``
are ground truth a real workspace does not have, and the demo must not be easier than real life:
every case handed to a trainer is ``training_case(case)`` (those fields emptied), and what the
trainers know of the truth is the clinicians' ``Judgement`` of a case (their true verdict and
severity, from the ratings). The export's ``error_type`` column is ignored.

**The prompt is built from the case's fields**, never re-parsed from the prompt text: the row's
``finding``/``treatment`` (or the workspace's case, when the caller passes ``cases``), so a
multi-line finding reaches the trainer whole. Only a foreign file without those fields falls back
to reading the ``case_text`` prompt (``parse_case_text``, which keeps multi-line fields too).

What ``load_training_data`` derives (``TrainingData``):

- ``judgements``: per case, the clinicians' verdict. Reviewers who disagree on a case's verdict
  leave it out (no judgement, no gold answer, no pair), reported; when they agree on ERROR with
  different severities the most severe one is kept (the clinically careful reading).
- ``pairs``: the rated preference pairs (TRL file), on judged cases.
- ``gold``: the answers clinicians marked desirable (their own rationale, or a model verdict they
  confirmed), one per (case, text): SFT's examples.
- ``flipped``: for every gold answer, the same reason with the other verdict word as the rejected
  answer (``flip_verdict``), so the reward model must judge the verdict, not the wording. Only
  right answers are flipped (flipping a wrong answer would make a "right" answer whose reason
  contradicts its verdict word).
- ``prompts``: the judged cases plus any extra prompt cases (e.g. the unrated review cases), for
  PPO; a prompt no clinician judged is scored by the reward model alone.
- ``left_out``: what was not used, and why; ``summary()`` says all of it in words before training.

Ratings on held-out cases (``heldout_ids``: val and test) are never used: the evaluation and the
safety gate must not see a case the model was trained on.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.cases.records import Case
from core.clinical.prompts import MODALITY_NAMES
from core.clinical.verdicts import Label, parse_verdict
from core.training.judgement import Judgement

REWRITE_SOURCES = frozenset({"rationale", "reviewer", "clinician", "expert"})
SEVERITY_ORDER = ("moderate", "high", "critical")  # least to most severe
_MODALITY_BY_NAME = {v.lower(): k for k, v in MODALITY_NAMES.items()}
_CASE_TEXT = re.compile(
    r"\AModality:[ \t]*(?P<modality>[^\n]*)\nClinical Finding:[ \t]?(?P<finding>.*)"
    r"\nTreatment:[ \t]?(?P<treatment>.*)\Z",
    re.DOTALL,
)
_WORD = re.compile(r"(?i)\b(error|correct)\b")

__all__ = [
    "FeedbackFileError",
    "Judgement",
    "PreferencePair",
    "RatedCase",
    "TrainingData",
    "balanced",
    "flip_verdict",
    "load_training_data",
    "parse_case_text",
    "read_cases",
    "read_feedback",
    "read_ratings",
    "sft_examples",
    "split_pairs",
    "training_case",
    "unique_cases",
    "write_cases",
    "write_feedback",
    "write_ratings",
]


class FeedbackFileError(ValueError):
    """A feedback or case file cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class PreferencePair:
    """One (chosen, rejected) pair of answers for a case.

    Attributes:
        case: the case as the trainers see it (``training_case``: no ground truth).
        chosen: the preferred answer text (``ERROR - ...`` / ``CORRECT - ...``).
        rejected: the other one.
        margin: how much more the chosen one is preferred, where the clinician said so.
        rewritten: the chosen text is the clinician's own rationale (a gold answer for SFT).
        reviewer: who rated it.
        true_label: the clinician's true verdict (``ERROR`` | ``CORRECT``).
        severity: the clinician's severity for an error.
        kind: ``rated`` (a clinician's A/B rating) or ``flipped`` (a gold answer over the same
            reason with the other verdict word, derived from the clinician's true verdict).
        line: the line number in the file, for messages (0 for derived pairs).
    """

    case: Case
    chosen: str
    rejected: str
    margin: float | None = None
    rewritten: bool = False
    reviewer: str | None = None
    true_label: str | None = None
    severity: str | None = None
    kind: str = "rated"
    line: int = 0


@dataclass(frozen=True)
class RatedCase:
    """One clinician's standing rating of a case: the answers they saw and what they said.

    ``answers`` holds every judged text with ``True`` where the clinician found it desirable
    (the rule of ``feedback_db.pairs.judgements``); a rationale is one of them, marked in
    ``rewritten``.
    """

    case: Case
    reviewer: str
    rated_at: str | None
    true_label: str
    severity: str | None
    answers: tuple[tuple[str, bool], ...]
    rewritten: frozenset[str] = frozenset()
    preference: str | None = None


def training_case(case: Case) -> Case:
    """``case`` as every trainer sees it: its ground-truth fields (``error_type``, ``severity``,
    ``cost_impact``) and ``meta`` emptied. What a trainer knows of the truth is a ``Judgement``."""
    return replace(case, error_type=None, severity=None, cost_impact=None, meta={})


def flip_verdict(text: str) -> str | None:
    """The same answer with the other verdict word (``ERROR - x`` <-> ``CORRECT - x``, the word's
    spelling kept upper case); None for an answer that is not a verdict."""
    label, _ = parse_verdict(text)
    if label is Label.UNPARSEABLE:
        return None
    other = "CORRECT" if label is Label.ERROR else "ERROR"
    return _WORD.sub(other, text, count=1)


def _message_text(messages: Any) -> str:
    """The text of a conversational message list (or a plain string)."""
    if isinstance(messages, str):
        return messages
    parts: list[str] = []
    for msg in messages or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [
                str(p.get("text", ""))
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            ]
    return "\n".join(p for p in parts if p)


def parse_case_text(text: str) -> dict[str, str]:
    """The modality, finding and treatment of a ``core.clinical.prompts.case_text`` prompt, for files that
    do not carry the fields themselves. A finding or treatment may span several lines (the
    finding ends at the last line that starts with ``Treatment:``). Empty when it does not fit."""
    m = _CASE_TEXT.match(text.strip("\n"))
    if not m:
        return {}
    name = m["modality"].strip()
    return {
        "modality": _MODALITY_BY_NAME.get(name.lower(), name.lower()),
        "finding": m["finding"],
        "treatment": m["treatment"],
    }


def _upper(value: Any) -> str | None:
    return str(value).strip().upper() if value not in (None, "") else None


def _case_of(
    row: dict[str, Any], base: Path, where: str, line: int, cases: Mapping[str, Case] | None
) -> Case:
    """The training case a row is about: the workspace's own case when known, else the row's
    fields (and the image exported beside the file)."""
    case_id = str(row.get("case_id") or f"line-{line}")
    if cases is not None and case_id in cases:
        return training_case(cases[case_id])
    fields: dict[str, Any] = {
        k: row[k] for k in ("finding", "treatment") if isinstance(row.get(k), str)
    }
    if len(fields) < 2:
        fields = parse_case_text(_message_text(row.get("prompt")))
    modality = row.get("modality") or fields.get("modality")
    if not modality or "finding" not in fields or "treatment" not in fields:
        raise FeedbackFileError(
            f"{where}: the line has no finding and treatment fields, and its prompt is not "
            "'Modality: ...\\nClinical Finding: ...\\nTreatment: ...'"
        )
    images = row.get("images") or []
    image = str(base / images[0]) if images else ""
    return Case(
        case_id,
        str(modality),
        image,
        str(fields["finding"]),
        str(fields["treatment"]),
        split=row.get("split"),
    )


def _rows(path: str | Path) -> list[tuple[int, str, dict[str, Any]]]:
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FeedbackFileError(f"{p}: cannot read: {exc}") from exc
    out = []
    for i, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{p}:{i}"
        try:
            row = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise FeedbackFileError(f"{where}: not JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise FeedbackFileError(f"{where}: expected an object")
        out.append((i, where, row))
    return out


def _pair_from_row(
    row: dict[str, Any], base: Path, where: str, line: int, cases: Mapping[str, Case] | None
) -> PreferencePair:
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise FeedbackFileError(f"{where}: missing field {key!r}")
    chosen = _message_text(row["chosen"]).strip()
    # The clinician's verdict; a foreign file without one: the verdict they preferred.
    true_label = _upper(row.get("true_label")) or parse_verdict(chosen)[0].value
    severity = row.get("severity") if true_label == "ERROR" else None
    source = str(row.get("chosen_source") or "").lower()
    margin = row.get("margin")
    return PreferencePair(
        case=_case_of(row, base, where, line, cases),
        chosen=chosen,
        rejected=_message_text(row["rejected"]).strip(),
        margin=None if margin is None else float(margin),
        rewritten=bool(row.get("rewritten")) or source in REWRITE_SOURCES,
        reviewer=row.get("reviewer"),
        true_label=true_label,
        severity=severity or None,
        line=line,
    )


def read_feedback(
    path: str | Path, cases: Mapping[str, Case] | None = None
) -> list[PreferencePair]:
    """All preference pairs of an ``expert_feedback.jsonl`` file, in file order.

    Args:
        cases: the workspace's cases by id; a pair on one of them is bound to it (its fields and
            image, ground truth emptied), else the line's own fields are used.

    Raises:
        FeedbackFileError: the file cannot be read, or a line is not a usable pair (the message
            names the file and line).
    """
    p = Path(path)
    return [_pair_from_row(row, p.parent, where, i, cases) for i, where, row in _rows(p)]


def read_ratings(path: str | Path, cases: Mapping[str, Case] | None = None) -> list[RatedCase]:
    """The ratings of a KTO export (``feedback_db.export``, ``fmt="kto"``): the lines of one
    rating (same case, reviewer and ``rated_at``) are one ``RatedCase``.

    Raises:
        FeedbackFileError: the file cannot be read, or a line is not a rated answer.
    """
    p = Path(path)
    groups: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for i, where, row in _rows(p):
        for key in ("prompt", "completion", "label"):
            if key not in row:
                raise FeedbackFileError(f"{where}: missing field {key!r} (not a KTO line)")
        text = _message_text(row["completion"]).strip()
        true_label = _upper(row.get("true_label"))
        if true_label not in ("ERROR", "CORRECT"):
            raise FeedbackFileError(f"{where}: true_label must be ERROR or CORRECT")
        case = _case_of(row, p.parent, where, i, cases)
        group = (case.case_id, str(row.get("reviewer") or ""), row.get("rated_at"))
        g = groups.setdefault(group, {"case": case, "true_label": true_label,
                                    "severity": row.get("severity") if true_label == "ERROR" else None,
                                    "answers": [], "rewritten": set(),
                                    "preference": row.get("preference")})  # fmt: skip
        if all(t != text for t, _ in g["answers"]):
            g["answers"].append((text, bool(row["label"])))
        rationale = row.get("rationale")
        if (
            isinstance(rationale, str)
            and rationale.strip()
            and text == f"{true_label} - {rationale.strip()}"
        ):
            g["rewritten"].add(text)
    return [
        RatedCase(g["case"], reviewer, rated_at, g["true_label"], g["severity"] or None,
                  tuple(g["answers"]), frozenset(g["rewritten"]), g["preference"])
        for (_, reviewer, rated_at), g in groups.items()
    ]  # fmt: skip


def _ratings_from_pairs(pairs: Sequence[PreferencePair]) -> list[RatedCase]:
    """Ratings rebuilt from preference pairs alone (no KTO file): chosen texts desirable,
    rejected ones not. Ratings that made no pair (ties, both wrong without a rationale) are not
    seen this way."""
    groups: dict[tuple[str, str | None], list[PreferencePair]] = defaultdict(list)
    for p in pairs:
        groups[(p.case.case_id, p.reviewer)].append(p)
    out = []
    for (_, reviewer), ps in groups.items():
        answers: dict[str, bool] = {}
        for p in ps:
            answers.setdefault(p.chosen, True)
            answers.setdefault(p.rejected, False)
        first = ps[0]
        out.append(RatedCase(
            first.case, reviewer or "", None, first.true_label or "", first.severity,
            tuple(answers.items()), frozenset(p.chosen for p in ps if p.rewritten),
        ))  # fmt: skip
    return out


@dataclass
class TrainingData:
    """Everything a retrain learns from, with what was left out and why (see the module)."""

    pairs: list[PreferencePair] = field(default_factory=list)
    flipped: list[PreferencePair] = field(default_factory=list)
    gold: list[tuple[Case, str]] = field(default_factory=list)
    rewritten: set[tuple[str, str]] = field(default_factory=set)
    judgements: dict[str, Judgement] = field(default_factory=dict)
    cases: dict[str, Case] = field(default_factory=dict)
    prompts: list[Case] = field(default_factory=list)
    ratings: int = 0
    left_out: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def gold_answers(self, confirmed: bool = True) -> list[tuple[Case, str]]:
        """SFT's examples: every gold answer, or with ``confirmed=False`` only the clinicians'
        own rewritten ones."""
        if confirmed:
            return list(self.gold)
        return [(c, t) for c, t in self.gold if (c.case_id, t) in self.rewritten]

    @property
    def reward_pairs(self) -> list[PreferencePair]:
        """Rated and verdict-flipped pairs together (before balancing)."""
        return [*self.pairs, *self.flipped]

    def by_label(self, pairs: Sequence[PreferencePair]) -> dict[str, int]:
        """How many of ``pairs`` prefer an ERROR and how many a CORRECT answer."""
        return dict(Counter(parse_verdict(p.chosen)[0].value for p in pairs))

    def by_split(self) -> dict[str, int]:
        """Judged cases per split (``unassigned`` where the case has none)."""
        return dict(Counter(self.cases[c].split or "unassigned" for c in self.judgements))

    def fingerprint(self) -> str:
        """A hash of what training reads (judgements, pairs, gold answers, prompts): two retrains
        with the same fingerprint learn from exactly the same data."""
        doc = {
            "judgements": sorted(
                (j.case_id, j.true_label, j.severity or "") for j in self.judgements.values()
            ),
            "pairs": sorted(
                (p.case.case_id, p.chosen, p.rejected, p.margin or 0.0) for p in self.pairs
            ),
            "gold": sorted((c.case_id, t) for c, t in self.gold),
            "prompts": sorted(c.case_id for c in self.prompts),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The figures ``summary`` says, for a model card."""
        judged = Counter(j.true_label for j in self.judgements.values())
        return {
            "ratings": self.ratings,
            "judged_cases": len(self.judgements),
            "judged_by_verdict": dict(judged),
            "judged_by_split": self.by_split(),
            "rated_pairs": len(self.pairs),
            "rated_pairs_by_chosen_verdict": self.by_label(self.pairs),
            "flipped_pairs": len(self.flipped),
            "gold_answers": len(self.gold),
            "gold_rewritten": len(self.rewritten),
            "prompts": len(self.prompts),
            "unjudged_prompts": sum(c.case_id not in self.judgements for c in self.prompts),
            "left_out": dict(self.left_out),
            "fingerprint": self.fingerprint(),
        }

    def summary(self) -> str:
        """What training will learn from, in words (one paragraph)."""
        d = self.to_dict()

        def kinds(counts: Mapping[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"

        text = (
            f"learning from {d['ratings']} standing ratings: {d['judged_cases']} judged cases "
            f"({kinds(d['judged_by_verdict'])}; by split: {kinds(d['judged_by_split'])}), "
            f"{d['rated_pairs']} rated preference pairs (chosen {kinds(d['rated_pairs_by_chosen_verdict'])}) "
            f"and {d['flipped_pairs']} verdict-flipped pairs for the reward model, "
            f"{d['gold_answers']} gold answers for SFT ({d['gold_rewritten']} written by clinicians), "
            f"{d['prompts']} prompts for PPO ({d['unjudged_prompts']} that no clinician judged)"
        )
        if self.left_out:
            text += "; left out: " + "; ".join(f"{n} {why}" for why, n in self.left_out.items())
        for note in self.notes:
            text += f"; {note}"
        return text


def _consensus(ratings: Sequence[RatedCase]) -> Judgement | None:
    """The clinicians' judgement of a case, or None when they disagree on the verdict."""
    labels = {r.true_label for r in ratings}
    if len(labels) != 1:
        return None
    label = labels.pop()
    severity = None
    if label == "ERROR":
        given = [r.severity for r in ratings if r.severity in SEVERITY_ORDER]
        severity = max(given, key=SEVERITY_ORDER.index) if given else None
    return Judgement(ratings[0].case.case_id, label, severity)


def load_training_data(
    feedback: str | Path | None,
    ratings: str | Path | None = None,
    *,
    cases: Mapping[str, Case] | Sequence[Case] | None = None,
    heldout_ids: Iterable[str] = (),
    prompts: Sequence[Case] = (),
) -> TrainingData:
    """Read the exports and derive what every stage trains on (see the module docstring).

    Args:
        feedback: ``expert_feedback.jsonl`` (TRL pairs), or None when only ``ratings`` is given.
        ratings: the KTO export of the same ratings (every rating, ties included); without it the
            ratings are rebuilt from the pairs, and ratings that made no pair are not seen.
        cases: the workspace's cases (a mapping by id or a list): a rated case found here is bound
            to it, fields and image as the model sees them at prediction, ground truth emptied.
        heldout_ids: the val and test cases; their ratings are left out.
        prompts: more cases for PPO (e.g. the unrated review cases); held-out ones are dropped.

    Raises:
        FeedbackFileError: a file cannot be read or a line is unusable (named by file and line).
        ValueError: neither file given.
    """
    if feedback is None and ratings is None:
        raise ValueError("no feedback or ratings file to learn from")
    lookup: dict[str, Case] | None = None
    if cases is not None:
        lookup = dict(cases) if isinstance(cases, Mapping) else {c.case_id: c for c in cases}
    held = set(heldout_ids)
    pairs = read_feedback(feedback, lookup) if feedback is not None else []
    rated = read_ratings(ratings, lookup) if ratings is not None else _ratings_from_pairs(pairs)
    data = TrainingData(ratings=len(rated))
    if ratings is None:
        data.notes.append(
            "no ratings file: ties and both-wrong ratings without a rationale are not seen"
        )
    left: Counter[str] = Counter()

    by_case: dict[str, list[RatedCase]] = defaultdict(list)
    for r in rated:
        if r.case.case_id in held:
            left["ratings on held-out (val/test) cases, kept for evaluation"] += 1
        elif r.true_label not in ("ERROR", "CORRECT"):
            left["ratings without a true verdict"] += 1
        else:
            by_case[r.case.case_id].append(r)
    for case_id, rs in by_case.items():
        j = _consensus(rs)
        if j is None:
            left["cases whose reviewers disagree on the verdict"] += 1
            continue
        data.judgements[case_id] = j
        data.cases[case_id] = rs[0].case
    no_pair = sum(
        1
        for rs in by_case.values()
        for r in rs
        if not (any(ok for _, ok in r.answers) and any(not ok for _, ok in r.answers))
    )
    if no_pair:
        data.notes.append(
            f"{no_pair} ratings make no preference pair (a tie, or both wrong without a "
            "rationale): they count as judgements, and a tie's right answers as gold answers"
        )

    seen_pairs: set[tuple[str, str, str]] = set()
    for p in pairs:
        cid = p.case.case_id
        if cid in held or cid not in data.judgements:
            continue  # counted with its rating above
        key = (cid, p.chosen, p.rejected)
        if key not in seen_pairs and p.chosen.strip() != p.rejected.strip():
            seen_pairs.add(key)
            j = data.judgements[cid]
            data.pairs.append(
                replace(p, case=data.cases[cid], true_label=j.true_label, severity=j.severity)
            )

    seen_gold: set[tuple[str, str]] = set()
    unflippable = 0
    for case_id, rs in by_case.items():
        j = data.judgements.get(case_id)
        if j is None:
            continue
        case = data.cases[case_id]
        for r in rs:
            for text, good in r.answers:
                if not good or (case_id, text) in seen_gold:
                    continue
                seen_gold.add((case_id, text))
                data.gold.append((case, text))
                if text in r.rewritten:
                    data.rewritten.add((case_id, text))
                other = flip_verdict(text)
                if other is None or parse_verdict(text)[0].value != j.true_label:
                    unflippable += 1
                    continue
                data.flipped.append(PreferencePair(
                    case, text, other, rewritten=text in r.rewritten, reviewer=r.reviewer,
                    true_label=j.true_label, severity=j.severity, kind="flipped",
                ))  # fmt: skip
    if unflippable:
        left["desirable answers without the true verdict word, not flipped"] = unflippable

    extra = {c.case_id: training_case(c) for c in prompts if c.case_id not in held}
    data.prompts = [*data.cases.values(), *(c for cid, c in extra.items() if cid not in data.cases)]
    data.left_out = dict(left)
    return data


def balanced(pairs: Sequence[PreferencePair], seed: int = 0) -> list[PreferencePair]:
    """``pairs`` with the minority chosen verdict (ERROR or CORRECT) repeated until both verdicts
    are chosen equally often, so the reward model does not learn "prefer ERROR" from a mix that
    happens to hold more errors. Order: shuffled with ``seed``."""
    groups: dict[str, list[PreferencePair]] = defaultdict(list)
    for p in pairs:
        groups[parse_verdict(p.chosen)[0].value].append(p)
    out: list[PreferencePair] = []
    if groups:
        n = max(len(g) for g in groups.values())
        rng = random.Random(seed)
        for g in groups.values():
            out += g + [rng.choice(g) for _ in range(n - len(g))]
    random.Random(seed).shuffle(out)
    return out


def read_cases(path: str | Path) -> list[Case]:
    """Cases from a JSONL file of ``Case.to_dict()`` objects (the held-out split the app writes).

    Raises:
        FeedbackFileError: unreadable file or a line that is not a case.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FeedbackFileError(f"{p}: cannot read: {exc}") from exc
    out: list[Case] = []
    for i, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            out.append(Case.from_dict(json.loads(text)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise FeedbackFileError(f"{p}:{i}: not a case: {exc}") from exc
    return out


def write_cases(path: str | Path, cases: Iterable[Case]) -> Path:
    """Write cases as JSONL (the inverse of ``read_cases``); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for c in cases:
            fh.write(json.dumps(c.to_dict()) + "\n")
    return p


def _turns(case: Case) -> list[dict[str, Any]]:
    from core.clinical.prompts import case_text

    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": case_text(case)}]}
    ]


def _answer(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def _case_fields(case: Case) -> dict[str, Any]:
    return {
        "images": [case.image] if case.image else [],
        "case_id": case.case_id,
        "modality": case.modality,
        "finding": case.finding,
        "treatment": case.treatment,
    }


def write_feedback(path: str | Path, pairs: Iterable[PreferencePair]) -> Path:
    """Write pairs in the export's TRL conversational format (tests, benchmarks). Image paths are
    written as given (absolute paths stay absolute); no ground truth is written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            row: dict[str, Any] = {
                "prompt": _turns(pair.case),
                "chosen": _answer(pair.chosen),
                "rejected": _answer(pair.rejected),
                **_case_fields(pair.case),
                "severity": pair.severity,
                "true_label": pair.true_label or parse_verdict(pair.chosen)[0].value,
                "reviewer": pair.reviewer,
            }
            if pair.margin is not None:
                row["margin"] = pair.margin
            if pair.rewritten:
                row["chosen_source"] = "rationale"
            fh.write(json.dumps(row) + "\n")
    return p


def write_ratings(path: str | Path, ratings: Iterable[RatedCase]) -> Path:
    """Write ratings in the KTO export's format (one line per judged answer; tests, benchmarks)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for r in ratings:
            rationale = next((t.split(" - ", 1)[1] for t in r.rewritten if " - " in t), None)
            for text, good in r.answers:
                row = {
                    "prompt": _turns(r.case), "completion": _answer(text), "label": good,
                    **_case_fields(r.case), "severity": r.severity, "true_label": r.true_label,
                    "reviewer": r.reviewer, "rated_at": r.rated_at, "preference": r.preference,
                    "rationale": rationale,
                }  # fmt: skip
                fh.write(json.dumps(row) + "\n")
    return p


def split_pairs(
    pairs: Sequence[PreferencePair], eval_fraction: float, seed: int = 0
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Split pairs into train and held-out by case (a case's pairs never straddle the split).

    With fewer than two cases, or ``eval_fraction`` 0, every pair is for training.
    """
    case_ids = sorted({p.case.case_id for p in pairs})
    if eval_fraction <= 0 or len(case_ids) < 2:
        return list(pairs), []
    rng = random.Random(seed)
    rng.shuffle(case_ids)
    n_eval = min(len(case_ids) - 1, max(1, round(len(case_ids) * eval_fraction)))
    held = set(case_ids[:n_eval])
    return [p for p in pairs if p.case.case_id not in held], [
        p for p in pairs if p.case.case_id in held
    ]


def sft_examples(pairs: Sequence[PreferencePair], confirmed: bool = True) -> list[tuple[Case, str]]:
    """(case, gold answer) from preference pairs alone, one per (case, text), in file order:
    chosen answers marked as rewritten, and with ``confirmed`` any chosen answer whose verdict is
    the clinician's true verdict. (``load_training_data`` derives ``gold`` from every rating.)"""
    seen: set[tuple[str, str]] = set()
    out: list[tuple[Case, str]] = []
    for p in pairs:
        ok = p.rewritten
        if not ok and confirmed and p.true_label is not None:
            ok = parse_verdict(p.chosen)[0].value == p.true_label
        key = (p.case.case_id, p.chosen)
        if ok and key not in seen:
            seen.add(key)
            out.append((p.case, p.chosen))
    return out


def unique_cases(pairs: Sequence[PreferencePair]) -> list[Case]:
    """The distinct cases of ``pairs``, in first-seen order."""
    seen: dict[str, Case] = {}
    for p in pairs:
        seen.setdefault(p.case.case_id, p.case)
    return list(seen.values())
