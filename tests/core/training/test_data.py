"""What training learns from: the exports read back, ground truth never read, judgements, gold
answers, verdict-flipped pairs, what is left out, and the summary said before training."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from core.cases.records import Case
from core.training.data import (
    FeedbackFileError,
    PreferencePair,
    RatedCase,
    balanced,
    flip_verdict,
    load_training_data,
    parse_case_text,
    read_cases,
    read_feedback,
    sft_examples,
    split_pairs,
    training_case,
    write_cases,
    write_feedback,
    write_ratings,
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
    "error_type": "none",  # ground truth a real workspace lacks: must never be read
    "severity": "critical",
    "true_label": "ERROR",
    "reviewer": "dr-a",
    "rated_at": "2026-01-01T00:00:00Z",
    "margin": 1.5,
}


def test_reads_the_export_format_and_never_its_ground_truth(tmp_path):
    path = tmp_path / "expert_feedback.jsonl"
    path.write_text(json.dumps(ROW) + "\n\n", encoding="utf-8")
    [pair] = read_feedback(path)
    assert pair.case.modality == "xray"
    assert pair.case.finding == "Pneumothorax" and pair.case.treatment == "Lobectomy"
    # The clinician's verdict and severity, not the case's error_type ("none" here).
    assert pair.true_label == "ERROR" and pair.severity == "critical"
    assert pair.case.error_type is None and pair.case.severity is None and pair.case.meta == {}
    assert pair.case.image == str(tmp_path / "images/abc.png")
    assert pair.chosen == "ERROR - wrong" and pair.rejected == "CORRECT - ok"
    assert pair.margin == 1.5 and not pair.rewritten


def test_fields_of_the_row_win_over_the_prompt_and_multi_line_text_survives(tmp_path):
    finding = "Pneumothorax\nright apex, 2 cm rim"
    treatment = "Chest tube insertion\n(after CT)"
    row = dict(ROW, finding=finding, treatment=treatment)
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    [pair] = read_feedback(path)
    assert (pair.case.finding, pair.case.treatment) == (finding, treatment)
    # A foreign file with only the prompt: the multi-line fields are read back whole too.
    text = f"Modality: Brain MRI\nClinical Finding: {finding}\nTreatment: {treatment}"
    assert parse_case_text(text) == {"modality": "mri", "finding": finding, "treatment": treatment}
    # The workspace's own case wins over the file (its image, what the model saw).
    ws_case = Case("case-1", "xray", "/ws/images/x.dcm", finding, treatment, "none", split="review")
    [bound] = read_feedback(path, {"case-1": ws_case})
    assert bound.case == training_case(ws_case) and bound.case.image == "/ws/images/x.dcm"


def test_bad_lines_name_file_and_line(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(ROW) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(FeedbackFileError, match=r"f.jsonl:2"):
        read_feedback(path)
    bad = dict(ROW, prompt="no fields here")
    path.write_text(json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(FeedbackFileError, match=r"f.jsonl:1"):
        read_feedback(path)


def test_flip_verdict_swaps_only_the_verdict_word():
    assert flip_verdict("ERROR - the image does not show a nodule") == (
        "CORRECT - the image does not show a nodule"
    )
    assert flip_verdict("correct: fits the error profile") == "ERROR: fits the error profile"
    assert flip_verdict("no verdict here") is None


def _rated(case, reviewer, label, answers, severity=None, rationale=None):
    rewritten = frozenset({f"{label} - {rationale}"}) if rationale else frozenset()
    if rationale:
        answers = [(f"{label} - {rationale}", True), *answers]
    return RatedCase(
        case, reviewer, "2026-01-01T00:00:00Z", label, severity, tuple(answers), rewritten
    )


def _workspace():
    a, b, c, d, held = (
        Case(f"c{i}", "xray", f"/img/{i}.png", "Pneumothorax", "Lobectomy", err, sev, split=split,
             meta={"shown_finding": "Pneumothorax"})
        for i, (err, sev, split) in enumerate([
            ("treatment_mismatch", "critical", "review"), ("none", None, "review"),
            ("none", None, "review"), ("unsupported_by_image", "high", "train"), ("none", None, "val"),
        ])
    )  # fmt: skip
    ratings = [
        # a preference: the right answer over the wrong one
        _rated(a, "dr-a", "ERROR", [("ERROR - not indicated", True), ("CORRECT - fits", False)], "high"),
        # a tie of two right answers: no pair, but a judgement and a gold answer
        _rated(b, "dr-a", "CORRECT", [("CORRECT - fits", True)]),
        # two reviewers who disagree: left out
        _rated(c, "dr-a", "CORRECT", [("CORRECT - fits", True), ("ERROR - no", False)]),
        _rated(c, "dr-b", "ERROR", [("ERROR - no", True), ("CORRECT - fits", False)], "moderate"),
        # both wrong, with a rationale; two reviewers agree, the more severe severity is kept
        _rated(d, "dr-a", "ERROR", [("CORRECT - fits", False)], "moderate", rationale="the image does not show it"),
        _rated(d, "dr-b", "ERROR", [("CORRECT - fits", False)], "critical"),
        # on a held-out case: left out
        _rated(held, "dr-a", "CORRECT", [("CORRECT - fits", True), ("ERROR - no", False)]),
    ]  # fmt: skip
    return [a, b, c, d, held], ratings


def _pairs_of(ratings):
    out = []
    for r in ratings:
        good = [t for t, ok in r.answers if ok]
        bad = [t for t, ok in r.answers if not ok]
        out += [PreferencePair(r.case, g, x, rewritten=g in r.rewritten, reviewer=r.reviewer,
                               true_label=r.true_label, severity=r.severity) for g in good for x in bad]  # fmt: skip
    return out


def test_training_data_judgements_gold_flipped_and_what_is_left_out(tmp_path):
    cases, ratings = _workspace()
    fb = write_feedback(tmp_path / "fb.jsonl", _pairs_of(ratings))
    kto = write_ratings(tmp_path / "kto.jsonl", ratings)
    data = load_training_data(fb, kto, cases=cases, heldout_ids={"c4"}, prompts=[cases[4]])
    assert {j.case_id: (j.true_label, j.severity) for j in data.judgements.values()} == {
        "c0": ("ERROR", "high"), "c1": ("CORRECT", None), "c3": ("ERROR", "critical"),
    }  # fmt: skip
    assert all(c.error_type is None and c.meta == {} for c in data.cases.values())
    assert {(p.case.case_id, p.chosen, p.rejected) for p in data.pairs} == {
        ("c0", "ERROR - not indicated", "CORRECT - fits"),
        ("c3", "ERROR - the image does not show it", "CORRECT - fits"),
    }
    assert {(c.case_id, t) for c, t in data.gold} == {
        ("c0", "ERROR - not indicated"), ("c1", "CORRECT - fits"),
        ("c3", "ERROR - the image does not show it"),
    }  # fmt: skip
    assert data.gold_answers(confirmed=False) == [
        (data.cases["c3"], "ERROR - the image does not show it")
    ]
    assert {(p.case.case_id, p.chosen, p.rejected) for p in data.flipped} == {
        ("c0", "ERROR - not indicated", "CORRECT - not indicated"),
        ("c1", "CORRECT - fits", "ERROR - fits"),
        ("c3", "ERROR - the image does not show it", "CORRECT - the image does not show it"),
    }
    assert all(p.kind == "flipped" for p in data.flipped)
    assert [c.case_id for c in data.prompts] == ["c0", "c1", "c3"]  # the val case is not a prompt
    left = " ".join(data.left_out)
    assert "held-out" in left and "disagree" in left
    text = data.summary()
    assert "make no preference pair" in text
    assert "3 judged cases" in text and "review 2" in text and "train 1" in text
    assert "1 written by clinicians" in text and "left out" in text
    # Without the KTO file the tie is not seen (and the summary says so).
    alone = load_training_data(fb, cases=cases, heldout_ids={"c4"})
    assert "c1" not in alone.judgements and "not seen" in alone.summary()


def test_scrambled_ground_truth_changes_nothing_training_reads(tmp_path):
    cases, ratings = _workspace()
    fb = write_feedback(tmp_path / "fb.jsonl", _pairs_of(ratings))
    kto = write_ratings(tmp_path / "kto.jsonl", ratings)
    scrambled = [
        replace(c, error_type="treatment_mismatch" if c.error_type == "none" else "none",
                severity="moderate", cost_impact=1e6, meta={"shown_finding": "Anything else"})
        for c in cases
    ]  # fmt: skip
    a = load_training_data(fb, kto, cases=cases, heldout_ids={"c4"}, prompts=cases)
    b = load_training_data(fb, kto, cases=scrambled, heldout_ids={"c4"}, prompts=scrambled)
    for field in ("pairs", "flipped", "gold", "judgements", "prompts", "left_out"):
        assert getattr(a, field) == getattr(b, field), field
    assert [c.meta for c in a.prompts] == [c.meta for c in b.prompts] == [{}] * len(a.prompts)
    assert a.fingerprint() == b.fingerprint()


def test_balanced_repeats_the_minority_verdict():
    cases = make_cases(12, seed=3)
    pairs = [p for p in make_pairs(cases) if p.chosen.startswith("ERROR")][:5]
    pairs += [p for p in make_pairs(cases) if p.chosen.startswith("CORRECT")][:2]
    out = balanced(pairs, seed=1)
    words = [p.chosen.split(" ")[0] for p in out]
    assert words.count("ERROR") == words.count("CORRECT") == 5
    assert set(map(id, pairs)) >= set(map(id, out)) and balanced([]) == []


def test_round_trip_and_sft_selection(tmp_path):
    cases = make_cases(6, seed=2)
    pairs = make_pairs(cases)
    pairs[0] = replace(pairs[0], chosen="CORRECT - my own words", rewritten=True)
    path = write_feedback(tmp_path / "fb.jsonl", pairs)
    back = read_feedback(path)
    assert [(p.case.case_id, p.chosen, p.rewritten) for p in back] == [
        (p.case.case_id, p.chosen, p.rewritten) for p in pairs
    ]
    assert [text for _, text in sft_examples(back, confirmed=False)] == ["CORRECT - my own words"]
    # every chosen answer but the rewritten one carries the clinician's verdict
    assert len(sft_examples(back)) == 6 - (pairs[0].true_label != "CORRECT")
    assert read_cases(write_cases(tmp_path / "cases.jsonl", cases)) == cases


def test_split_keeps_cases_whole():
    pairs = make_pairs(make_cases(20, seed=1)) * 2
    train, held = split_pairs(pairs, 0.25, seed=0)
    assert held and train
    assert not {p.case.case_id for p in train} & {p.case.case_id for p in held}
