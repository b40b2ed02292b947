"""feedback_db keeps copies of two small core functions (the packages may not import each other):
the case text of the prompt, and the verdict-word parser. These tests keep the copies equal."""

from __future__ import annotations

import pytest

from core.cases.records import MODALITIES, Case
from core.clinical.prompts import MODALITY_NAMES, case_text
from core.clinical.verdicts import parse_verdict
from feedback_db import text as store_text
from feedback_db.feedback_lines import parse_label


@pytest.mark.parametrize("modality", [*MODALITIES, "dermoscopy"])
def test_case_text_is_the_same(modality: str) -> None:
    case = Case(
        "c1", modality, "images/x.png", "Glioblastoma, left frontal", "Surgical resection\nthen RT"
    )
    assert store_text.case_text(case.modality, case.finding, case.treatment) == case_text(case)


def test_modality_names_are_the_same() -> None:
    assert store_text.MODALITY_NAMES == MODALITY_NAMES


@pytest.mark.parametrize(
    "text",
    [
        "ERROR - wrong drug",
        "error: wrong drug",
        "**CORRECT**: fine",
        " Error \u2014 x",
        "CORRECT",
        "correct - fits\nsecond line",
        "The answer is ERROR",
        "",
        "ERRORS everywhere",
        "> `ERROR` - quoted",
        "\n\n  CORRECT - after blank lines",
    ],
)
def test_verdict_parsing_is_the_same(text: str) -> None:
    label, reason = parse_verdict(text)
    assert parse_label(text) == (label.value, reason)
