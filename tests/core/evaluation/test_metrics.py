"""core.evaluation.metrics against hand-computed confusion matrices."""

from __future__ import annotations

import json
import math

import pytest

from core.cases.records import Case
from core.clinical.verdicts import Label, Verdict
from core.evaluation import evaluate, format_breakdown, format_table


def case(
    cid: str, error_type: str | None, severity: str | None = None, modality: str = "xray"
) -> Case:
    return Case(cid, modality, f"{cid}.png", "f", "t", error_type=error_type, severity=severity)


def v(label: str, confidence: float | None = None, latency: float | None = None) -> Verdict:
    return Verdict(Label(label), "r", confidence, "", latency)


@pytest.fixture
def ten() -> tuple[list[Case], list[Verdict]]:
    """Hand-built: 6 error cases (3 critical), 4 correct cases, 2 modalities, 1 with no truth.

    error cases:   e1 critical ERROR (TP), e2 critical CORRECT (miss), e3 critical UNPARSEABLE (miss),
                   e4 high ERROR (TP), e5 moderate CORRECT (miss), e6 moderate ERROR (TP)
    correct cases: n1 CORRECT (TN), n2 CORRECT (TN), n3 ERROR (false alarm), n4 UNPARSEABLE (FP)
    """
    cases = [
        case("e1", "treatment_mismatch", "critical", "xray"),
        case("e2", "unsupported_by_image", "critical", "xray"),
        case("e3", "treatment_mismatch", "critical", "mri"),
        case("e4", "treatment_mismatch", "high", "mri"),
        case("e5", "unsupported_by_image", "moderate", "xray"),
        case("e6", "unsupported_by_image", "moderate", "mri"),
        case("n1", "none", modality="xray"),
        case("n2", "none", modality="mri"),
        case("n3", "none", modality="xray"),
        case("n4", "none", modality="mri"),
        case("u1", None, modality="xray"),
    ]
    verdicts = [
        v("ERROR", 0.9, 10.0), v("CORRECT", 0.6, 20.0), v("UNPARSEABLE", None, 30.0),
        v("ERROR", 0.8, 40.0), v("CORRECT", 0.7, 50.0), v("ERROR", 0.5, 60.0),
        v("CORRECT", 0.9, 70.0), v("CORRECT", 0.9, 80.0), v("ERROR", 0.6, 90.0),
        v("UNPARSEABLE", None, 100.0), v("ERROR", 0.1, 1000.0),
    ]  # fmt: skip
    return cases, verdicts


def test_overall_confusion_matrix(ten: tuple[list[Case], list[Verdict]]) -> None:
    r = evaluate(*ten)
    o = r.overall
    assert (o.tp, o.fn, o.tn, o.fp) == (3, 3, 2, 2)
    assert o.false_alarms == 1 and r.unparseable == 2
    assert r.n == 10 and r.skipped_no_truth == 1
    assert r.accuracy == pytest.approx(5 / 10)
    assert r.tp_rate == pytest.approx(3 / 6)
    assert r.tn_rate == pytest.approx(2 / 4)
    assert r.fpr == pytest.approx(2 / 4)  # UNPARSEABLE on a correct case counts as FP
    assert r.precision == pytest.approx(3 / 4)  # only ERROR verdicts are flags
    # Rewards: caught crit 3, missed crit -4, missed crit -4, caught high 2.5, missed mod -2.5,
    # caught mod 2, validated 2.5 x2, false alarm -3, unparseable on correct -3.
    assert r.mean_reward == pytest.approx((3 - 4 - 4 + 2.5 - 2.5 + 2 + 2.5 + 2.5 - 3 - 3) / 10)


def test_critical_misses_count_unparseable(ten: tuple[list[Case], list[Verdict]]) -> None:
    r = evaluate(*ten)
    assert r.critical_misses == ("e2", "e3")
    assert r.n_critical == 3


def test_per_modality_and_error_type(ten: tuple[list[Case], list[Verdict]]) -> None:
    r = evaluate(*ten)
    assert list(r.per_modality) == ["xray", "mri"]
    x, m = r.per_modality["xray"], r.per_modality["mri"]
    # xray: e1 TP, e2 FN, e5 FN, n1 TN, n3 FP(alarm)
    assert (x.tp, x.fn, x.tn, x.fp, x.false_alarms) == (1, 2, 1, 1, 1)
    # mri: e3 FN(unparseable), e4 TP, e6 TP, n2 TN, n4 FP(unparseable)
    assert (m.tp, m.fn, m.tn, m.fp, m.false_alarms, m.unparseable) == (2, 1, 1, 1, 0, 2)
    assert x.accuracy == pytest.approx(2 / 5) and m.accuracy == pytest.approx(3 / 5)
    assert m.precision == pytest.approx(1.0)
    assert x.mean_reward == pytest.approx((3 - 4 - 2.5 + 2.5 - 3) / 5)
    t = r.per_error_type
    assert (t["treatment_mismatch"].n, t["treatment_mismatch"].caught) == (3, 2)
    assert (t["unsupported_by_image"].n, t["unsupported_by_image"].caught) == (3, 1)


def test_latency_and_confidence_over_evaluated_cases(ten: tuple[list[Case], list[Verdict]]) -> None:
    r = evaluate(*ten)
    assert r.latency_p50_ms == pytest.approx(55.0)  # median of 10..100, u1's 1000 ms skipped
    assert r.latency_p95_ms == pytest.approx(95.5)
    assert r.mean_confidence == pytest.approx((0.9 + 0.6 + 0.8 + 0.7 + 0.5 + 0.9 + 0.9 + 0.6) / 8)


def test_to_dict_is_json_safe_and_nan_becomes_none() -> None:
    r = evaluate([case("n1", "none")], [v("CORRECT")])
    d = r.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["tp_rate"] is None and d["precision"] is None and d["latency_p50_ms"] is None
    assert d["tn_rate"] == 1.0 and d["accuracy"] == 1.0 and d["critical_misses"] == 0
    assert "n/a" in format_table([("m", r)])


def test_empty_input() -> None:
    r = evaluate([], [])
    assert r.n == 0 and math.isnan(r.accuracy) and math.isnan(r.mean_reward)
    assert r.per_modality == {} and r.critical_misses == ()
    json.dumps(r.to_dict(), allow_nan=False)
    assert "n/a" in format_table([("empty", r)])


def test_only_cases_without_truth_are_all_skipped() -> None:
    r = evaluate([case("u", None)], [v("ERROR")])
    assert r.n == 0 and r.skipped_no_truth == 1
    assert "Skipped 1 case" in format_breakdown(r)


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 cases but 1 verdicts"):
        evaluate([case("a", "none"), case("b", "none")], [v("CORRECT")])


def test_unknown_severity_names_the_case() -> None:
    with pytest.raises(ValueError, match="case e9: unknown severity 'fatal'"):
        evaluate([case("e9", "treatment_mismatch", "fatal")], [v("ERROR")])


def test_tables_show_the_figures(ten: tuple[list[Case], list[Verdict]]) -> None:
    r = evaluate(*ten)
    table = format_table([("heuristic", r)])
    header, rule, row = table.splitlines()
    assert header.split()[:4] == ["Model", "N", "Accuracy", "TP"]
    assert row.split()[:7] == ["heuristic", "10", "50.0%", "50.0%", "50.0%", "50.0%", "75.0%"]
    assert "2/3" in row
    text = format_breakdown(r)
    assert "Critical misses (2 of 3): e2, e3" in text
    assert "unsupported_by_image" in text and "33.3%" in text
