from __future__ import annotations

import pytest

from core.clinical.verdicts import Label, make_verdict, parse_verdict


@pytest.mark.parametrize(
    ("text", "label", "reason"),
    [
        ("ERROR - wrong drug", Label.ERROR, "wrong drug"),
        ("  correct -  fits the finding \nmore text", Label.CORRECT, "fits the finding"),
        ("**CORRECT**: fine", Label.CORRECT, "fine"),
        ("Error \u2014 surgery for a cyst", Label.ERROR, "surgery for a cyst"),
        ("\n\nERROR", Label.ERROR, ""),
        ("The answer is ERROR - x", Label.UNPARSEABLE, "The answer is ERROR - x"),
        ("", Label.UNPARSEABLE, ""),
        ("Errors everywhere", Label.UNPARSEABLE, "Errors everywhere"),
        ("CORRECTION - no", Label.UNPARSEABLE, "CORRECTION - no"),
    ],
)
def test_parse_verdict(text: str, label: Label, reason: str) -> None:
    assert parse_verdict(text) == (label, reason)


def test_unparseable_is_never_correct() -> None:
    v = make_verdict("I think it is fine")
    assert v.label is Label.UNPARSEABLE and v.is_error is None


def test_confidence_clipped() -> None:
    assert make_verdict("ERROR - x", confidence=1.2).confidence == 1.0
