"""Per-modality heatmaps of evaluation results, saved as PNG (matplotlib, Agg canvas).

Rows are the modalities plus ``all``; columns accuracy, TP rate, TN rate and FPR. Colour shows how
good a cell is (green good, red bad), so FPR is coloured by ``1 - FPR`` while its cell still prints
the FPR itself. A comparison draws A, B and the difference B - A (in percentage points, green where
B is better) side by side. Cells with no value are grey and read ``n/a``.

matplotlib is imported inside ``heatmap_png`` and draws on its own Agg canvas, never pyplot, so it
touches no global backend state and is safe to call from a worker thread of the GUI.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.evaluation.compare import ComparisonReport
from core.evaluation.metrics import EvaluationReport, GroupMetrics

COLUMNS: tuple[tuple[str, str], ...] = (
    ("accuracy", "Accuracy"),
    ("tp_rate", "TP rate"),
    ("tn_rate", "TN rate"),
    ("fpr", "FPR"),
)
# Higher is better for every column but FPR.
_LOWER_IS_BETTER = {"fpr"}


def _groups(report: EvaluationReport) -> list[tuple[str, GroupMetrics]]:
    return [*report.per_modality.items(), ("all", report.overall)]


def _values(report: EvaluationReport, rows: list[str]) -> list[list[float]]:
    groups = dict(_groups(report))
    nan = float("nan")
    return [[getattr(groups[r], key) if r in groups else nan for key, _ in COLUMNS] for r in rows]


def _panel(ax: Any, values: list[list[float]], rows: list[str], title: str, diff: bool) -> Any:
    import numpy as np

    raw = np.array(values, dtype=float)
    good = raw.copy()
    for j, (key, _) in enumerate(COLUMNS):
        if key in _LOWER_IS_BETTER:
            good[:, j] = -raw[:, j] if diff else 1.0 - raw[:, j]
    if diff:
        finite = np.abs(good[np.isfinite(good)])
        span = max(0.05, float(finite.max()) if finite.size else 0.05)
        vmin, vmax = -span, span
    else:
        vmin, vmax = 0.0, 1.0
    masked = np.ma.masked_invalid(good)
    import matplotlib

    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#d0d0d0")
    image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(COLUMNS)), [label for _, label in COLUMNS])
    ax.set_yticks(range(len(rows)), rows)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=11)
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            v = raw[i, j]
            # White text on the darkest cells at either end of the scale, black elsewhere.
            level = (good[i, j] - vmin) / (vmax - vmin) if math.isfinite(good[i, j]) else 0.5
            color = "white" if abs(level - 0.5) > 0.38 else "black"
            if not math.isfinite(v):
                text = "n/a"
            elif diff:
                text = f"{100 * v:+.1f} pp"
            else:
                text = f"{100 * v:.1f}%"
            ax.text(j, i, text, ha="center", va="center", fontsize=10, color=color)
    # A line above the "all" row sets the total apart from the modalities.
    ax.axhline(len(rows) - 1.5, color="white", linewidth=3)
    return image


def _row_labels(reports: list[EvaluationReport]) -> tuple[list[str], list[str]]:
    keys: list[str] = []
    for r in reports:
        keys += [m for m in r.per_modality if m not in keys]
    keys.append("all")
    labels = []
    for k in keys:
        n = (reports[0].overall if k == "all" else reports[0].per_modality.get(k, GroupMetrics())).n
        labels.append(f"{k} (n={n})")
    return keys, labels


def heatmap_png(
    result: EvaluationReport | ComparisonReport, path: str | Path, *, title: str | None = None
) -> Path:
    """Draw ``result`` as a per-modality heatmap and save it as a PNG at ``path``.

    Returns:
        The path written (parent folders are created).

    Raises:
        TypeError: ``result`` is neither report type.
        OSError: the file cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(result, ComparisonReport):
        keys, labels = _row_labels([result.a, result.b])
        va, vb = _values(result.a, keys), _values(result.b, keys)
        vd = [[y - x for x, y in zip(ra, rb, strict=True)] for ra, rb in zip(va, vb, strict=True)]
        fig = Figure(figsize=(16, 1.6 + 0.6 * len(keys)), dpi=110, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 3, sharey=True)
        _panel(axes[0], va, labels, f"A: {result.name_a}", diff=False)
        image = _panel(axes[1], vb, labels, f"B: {result.name_b}", diff=False)
        diff_image = _panel(axes[2], vd, labels, "B - A (green: B better)", diff=True)
        fig.colorbar(image, ax=axes[:2], shrink=0.8, label="goodness (FPR shown inverted)")
        cbar = fig.colorbar(diff_image, ax=axes[2], shrink=0.8, label="difference in goodness")
        cbar.ax.yaxis.set_major_formatter(_pp_formatter())
        fig.suptitle(title or f"{result.name_b} vs {result.name_a}, by modality", fontsize=13)
    elif isinstance(result, EvaluationReport):
        keys, labels = _row_labels([result])
        fig = Figure(figsize=(7.5, 1.6 + 0.6 * len(keys)), dpi=110, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        image = _panel(
            ax, _values(result, keys), labels, title or "Evaluation by modality", diff=False
        )
        fig.colorbar(image, ax=ax, shrink=0.8, label="goodness (FPR shown inverted)")
    else:
        raise TypeError(
            f"heatmap_png: expected an EvaluationReport or ComparisonReport, got {type(result).__name__}"
        )
    fig.savefig(out, format="png")
    return out


def _pp_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: f"{100 * x:+.0f} pp")
