"""``medreview compare`` on a real SQLite store in a temporary workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli.main import main
from tests.app.test_cli_evaluate import make_workspace


def test_compare_heuristic_with_a_stored_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The heuristic says ERROR, CORRECT, CORRECT on t-mis, t-ok, t-img; v2 also catches t-img.
    ws = make_workspace(
        tmp_path, {"v2": {"t-mis": "ERROR", "t-ok": "CORRECT", "t-img": "ERROR", "t-unk": "ERROR"}}
    )
    out_json, out_png = tmp_path / "c.json", tmp_path / "c.png"
    code = main(
        ["compare", "heuristic", "v2", "--workspace", str(ws), "--n-boot", "200",
         "--json", str(out_json), "--png", str(out_png)]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "v2 vs heuristic on the test split, 4 paired cases" in text
    assert "McNemar exact test: A right/B wrong 0, A wrong/B right 1, p = 1" in text
    assert "Cases where the verdicts differ (2)" in text
    doc = json.loads(out_json.read_text())
    assert doc["sources"] == {"heuristic": "run now", "v2": "store"}
    assert doc["a"]["accuracy"] == pytest.approx(2 / 3) and doc["b"]["accuracy"] == 1.0
    assert doc["intervals"]["accuracy"]["diff"]["estimate"] == pytest.approx(1 / 3)
    assert [d["case_id"] for d in doc["disagreements"]] == ["t-img", "t-unk"]
    assert doc["disagreements"][1]["truth"] is None
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_compare_uses_only_paired_cases_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(
        tmp_path, {"v1": {"t-mis": "CORRECT", "t-ok": "CORRECT"}, "v2": {"t-mis": "ERROR"}}
    )
    assert main(["compare", "v1", "v2", "--workspace", str(ws), "--n-boot", "50"]) == 1
    captured = capsys.readouterr()
    assert "1 paired cases" in captured.out
    assert "have no prediction from 'v2'" in captured.err


def test_compare_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = make_workspace(tmp_path, {"v1": {"t-mis": "ERROR"}, "v2": {"tr-1": "ERROR"}})
    assert main(["compare", "v1", "v1", "--workspace", str(ws)]) == 2
    assert "two different versions" in capsys.readouterr().err
    assert main(["compare", "v1", "v2", "--workspace", str(ws)]) == 2
    assert "'v2' has no predictions on the test split" in capsys.readouterr().err
    assert main(["compare", "v1", "heuristic", "--workspace", str(ws), "--n-boot", "0"]) == 2
    assert "--n-boot must be at least 1" in capsys.readouterr().err
