"""The clinical reward of the original plan, exactly, and nothing else.

    base: +1 when the verdict is right, -1 when it is wrong;
    an error caught:          +2.0 critical, +1.5 high, +1.0 moderate;
    an error missed:          -3.0 critical, -2.0 high, -1.5 moderate;
    a correct treatment validated: +1.5;
    a false alarm (ERROR on a correct case): -2.0.

An UNPARSEABLE verdict is wrong: on an error case it is a missed error, on a correct case it gets
the false-alarm penalty (it does not validate the treatment and costs a clinician's time).
"""

from __future__ import annotations

from core.cases.records import Case
from core.clinical.verdicts import Label

CAUGHT_BONUS: dict[str, float] = {"critical": 2.0, "high": 1.5, "moderate": 1.0}
MISSED_PENALTY: dict[str, float] = {"critical": -3.0, "high": -2.0, "moderate": -1.5}
VALIDATED_BONUS = 1.5
FALSE_ALARM_PENALTY = -2.0


def clinical_reward(label: Label | str, case: Case) -> float:
    """Reward of predicting ``label`` on ``case``.

    Raises:
        ValueError: the case has no ground truth, or an error case has no known severity.
    """
    label = Label(label) if not isinstance(label, Label) else label
    if case.is_error is None:
        raise ValueError(f"case {case.case_id} has no ground truth (error_type)")
    if case.is_error:
        severity = case.severity or "moderate"
        if severity not in CAUGHT_BONUS:
            raise ValueError(f"case {case.case_id}: unknown severity {severity!r}")
        if label is Label.ERROR:
            return 1.0 + CAUGHT_BONUS[severity]
        return -1.0 + MISSED_PENALTY[severity]
    if label is Label.CORRECT:
        return 1.0 + VALIDATED_BONUS
    return -1.0 + FALSE_ALARM_PENALTY
