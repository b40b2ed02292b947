"""A SIMULATED reviewer, for benchmarks and tests only: it rates A/B verdict pairs from the demo's
ground truth, so the whole review-and-retrain loop can run headless.

It is not a clinician and its ratings are not clinical judgements. The rule:

- exactly one verdict has the right label: prefer it (``a`` or ``b``);
- both right: ``tie`` (no preference pair);
- both wrong: ``both_wrong`` with a rationale written from the ground truth (the gold verdict),
  which is chosen over each of the two (two pairs), as ``feedback_db.pairs`` derives them.

The true label and severity it reports are the case's ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.cases import Case
from core.training.data import PreferencePair
from core.verdicts import Label, Verdict

REVIEWER_NAME = "simulated-reviewer"


@dataclass(frozen=True)
class SimulatedRating:
    """One simulated rating: ``preference`` is ``a``, ``b``, ``tie`` or ``both_wrong``."""

    case: Case
    preference: str
    true_label: str
    severity: str | None
    rationale: str | None
    text_a: str
    text_b: str


def _gold_reason(case: Case) -> str:
    from core.models.demo_train import gold_verdict

    return gold_verdict(case).split(" - ", 1)[1]


def rate(case: Case, a: Verdict, b: Verdict) -> SimulatedRating:
    """The simulated rating of verdicts ``a`` and ``b`` on ``case``.

    Raises:
        ValueError: the case has no ground truth.
    """
    truth = case.truth_label
    if truth is None:
        raise ValueError(f"case {case.case_id}: the simulated reviewer needs ground truth")
    a_ok, b_ok = a.label is Label(truth), b.label is Label(truth)
    rationale = None
    if a_ok and not b_ok:
        pref = "a"
    elif b_ok and not a_ok:
        pref = "b"
    elif a_ok and b_ok:
        pref = "tie"
    else:
        pref, rationale = "both_wrong", _gold_reason(case)
    return SimulatedRating(case, pref, truth, case.severity, rationale, _text(a), _text(b))


def _text(v: Verdict) -> str:
    return v.text or v.format()


def rate_all(
    cases: Sequence[Case], a: Sequence[Verdict], b: Sequence[Verdict]
) -> list[SimulatedRating]:
    """Rate every case (cases without ground truth are skipped)."""
    return [
        rate(c, va, vb) for c, va, vb in zip(cases, a, b, strict=True) if c.truth_label is not None
    ]


def to_pairs(ratings: Sequence[SimulatedRating]) -> list[PreferencePair]:
    """The preference pairs the ratings yield (the store's rule, ``feedback_db.pairs``)."""
    out: list[PreferencePair] = []
    for r in ratings:
        gold = f"{r.true_label} - {r.rationale}" if r.rationale else None
        if r.preference == "a":
            cands = [(gold or r.text_a, r.text_b)]
        elif r.preference == "b":
            cands = [(gold or r.text_b, r.text_a)]
        elif r.preference == "both_wrong" and gold:
            cands = [(gold, r.text_a), (gold, r.text_b)]
        else:
            cands = []
        seen: set[tuple[str, str]] = set()
        for chosen, rejected in cands:
            if chosen.strip() != rejected.strip() and (chosen, rejected) not in seen:
                seen.add((chosen, rejected))
                out.append(
                    PreferencePair(
                        r.case, chosen, rejected, rewritten=gold is not None,
                        reviewer=REVIEWER_NAME, true_label=r.true_label,
                    )
                )  # fmt: skip
    return out
