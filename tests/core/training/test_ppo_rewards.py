"""PPO's rewards: clinicians' judgements only, the contradiction penalty, normalisation."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from core.training.ppo_config import PPOConfig
from core.training.ppo_rewards import (
    Judgement,
    RewardComposer,
    judgements_from,
    reason_contradicts,
)

from .conftest import make_cases


@pytest.mark.parametrize(
    "text",
    [
        "CORRECT - the image does not show Pneumothorax",
        "CORRECT - Warfarin is not an accepted treatment for Ischaemic stroke",
        "correct: no evidence of a fracture, so the cast is unsupported",
        "CORRECT - contraindicated in pregnancy",
        "ERROR - Chest drain fits Pneumothorax",
        "ERROR - consistent with the finding",
        "ERROR - Thrombolysis is an accepted treatment for Ischaemic stroke",
    ],
)
def test_reasons_that_argue_against_their_verdict(text):
    assert reason_contradicts(text)


@pytest.mark.parametrize(
    "text",
    [
        "CORRECT - Chest drain fits Pneumothorax",
        "CORRECT - Thrombolysis is an accepted treatment for Ischaemic stroke",
        "ERROR - the image does not show Pneumothorax",
        "ERROR - Warfarin is not an accepted treatment for Ischaemic stroke",
        "ERROR - the treatment doesn't fit the finding",
        "ERROR - the image shows a fracture; surgery is indicated, not a sling",
        "CORRECT - finding not in the knowledge table; no rule applies",  # the heuristic's
        "CORRECT",
        "The answer is CORRECT but the image does not show it",  # UNPARSEABLE
    ],
)
def test_consistent_or_unparseable_answers_are_not_penalised(text):
    assert not reason_contradicts(text)


def _judged(cases):
    return {c.case_id: Judgement(c.case_id, c.truth_label, c.severity) for c in cases}


def test_clinical_reward_only_where_judged_and_never_from_case_fields():
    cases = make_cases(4, seed=3)  # correct, error, correct, error by their own fields
    judged = _judged(cases[:2])
    cfg = PPOConfig(normalize_rewards=False, contradiction_penalty=0.0)
    texts = ["CORRECT - fine", "ERROR - wrong drug", "CORRECT - fine", "ERROR - wrong drug"]
    batch = RewardComposer(cfg, judgements=judged)(cases, texts)
    sev = cases[1].severity
    caught = {"critical": 3.0, "high": 2.5, "moderate": 2.0}[sev]
    assert batch.clinical == [2.5, caught, None, None]
    assert batch.raw == [2.5, caught, 0.0, 0.0]
    assert batch.stats()["judged"] == 2.0 and batch.stats()["clinical"] == (2.5 + caught) / 2
    # Scramble every ground-truth field of every case: the rewards cannot change.
    scrambled = [
        replace(c, error_type="unsupported_by_image", severity="critical", meta={"x": 1})
        for c in cases
    ]
    again = RewardComposer(cfg, judgements=judged)(scrambled, texts)
    assert again.raw == batch.raw and again.clinical == batch.clinical
    # Nobody judged anything: no clinical reward at all.
    assert RewardComposer(cfg)(cases, texts).raw == [0.0] * 4


def test_the_contradiction_penalty_and_running_normalisation():
    cases = make_cases(2, seed=5)
    cfg = PPOConfig(contradiction_penalty=2.0)
    composer = RewardComposer(cfg, judgements=_judged(cases))
    texts = ["CORRECT - fits", "CORRECT - the image does not show it"]  # case 1 is an error
    first = composer(cases, texts)
    assert first.contradicts == [False, True]
    miss = first.clinical[1]
    assert miss is not None and first.raw == [2.5, miss - 2.0]
    # Normalised with the moments of everything seen so far: here one batch, so +-1.
    assert first.score == pytest.approx([1.0, -1.0])
    second = composer(cases, ["CORRECT - fits", "ERROR - not accepted"])
    # Moments over all four raw scores now, not this batch's alone.
    raw = first.raw + second.raw
    mean = sum(raw) / 4
    std = (sum((r - mean) ** 2 for r in raw) / 4) ** 0.5
    assert second.score == pytest.approx([(r - mean) / std for r in second.raw])


def test_by_default_flipping_the_verdict_word_never_pays():
    """A reason that contradicts its verdict word must score below every consistent answer on a
    judged case, the wrong ones included, at every severity: otherwise PPO can gain by flipping
    the word and keeping a misleading reason (seen in the benchmark at a penalty of 2)."""
    cfg = replace(PPOConfig(), normalize_rewards=False)
    for case in make_cases(12, seed=7):
        for severity in ("critical", "high", "moderate"):
            judged = {case.case_id: Judgement(case.case_id, case.truth_label, severity)}
            texts = [
                "CORRECT - the image does not show it",
                "ERROR - the treatment fits the finding",
                "CORRECT - the treatment fits the finding",
                "ERROR - the image does not show it",
            ]
            batch = RewardComposer(cfg, judgements=judged)([case] * 4, texts)
            assert batch.contradicts == [True, True, False, False]
            raw = batch.raw
            assert max(raw[:2]) < min(raw[2:]), (case.truth_label, severity, raw)


@dataclass(frozen=True)
class Rating:
    """What a judgement is read from: a rating's case, true verdict and severity."""

    case_id: str
    true_label: str
    severity: str | None


def test_judgements_from_ratings_take_the_last_per_case():
    ratings = [Rating("c1", "CORRECT", None), Rating("c1", "ERROR", "high")]
    ratings.append(Rating("c2", "CORRECT", "high"))  # a severity without an error is dropped
    assert judgements_from(ratings) == {
        "c1": Judgement("c1", "ERROR", "high"),
        "c2": Judgement("c2", "CORRECT", None),
    }
    with pytest.raises(ValueError):
        Judgement("c", "MAYBE")
