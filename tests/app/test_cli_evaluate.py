"""``medreview evaluate`` on a real SQLite store in a temporary workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli.main import main
from app.convert import case_in_from_case, prediction_in_from_verdict
from core.cases.records import Case
from core.clinical.verdicts import Label, Verdict
from core.models.backends.heuristic import HeuristicBackend
from feedback_db import open_store

# Three test cases the heuristic can judge from the text (one image-only error it misses), one
# train case, and one test case with no ground truth.
CASES = [
    Case("t-mis", "xray", "images/a.png", "Pneumothorax", "Lobectomy", "treatment_mismatch", "critical", split="test"),
    Case("t-ok", "mri", "images/b.png", "Intracranial mass", "Dexamethasone", "none", split="test"),
    Case("t-img", "ultrasound", "images/c.png", "Solid hypoechoic mass", "Surgical excision of the mass", "unsupported_by_image", "critical", split="test"),
    Case("t-unk", "xray", "images/d.png", "Pneumothorax", "Chest tube insertion", None, split="test"),
    Case("tr-1", "xray", "images/e.png", "Pneumothorax", "Lobectomy", "treatment_mismatch", "critical", split="train"),
]  # fmt: skip


def make_workspace(root: Path, predictions: dict[str, dict[str, str]] | None = None) -> Path:
    """A workspace whose store holds CASES and, per version, the given labels by case id."""
    with open_store(f"sqlite:///{root / 'medreview.db'}") as store:
        store.add_cases([case_in_from_case(c) for c in CASES])
        for version, labels in (predictions or {}).items():
            store.add_model_version(version, "clip-llm", "tiny")
            store.add_predictions(
                version,
                [
                    prediction_in_from_verdict(
                        cid, Verdict(Label(lbl), "r", 0.75, f"{lbl} - r", 12.0)
                    )
                    for cid, lbl in labels.items()
                ],
            )
    return root


def test_heuristic_without_stored_predictions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(tmp_path)
    out_json, out_png = tmp_path / "out" / "h.json", tmp_path / "out" / "h.png"
    code = main(
        [
            "evaluate",
            "--workspace",
            str(ws),
            "--version",
            "heuristic",
            "--json",
            str(out_json),
            "--png",
            str(out_png),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "heuristic on the test split (run now): 3 cases with ground truth" in text
    assert "Critical misses (1 of 2): t-img" in text
    doc = json.loads(out_json.read_text())
    assert doc["n"] == 3 and doc["skipped_no_truth"] == 1 and doc["source"] == "run now"
    assert doc["accuracy"] == pytest.approx(2 / 3)
    assert doc["per_error_type"]["unsupported_by_image"]["tp_rate"] == 0.0
    assert doc["mean_confidence"] is None  # the heuristic has no probabilities
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_stored_predictions_are_scored_and_missing_ones_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(
        tmp_path, {"v1": {"t-mis": "ERROR", "t-ok": "UNPARSEABLE", "tr-1": "CORRECT"}}
    )
    out_json = tmp_path / "v1.json"
    code = main(["evaluate", "--workspace", str(ws), "--version", "v1", "--json", str(out_json)])
    assert code == 1  # t-img and t-unk have no prediction
    captured = capsys.readouterr()
    assert "2 case(s) have no prediction from 'v1'" in captured.err and "t-img" in captured.err
    doc = json.loads(out_json.read_text())
    assert (doc["tp"], doc["fp"], doc["unparseable"]) == (1, 1, 1)
    assert doc["fpr"] == 1.0 and doc["latency_p50_ms"] == 12.0 and doc["mean_confidence"] == 0.75
    assert doc["missing"] == ["t-img", "t-unk"]
    code = main(["evaluate", "--workspace", str(ws), "--version", "v1", "--split", "train"])
    assert code == 0 and "v1 on the train split (store): 1 cases" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--workspace", str(tmp_path / "none"), "--version", "v1"]) == 2
    assert "no workspace at" in capsys.readouterr().err
    ws = make_workspace(tmp_path, {"v1": {"t-mis": "ERROR"}})
    assert main(["evaluate", "--workspace", str(ws), "--version", "nope"]) == 2
    assert "unknown model version 'nope'; known: v1" in capsys.readouterr().err
    assert main(["evaluate", "--workspace", str(ws), "--version", "v1", "--split", "val"]) == 2
    assert "no cases in the val split" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--workspace", str(ws)])  # neither --version nor --manifest
    assert exc.value.code == 2


def test_bad_knowledge_table_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(tmp_path)
    bad = tmp_path / "k.json"
    bad.write_text("{not json")
    assert (
        main(
            ["evaluate", "--workspace", str(ws), "--version", "heuristic", "--knowledge", str(bad)]
        )
        == 2
    )
    assert "k.json: cannot read the knowledge table" in capsys.readouterr().err


def test_stored_heuristic_predictions_win_over_running_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [c for c in CASES if c.split == "test"]
    labels = {
        c.case_id: v.label.value
        for c, v in zip(cases, HeuristicBackend().predict(cases), strict=True)
    }
    labels["t-mis"] = "CORRECT"  # differs from what the heuristic would say now
    ws = make_workspace(tmp_path, {"heuristic": labels})
    assert main(["evaluate", "--workspace", str(ws), "--version", "heuristic"]) == 0
    out = capsys.readouterr().out
    assert "(store)" in out and "Critical misses (2 of 2)" in out


def _manifest(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "m"
    folder.mkdir()
    Image.new("L", (16, 16), 80).save(folder / "a.png")
    rows = [
        "case_id,modality,image,finding,treatment,error_type,severity,split",
        "m1,xray,a.png,Pneumothorax,Lobectomy,treatment_mismatch,critical,test",
        "m2,x-ray,a.png,Pneumothorax,Chest tube insertion,none,,test",
        "m3,mri,a.png,Intracranial mass,Dexamethasone,unsupported_by_image,,test",
        "m4,ultrasound,a.png,No focal lesion,Observation and no treatment,none,,train",
        "m5,ct,a.png,Pneumothorax,Lobectomy,none,,test",
    ]
    path = folder / "cases.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_manifest_with_the_heuristic_needs_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _manifest(tmp_path)
    out = tmp_path / "m.json"
    code = main(["evaluate", "--manifest", str(path), "--backend", "heuristic", "--json", str(out)])
    assert code == 1  # the ct row is rejected, and reported with its file and line
    captured = capsys.readouterr()
    assert "cases.csv:6: unknown modality 'ct'" in captured.err
    doc = json.loads(out.read_text())
    assert doc["n"] == 3 and (doc["tp"], doc["fn"], doc["tn"]) == (1, 1, 1)
    # m3's severity was completed from the knowledge table (Dexamethasone: moderate).
    assert doc["critical_misses"] == 0 and doc["n_critical"] == 1
    assert not (tmp_path / "medreview.db").exists()
    assert (
        main(["evaluate", "--manifest", str(path), "--backend", "heuristic", "--split", "all"]) == 1
    )
    # m4: the treatment is not in the table at all, so it is flagged (a false alarm here).
    assert "4 cases with ground truth" in capsys.readouterr().out


def test_manifest_needs_a_backend_and_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--manifest", str(_manifest(tmp_path))]) == 2
    assert "--manifest needs --backend" in capsys.readouterr().err
    assert main(["evaluate", "--manifest", str(tmp_path / "no.csv"), "--backend", "heuristic"]) == 2
    assert "no.csv: no such file" in capsys.readouterr().err
