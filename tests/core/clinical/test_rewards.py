from __future__ import annotations

import pytest

from core.cases.records import Case
from core.clinical.rewards import clinical_reward
from core.clinical.verdicts import Label


def _case(error_type: str, severity: str | None = None) -> Case:
    return Case("c", "xray", "i.png", "f", "t", error_type=error_type, severity=severity)


@pytest.mark.parametrize(
    ("severity", "caught", "missed"),
    [("critical", 3.0, -4.0), ("high", 2.5, -3.0), ("moderate", 2.0, -2.5)],
)
def test_error_cases(severity: str, caught: float, missed: float) -> None:
    case = _case("treatment_mismatch", severity)
    assert clinical_reward(Label.ERROR, case) == caught
    assert clinical_reward(Label.CORRECT, case) == missed
    assert clinical_reward(Label.UNPARSEABLE, case) == missed


def test_correct_cases() -> None:
    case = _case("none")
    assert clinical_reward(Label.CORRECT, case) == 2.5
    assert clinical_reward(Label.ERROR, case) == -3.0
    assert clinical_reward("UNPARSEABLE", case) == -3.0


def test_no_ground_truth_raises() -> None:
    with pytest.raises(ValueError, match="no ground truth"):
        clinical_reward(Label.ERROR, Case("c", "xray", "i", "f", "t"))
