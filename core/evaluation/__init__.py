"""Evaluation: metrics of one set of verdicts, paired comparison of two, tables and heatmaps.

Positive = ERROR. No torch: the metrics need only the cases and the verdicts. See
``docs/evaluation.md`` for the definitions.

- ``evaluate(cases, verdicts) -> EvaluationReport``
- ``compare(cases, verdicts_a, verdicts_b, n_boot=2000, seed=0) -> ComparisonReport``
- ``mcnemar_exact(b, c)``, ``paired_bootstrap(...)``
- ``format_table``, ``format_breakdown``, ``format_comparison`` (fixed-width text)
- ``heatmap_png(report_or_comparison, path)`` (matplotlib, Agg; imported when called)
"""

from __future__ import annotations

from core.evaluation.compare import ComparisonReport, Disagreement, compare
from core.evaluation.metrics import ErrorTypeMetrics, EvaluationReport, GroupMetrics, evaluate
from core.evaluation.paired import METRICS, Interval, McNemar, mcnemar_exact, paired_bootstrap
from core.evaluation.plots import heatmap_png
from core.evaluation.tables import format_breakdown, format_comparison, format_table

__all__ = [
    "METRICS",
    "ComparisonReport",
    "Disagreement",
    "ErrorTypeMetrics",
    "EvaluationReport",
    "GroupMetrics",
    "Interval",
    "McNemar",
    "compare",
    "evaluate",
    "format_breakdown",
    "format_comparison",
    "format_table",
    "heatmap_png",
    "mcnemar_exact",
    "paired_bootstrap",
]
