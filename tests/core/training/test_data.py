"""Reading expert_feedback.jsonl and case files."""

from __future__ import annotations

import json

import pytest

from core.training.data import (
    FeedbackFileError,
    PreferencePair,
    read_cases,
    read_feedback,
    sft_examples,
    split_pairs,
    write_cases,
    write_feedback,
)

from .conftest import make_cases, make_pairs

ROW = {
    "prompt": [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {
                    "type": "text",
                    "text": "Modality: Chest X-ray\nClinical Finding: Pneumothorax\nTreatment: Lobectomy",
                },
            ],
        }
    ],
    "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "ERROR - wrong"}]}],
    "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "CORRECT - ok"}]}],
    "images": ["images/abc.png"],
    "case_id": "case-1",
    "modality": "xray",
    "error_type": "treatment_mismatch",
    "severity": "critical",
    "reviewer": "dr-a",
    "rated_at": "2026-01-01T00:00:00Z",
    "margin": 1.5,
}


def test_reads_the_export_format(tmp_path):
    path = tmp_path / "expert_feedback.jsonl"
    path.write_text(json.dumps(ROW) + "\n\n", encoding="utf-8")
    [pair] = read_feedback(path)
    assert pair.case.modality == "xray"
    assert pair.case.finding == "Pneumothorax" and pair.case.treatment == "Lobectomy"
    assert pair.case.truth_label == "ERROR" and pair.case.severity == "critical"
    assert pair.case.image == str(tmp_path / "images/abc.png")
    assert pair.chosen == "ERROR - wrong" and pair.rejected == "CORRECT - ok"
    assert pair.margin == 1.5 and not pair.rewritten


def test_bad_lines_name_file_and_line(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(ROW) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(FeedbackFileError, match=r"f.jsonl:2"):
        read_feedback(path)
    bad = dict(ROW, prompt="no fields here")
    path.write_text(json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(FeedbackFileError, match=r"f.jsonl:1"):
        read_feedback(path)


def test_round_trip_and_sft_selection(tmp_path):
    cases = make_cases(6, seed=2)
    pairs = make_pairs(cases)
    pairs[0] = PreferencePair(
        pairs[0].case, "CORRECT - my own words", pairs[0].rejected, rewritten=True
    )
    path = write_feedback(tmp_path / "fb.jsonl", pairs)
    back = read_feedback(path)
    assert [(p.case.case_id, p.chosen, p.rewritten) for p in back] == [
        (p.case.case_id, p.chosen, p.rewritten) for p in pairs
    ]
    assert [text for _, text in sft_examples(back, confirmed=False)] == ["CORRECT - my own words"]
    # pair 0's rewritten answer says CORRECT; the others' chosen answers match the truth
    assert len(sft_examples(back)) == 6
    assert read_cases(write_cases(tmp_path / "cases.jsonl", cases)) == cases


def test_split_keeps_cases_whole():
    pairs = make_pairs(make_cases(20, seed=1)) * 2
    train, held = split_pairs(pairs, 0.25, seed=0)
    assert held and train
    assert not {p.case.case_id for p in train} & {p.case.case_id for p in held}
