"""The safety gate: may a newly trained version replace its parent as the active one?

A new version is registered either way (so it can be inspected and compared), but it is promoted
only when, on the same held-out cases:

- it catches every critical error its parent caught (a critical error the parent flagged and the
  new version passes is a regression no average gain can pay for), and
- its false positive rate is at most ``max_fpr`` (10%, the plan's target), unless it is no higher
  than the parent's (a version that lowers an already high rate is not blocked for it).

The reasons are plain sentences, recorded with the evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from core.cases import Case
from core.evaluation import evaluate
from core.verdicts import Label, Verdict

MAX_FPR = 0.10


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict. ``promote`` is False when any reason blocks it."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    lost_critical: list[str] = field(default_factory=list)
    fpr: float = 0.0
    parent_fpr: float = 0.0

    @property
    def reason(self) -> str:
        """One line for the store: why it was or was not promoted."""
        if self.promote:
            return (
                "passed the safety gate: no critical error lost, false positive rate within limit"
            )
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reason"] = self.reason
        return out


def safety_gate(
    cases: Sequence[Case],
    parent: Sequence[Verdict],
    new: Sequence[Verdict],
    max_fpr: float = MAX_FPR,
) -> GateDecision:
    """Decide whether ``new`` may replace ``parent`` (verdicts on the same ``cases``, in order).

    Raises:
        ValueError: the lists differ in length, or ``max_fpr`` is outside [0, 1].
    """
    if not len(cases) == len(parent) == len(new):
        raise ValueError(f"{len(cases)} cases, {len(parent)} parent and {len(new)} new verdicts")
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError("max_fpr must be in [0, 1]")
    lost = [
        c.case_id
        for c, p, n in zip(cases, parent, new, strict=True)
        if c.is_error and c.severity == "critical" and p.label is Label.ERROR
        and n.label is not Label.ERROR
    ]  # fmt: skip
    fpr = _fpr(cases, new)
    parent_fpr = _fpr(cases, parent)
    reasons = []
    if lost:
        reasons.append(
            f"misses {len(lost)} critical error(s) the parent caught: {', '.join(lost[:5])}"
            + (" ..." if len(lost) > 5 else "")
        )
    if fpr > max_fpr and fpr > parent_fpr:
        reasons.append(
            f"false positive rate {fpr:.1%} is above the {max_fpr:.0%} limit "
            f"(parent {parent_fpr:.1%})"
        )
    return GateDecision(not reasons, reasons, lost, fpr, parent_fpr)


def _fpr(cases: Sequence[Case], verdicts: Sequence[Verdict]) -> float:
    value = evaluate(cases, verdicts).fpr
    return 0.0 if value != value else float(value)  # NaN when there are no correct cases
