"""Fixed-width text tables of evaluation results, for the command line and the benchmark.

The main table has the plan's columns (accuracy, TP rate, TN rate, false positive rate, critical
misses) plus what a reviewer of the numbers asks next (precision, unparseable answers, mean
clinical reward, latency). Undefined values print as ``n/a``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.evaluation.compare import ComparisonReport
from core.evaluation.metrics import EvaluationReport, GroupMetrics
from core.evaluation.paired import METRICS, Interval

NA = "n/a"
MAX_IDS = 20  # case ids listed inline before "... (N more)"

METRIC_LABELS: dict[str, str] = {
    "accuracy": "Accuracy",
    "tp_rate": "TP rate",
    "tn_rate": "TN rate",
    "fpr": "FPR",
    "mean_reward": "Mean reward",
}


def pct(x: float | None, digits: int = 1) -> str:
    """``0.79`` -> ``"79.0%"``; NaN or None -> ``"n/a"``."""
    if x is None or not math.isfinite(x):
        return NA
    return f"{100 * x:.{digits}f}%"


def num(x: float | None, fmt: str = ".2f") -> str:
    """A number with ``fmt``; NaN or None -> ``"n/a"``."""
    if x is None or not math.isfinite(x):
        return NA
    return format(x, fmt)


def render(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Columns padded to their widest cell; the first ``left`` columns left-aligned, the rest
    (the numbers) right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [
            str(c).ljust(w) if i < left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _group_cells(g: GroupMetrics) -> list[str]:
    return [str(g.n), pct(g.accuracy), pct(g.tp_rate), pct(g.tn_rate), pct(g.fpr), pct(g.precision)]


def format_table(rows: Sequence[tuple[str, EvaluationReport]]) -> str:
    """One line per model: the plan's table."""
    header = ["Model", "N", "Accuracy", "TP rate", "TN rate", "FPR", "Precision",
              "Crit. miss", "Unparse.", "Reward", "p50 ms", "p95 ms"]  # fmt: skip
    body = []
    for name, r in rows:
        body.append(
            [
                name,
                *_group_cells(r.overall),
                f"{len(r.critical_misses)}/{r.n_critical}",
                str(r.unparseable),
                num(r.mean_reward),
                num(r.latency_p50_ms, ".2f"),
                num(r.latency_p95_ms, ".2f"),
            ]
        )
    return render(header, body)


def format_breakdown(report: EvaluationReport) -> str:
    """Per-modality and per-error-type tables, the critical misses, and skipped cases."""
    header = ["Modality", "N", "Accuracy", "TP rate", "TN rate", "FPR", "Precision", "Reward"]
    rows = [[m, *_group_cells(g), num(g.mean_reward)] for m, g in report.per_modality.items()]
    parts = [render(header, rows)]
    if report.per_error_type:
        t_rows = [
            [t, str(e.n), str(e.caught), pct(e.tp_rate)] for t, e in report.per_error_type.items()
        ]
        parts.append(render(["Error type", "Errors", "Caught", "TP rate"], t_rows))
    misses = ", ".join(report.critical_misses[:MAX_IDS]) if report.critical_misses else "none"
    if len(report.critical_misses) > MAX_IDS:
        misses += f", ... ({len(report.critical_misses) - MAX_IDS} more)"
    parts.append(
        f"Critical misses ({len(report.critical_misses)} of {report.n_critical}): {misses}"
    )
    if report.skipped_no_truth:
        parts.append(f"Skipped {report.skipped_no_truth} case(s) with no ground truth.")
    return "\n\n".join(parts)


def _iv(iv: Interval, metric: str, signed: bool = False) -> str:
    if metric == "mean_reward":
        f = "+.2f" if signed else ".2f"
        est, lo, hi = num(iv.estimate, f), num(iv.low, f), num(iv.high, f)
    else:
        sign = "+" if signed else ""

        def p(x: float) -> str:
            return NA if not math.isfinite(x) else f"{100 * x:{sign}.1f}"

        est, lo, hi = p(iv.estimate), p(iv.low), p(iv.high)
        unit = " pp" if signed else "%"
        est = est if est == NA else est + unit
    if lo == NA:
        return est
    return f"{est} [{lo}, {hi}]"


def format_comparison(comp: ComparisonReport, max_disagreements: int | None = 20) -> str:
    """The metrics of A, B and B - A with their intervals, McNemar, and the disagreements."""
    level = f"{100 * comp.level:g}%"
    header = ["Metric", f"A: {comp.name_a}", f"B: {comp.name_b}", f"B - A ({level} CI)"]
    # Rates print as percentages with their interval in the same unit; the difference of two
    # rates is in percentage points (pp).
    rows = []
    for m in METRICS:
        by = comp.intervals[m]
        rows.append([METRIC_LABELS[m], _iv(by["a"], m), _iv(by["b"], m), _iv(by["diff"], m, True)])
    rows.append(
        ["Critical misses", str(len(comp.a.critical_misses)), str(len(comp.b.critical_misses)), ""]
    )
    rows.append(["Unparseable", str(comp.a.unparseable), str(comp.b.unparseable), ""])
    parts = [
        f"{comp.a.n} cases with ground truth; paired bootstrap, {comp.n_boot} resamples, seed {comp.seed}.",
        render(header, rows),
        (
            f"McNemar exact test: A right/B wrong {comp.mcnemar.b}, A wrong/B right {comp.mcnemar.c}, "
            f"p = {comp.mcnemar.p_value:.4g}"
        ),
    ]
    d = comp.disagreements
    if d:
        shown = d if max_disagreements is None else d[:max_disagreements]
        d_rows = [[x.case_id, x.modality, x.truth or NA, x.label_a, x.label_b] for x in shown]
        title = f"Cases where the verdicts differ ({len(d)}):"
        table = render(["Case", "Modality", "Truth", "A", "B"], d_rows, left=5)
        more = f"\n... and {len(d) - len(shown)} more" if len(shown) < len(d) else ""
        parts.append(f"{title}\n{table}{more}")
    else:
        parts.append("The two versions give the same verdict label on every case.")
    return "\n\n".join(parts)
