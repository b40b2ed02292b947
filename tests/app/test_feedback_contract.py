"""The export is the contract between the store and the trainer: a clinician's rewritten answer
leaves the store marked as such, survives another workstation's import, and reaches SFT as gold."""

from __future__ import annotations

import json
from pathlib import Path

from core.training.data import read_feedback, sft_examples
from feedback_db import RatingIn, open_store
from feedback_db.export import export_feedback
from feedback_db.import_jsonl import import_feedback
from tests.feedback_db.factory import seed


def test_rewritten_answer_is_marked_kept_on_import_and_gold_for_sft(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    store = open_store(f"sqlite:///{root / 'medreview.db'}")
    s = seed(store, root)
    a, b = s.preds["c-mri-1"]
    store.add_rating(RatingIn("c-mri-1", s.reviewer.id, a.id, b.id, "b", "ERROR", "critical",
                              rationale="aspirin does not treat a glioblastoma"))  # fmt: skip
    a, b = s.preds["c-us-1"]
    store.add_rating(RatingIn("c-us-1", s.reviewer.id, a.id, b.id, "a", "CORRECT", None))
    out = tmp_path / "export" / "expert_feedback.jsonl"
    export_feedback(store, out, workspace_root=root)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    by_case = {x["case_id"]: x for x in lines}
    assert by_case["c-mri-1"]["chosen_source"] == "rationale"
    assert (
        by_case["c-mri-1"]["chosen"][0]["content"][0]["text"]
        == "ERROR - aspirin does not treat a glioblastoma"
    )
    assert by_case["c-us-1"]["chosen_source"] == "model"

    pairs = {p.case.case_id: p for p in read_feedback(out)}
    assert pairs["c-mri-1"].rewritten and not pairs["c-us-1"].rewritten
    gold = sft_examples(list(pairs.values()), confirmed=False)
    assert [(c.case_id, text) for c, text in gold] == [
        ("c-mri-1", "ERROR - aspirin does not treat a glioblastoma")
    ]
    store.close()

    # another workstation imports the file: the rewritten answer is still the rationale
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = open_store(f"sqlite:///{other_root / 'medreview.db'}")
    seed(other, other_root)
    result = import_feedback(other, out, create_reviewers=True)
    assert not result.errors, result.errors
    assert other.current_rating("c-mri-1").rationale == "aspirin does not treat a glioblastoma"
    again = tmp_path / "again" / "expert_feedback.jsonl"
    export_feedback(other, again, workspace_root=other_root)
    assert sorted(json.loads(x)["chosen_source"] for x in again.read_text().splitlines()) == [
        "model",
        "rationale",
    ]
    other.close()
