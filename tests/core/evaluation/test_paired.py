"""Paired comparison: exact McNemar against hand values, the bootstrap, the disagreement list."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.cases.records import Case
from core.clinical.verdicts import Label, Verdict
from core.evaluation import compare, format_comparison, mcnemar_exact, paired_bootstrap


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (1, 9, 2 * 11 / 1024),  # 0.021484...
        (9, 1, 2 * 11 / 1024),
        (0, 5, 2 / 32),  # 0.0625
        (2, 3, 1.0),  # 2 * (1 + 5 + 10) / 32 = 1.0
        (0, 0, 1.0),
        (3, 3, 1.0),
        (0, 10, 2 / 1024),
        (5, 15, 2 * sum(math.comb(20, k) for k in range(6)) / 2**20),  # 0.041389...
    ],
)
def test_mcnemar_exact_hand_values(b: int, c: int, p: float) -> None:
    result = mcnemar_exact(b, c)
    assert (result.b, result.c) == (b, c)
    assert result.p_value == pytest.approx(p, rel=1e-12)


def test_mcnemar_matches_documented_figure() -> None:
    assert round(mcnemar_exact(1, 9).p_value, 5) == 0.02148
    assert round(mcnemar_exact(5, 15).p_value, 5) == 0.04139


def test_mcnemar_rejects_negative() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        mcnemar_exact(-1, 2)


def _cases(n: int, seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    mods = ("xray", "histopathology", "mri", "ultrasound")
    out = []
    for i in range(n):
        err = rng.random() < 0.6
        out.append(
            Case(
                f"c{i}", mods[i % 4], "i.png", "f", "t",
                error_type=("treatment_mismatch" if i % 2 else "unsupported_by_image") if err else "none",
                severity=str(rng.choice(["critical", "high", "moderate"])) if err else None,
            )
        )  # fmt: skip
    return out


def _verdicts(cases: list[Case], p_right: float, seed: int) -> list[Verdict]:
    rng = np.random.default_rng(seed)
    out = []
    for c in cases:
        truth = c.truth_label or "CORRECT"
        wrong = "CORRECT" if truth == "ERROR" else "ERROR"
        out.append(Verdict(Label(truth if rng.random() < p_right else wrong), "r"))
    return out


def test_identical_verdicts_give_zero_difference_and_p_one() -> None:
    cases = _cases(200)
    va = _verdicts(cases, 0.8, 1)
    comp = compare(cases, va, list(va), n_boot=300, seed=3)
    assert comp.mcnemar.p_value == 1.0 and comp.mcnemar.b == comp.mcnemar.c == 0
    for metric, by in comp.intervals.items():
        assert by["diff"].contains(0.0), metric
        assert by["diff"].low == pytest.approx(0.0, abs=1e-12)
        assert by["diff"].high == pytest.approx(0.0, abs=1e-12)
    assert comp.disagreements == ()
    assert "same verdict label on every case" in format_comparison(comp)


def test_intervals_contain_point_estimates_and_match_reports() -> None:
    cases = _cases(300)
    comp = compare(cases, _verdicts(cases, 0.7, 1), _verdicts(cases, 0.9, 2), n_boot=500, seed=0)
    for metric, by in comp.intervals.items():
        for who in ("a", "b", "diff"):
            iv = by[who]
            assert iv.low <= iv.estimate <= iv.high, (metric, who, iv)
    for who, report in (("a", comp.a), ("b", comp.b)):
        assert comp.intervals["accuracy"][who].estimate == pytest.approx(report.accuracy)
        assert comp.intervals["tp_rate"][who].estimate == pytest.approx(report.tp_rate)
        assert comp.intervals["tn_rate"][who].estimate == pytest.approx(report.tn_rate)
        assert comp.intervals["fpr"][who].estimate == pytest.approx(report.fpr)
        assert comp.intervals["mean_reward"][who].estimate == pytest.approx(report.mean_reward)
    diff = comp.intervals["accuracy"]["diff"]
    assert diff.estimate == pytest.approx(comp.b.accuracy - comp.a.accuracy)
    assert diff.low > 0  # 0.9 vs 0.7 on 300 cases: B is clearly better
    assert comp.mcnemar.p_value < 1e-4


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    cases = _cases(120)
    va, vb = _verdicts(cases, 0.7, 1), _verdicts(cases, 0.75, 2)
    one = compare(cases, va, vb, n_boot=400, seed=7).intervals
    two = compare(cases, va, vb, n_boot=400, seed=7).intervals
    other = compare(cases, va, vb, n_boot=400, seed=8).intervals
    assert one == two
    assert one != other


def test_bootstrap_chunks_give_the_same_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.evaluation.paired as paired

    rng = np.random.default_rng(0)
    arrays = (
        rng.random(50) < 0.5, rng.random(50) < 0.7, rng.random(50) < 0.8,
        rng.normal(size=50), rng.normal(size=50),
    )  # fmt: skip
    whole = paired_bootstrap(*arrays, n_boot=64, seed=1)
    monkeypatch.setattr(paired, "_CHUNK_CELLS", 50 * 5)  # 5 resamples per chunk
    assert paired_bootstrap(*arrays, n_boot=64, seed=1) == whole


def test_mcnemar_and_disagreements_from_verdicts() -> None:
    cases = [
        Case("a", "xray", "i", "f", "t", error_type="treatment_mismatch", severity="critical"),
        Case("b", "mri", "i", "f", "t", error_type="none"),
        Case("c", "mri", "i", "f", "t", error_type="none"),
        Case("d", "ultrasound", "i", "f", "t"),  # no truth: listed, not tested
    ]
    va = [
        Verdict(Label.ERROR, ""),
        Verdict(Label.UNPARSEABLE, ""),
        Verdict(Label.CORRECT, ""),
        Verdict(Label.ERROR, ""),
    ]
    vb = [
        Verdict(Label.CORRECT, ""),
        Verdict(Label.CORRECT, ""),
        Verdict(Label.CORRECT, ""),
        Verdict(Label.CORRECT, ""),
    ]
    comp = compare(cases, va, vb, n_boot=50, name_a="old", name_b="new")
    assert (comp.mcnemar.b, comp.mcnemar.c) == (1, 1)
    assert [(d.case_id, d.truth, d.label_a, d.label_b) for d in comp.disagreements] == [
        ("a", "ERROR", "ERROR", "CORRECT"),
        ("b", "CORRECT", "UNPARSEABLE", "CORRECT"),
        ("d", None, "ERROR", "CORRECT"),
    ]
    assert comp.a.n == 3 and comp.a.skipped_no_truth == 1
    d = comp.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["a"]["name"] == "old" and d["mcnemar"]["p_value"] == 1.0
    text = format_comparison(comp)
    assert "old" in text and "new" in text and "Cases where the verdicts differ (3)" in text


def test_length_mismatch_and_bad_settings() -> None:
    cases = _cases(4)
    va = _verdicts(cases, 1.0, 0)
    with pytest.raises(ValueError, match="verdicts for B"):
        compare(cases, va, va[:3])
    with pytest.raises(ValueError, match="n_boot"):
        compare(cases, va, va, n_boot=0)


def test_empty_comparison_is_all_undefined() -> None:
    comp = compare([], [], [], n_boot=10)
    assert math.isnan(comp.intervals["accuracy"]["diff"].low)
    assert comp.mcnemar.p_value == 1.0
    json.dumps(comp.to_dict(), allow_nan=False)
    assert "n/a" in format_comparison(comp)


@pytest.mark.parametrize(("b", "c"), [(30, 50), (120, 80), (2400, 2600), (0, 3000), (1000, 1000)])
def test_mcnemar_matches_exact_integer_sums_on_larger_counts(b: int, c: int) -> None:
    """The oracle is the definition in exact integers, 2 * sum_{k <= min(b, c)} C(n, k) / 2^n,
    not scipy.stats.binomtest: mcnemar_exact calls binomtest, so that oracle would agree with a
    wrong call too (a one-sided test, the wrong count, the wrong n)."""
    from fractions import Fraction

    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    expected = float(min(Fraction(1), Fraction(2 * tail, 2**n)))
    assert mcnemar_exact(b, c).p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
