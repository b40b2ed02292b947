"""Heatmaps are written as real PNG files for a report and for a comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cases.records import Case
from core.clinical.verdicts import Label, Verdict
from core.evaluation import compare, evaluate, heatmap_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _data() -> tuple[list[Case], list[Verdict], list[Verdict]]:
    cases = [
        Case("a", "xray", "i", "f", "t", error_type="treatment_mismatch", severity="high"),
        Case("b", "xray", "i", "f", "t", error_type="none"),
        Case("c", "mri", "i", "f", "t", error_type="none"),  # mri has no errors: TP rate n/a
    ]
    va = [Verdict(Label.CORRECT, ""), Verdict(Label.CORRECT, ""), Verdict(Label.ERROR, "")]
    vb = [Verdict(Label.ERROR, ""), Verdict(Label.CORRECT, ""), Verdict(Label.CORRECT, "")]
    return cases, va, vb


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_report_heatmap(tmp_path: Path) -> None:
    cases, va, _ = _data()
    out = heatmap_png(evaluate(cases, va), tmp_path / "sub" / "eval.png")
    assert out.exists() and out.stat().st_size > 5000
    w, h = _png_size(out)
    assert w > 400 and h > 200


def test_comparison_heatmap_is_wider(tmp_path: Path) -> None:
    cases, va, vb = _data()
    single = heatmap_png(evaluate(cases, va), tmp_path / "one.png")
    pair = heatmap_png(compare(cases, va, vb, n_boot=20), tmp_path / "cmp.png", title="t")
    assert _png_size(pair)[0] > 1.5 * _png_size(single)[0]


def test_wrong_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="EvaluationReport or ComparisonReport"):
        heatmap_png({"accuracy": 1.0}, tmp_path / "x.png")  # type: ignore[arg-type]
