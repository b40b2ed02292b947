"""The safety gate: may a newly trained version replace the ACTIVE one (the one clinicians use)?

It decides on the ``val`` split (never on ``test``, which is for the reported table only), with
both versions' verdicts on the same cases. A new version is registered either way, so it can be
inspected and compared, but it is promoted only when:

- it catches every critical error the active version caught: a critical error the active one
  flagged and the new one passes is a regression no average gain can pay for; and
- its false positive rate is at most ``max_fpr`` (10%, the plan's target), or, when above it, no
  higher than the active version's (a version that lowers an already high rate is not blocked for
  it, and the reason says plainly that the rate is still above the limit); and
- its mean clinical reward on those cases (``core.clinical.rewards``: what each right and wrong
  verdict costs, by severity) is not below the active version's: the first two rules alone let a
  version through that misses many high and moderate errors, or is simply wrong more often. A
  tie is promoted (a retrain that changes nothing measurable on val is not a regression).

The reason is one truthful sentence, recorded with the evaluation: it names the active version,
the split and the number of cases, and gives the rates it compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from core.cases.records import Case
from core.clinical.verdicts import Label, Verdict
from core.evaluation import evaluate

MAX_FPR = 0.10


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict. ``promote`` is False when any reason blocks it.

    Attributes:
        promote: whether the new version may become active.
        reasons: why it was refused (empty when promoted).
        lost_critical: case ids of critical errors the active version caught and the new misses.
        fpr, active_fpr: false positive rates on the gate's cases (NaN: no correct case there).
        reward, active_reward: mean clinical reward on the gate's cases; accuracy,
            active_accuracy: the share right (said with the reward, for a reader).
        active: the version it was compared with; split, n: where, on how many cases.
        max_fpr: the limit applied.
    """

    promote: bool
    reasons: list[str] = field(default_factory=list)
    lost_critical: list[str] = field(default_factory=list)
    fpr: float = 0.0
    active_fpr: float = 0.0
    reward: float = 0.0
    active_reward: float = 0.0
    accuracy: float = 0.0
    active_accuracy: float = 0.0
    active: str = "the active version"
    split: str = "val"
    n: int = 0
    max_fpr: float = MAX_FPR

    @property
    def reason(self) -> str:
        """One line for the store: why it was or was not promoted, in true words."""
        where = f"on {self.n} {self.split} cases against {self.active}"
        if not self.promote:
            return f"not promoted ({where}): " + "; ".join(self.reasons)
        if math.isnan(self.fpr):
            rate = "there are no correct cases to measure false positives on"
        elif self.fpr <= self.max_fpr:
            rate = f"its false positive rate {self.fpr:.1%} is within the {self.max_fpr:.0%} limit"
        else:
            rate = (
                f"its false positive rate {self.fpr:.1%} is above the {self.max_fpr:.0%} limit "
                f"but not above the active version's {self.active_fpr:.1%}"
            )
        if math.isnan(self.reward) or math.isnan(self.active_reward):
            reward = "there are no cases with ground truth to compare clinical rewards on"
        else:
            reward = (
                f"its mean clinical reward {self.reward:+.3f} is not below the active version's "
                f"{self.active_reward:+.3f} (accuracy {self.accuracy:.1%} against "
                f"{self.active_accuracy:.1%})"
            )
        return (
            f"promoted ({where}): it misses no critical error the active version caught, {rate}, "
            f"and {reward}"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reason"] = self.reason
        for key in ("fpr", "active_fpr", "reward", "active_reward", "accuracy", "active_accuracy"):
            if math.isnan(out[key]):
                out[key] = None
        return out


def safety_gate(
    cases: Sequence[Case],
    active: Sequence[Verdict],
    new: Sequence[Verdict],
    max_fpr: float = MAX_FPR,
    *,
    active_name: str = "the active version",
    split: str = "val",
) -> GateDecision:
    """Decide whether ``new`` may replace the active version (verdicts on the same ``cases``,
    in order; the cases need ground truth: the val split's).

    Raises:
        ValueError: the lists differ in length, or ``max_fpr`` is outside [0, 1].
    """
    if not len(cases) == len(active) == len(new):
        raise ValueError(f"{len(cases)} cases, {len(active)} active and {len(new)} new verdicts")
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError("max_fpr must be in [0, 1]")
    lost = [
        c.case_id
        for c, a, n in zip(cases, active, new, strict=True)
        if c.is_error and c.severity == "critical" and a.label is Label.ERROR
        and n.label is not Label.ERROR
    ]  # fmt: skip
    new_report, active_report = evaluate(cases, new), evaluate(cases, active)
    fpr, active_fpr = float(new_report.fpr), float(active_report.fpr)
    reward, active_reward = float(new_report.mean_reward), float(active_report.mean_reward)
    reasons = []
    if lost:
        reasons.append(
            f"it misses {len(lost)} critical error(s) the active version caught: "
            + ", ".join(lost[:5])
            + (" ..." if len(lost) > 5 else "")
        )
    if not math.isnan(fpr) and fpr > max_fpr and (math.isnan(active_fpr) or fpr > active_fpr):
        reasons.append(
            f"its false positive rate {fpr:.1%} is above the {max_fpr:.0%} limit and above the "
            f"active version's {active_fpr:.1%}"
        )
    # With a hair of tolerance: the same verdicts summed in another order must tie.
    # (NaN, no case with ground truth: nothing to compare, so this rule does not refuse.)
    if reward < active_reward - 1e-9:
        reasons.append(
            f"its mean clinical reward {reward:+.3f} is below the active version's "
            f"{active_reward:+.3f} (accuracy {new_report.accuracy:.1%} against "
            f"{active_report.accuracy:.1%})"
        )
    return GateDecision(
        not reasons, reasons, lost, fpr, active_fpr, reward, active_reward,
        float(new_report.accuracy), float(active_report.accuracy), active_name, split,
        len(cases), max_fpr,
    )  # fmt: skip
