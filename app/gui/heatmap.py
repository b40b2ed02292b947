"""The compare view's per-modality heatmap, drawn by Qt so it scales with its pane.

Rows are the modalities and "all", columns accuracy, TP rate, TN rate and FPR, in three panels:
A, B and the difference B - A (percentage points). Colour says how good a cell is (red bad,
green good; FPR is coloured by 1 - FPR but prints the FPR itself), as in the PNG that
``medreview compare --png`` writes (``core.evaluation.plots``). The text grows with the cells,
hovering a cell shows its values and counts, and ``save_png`` writes the heatmap at twice the
screen size for a report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from app.gui import theme
from app.qt import QColor, QFont, QImage, QPainter, QRectF, QSize, Qt, QToolTip, QWidget

COLUMNS = (("accuracy", "Accuracy"), ("tp_rate", "TP rate"), ("tn_rate", "TN rate"), ("fpr", "FPR"))
LOWER_IS_BETTER = {"fpr"}
MODALITY_WORDS = {
    "xray": "X-ray",
    "histopathology": "Histopathology",
    "mri": "MRI",
    "ultrasound": "Ultrasound",
    "all": "All cases",
}
# Red-yellow-green, as matplotlib's RdYlGn at 0, 0.5 and 1.
_STOPS = (
    (0.0, (165, 0, 38)),
    (0.25, (244, 109, 67)),
    (0.5, (255, 255, 191)),
    (0.75, (102, 189, 99)),
    (1.0, (0, 104, 55)),
)


def goodness_colour(level: float) -> QColor:
    """The colour of ``level`` in 0 (bad) .. 1 (good); grey for NaN."""
    if not math.isfinite(level):
        return QColor("#9e9e9e")
    level = min(1.0, max(0.0, level))
    for (x0, c0), (x1, c1) in zip(_STOPS, _STOPS[1:], strict=False):
        if level <= x1:
            t = (level - x0) / (x1 - x0)
            return QColor(*(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True)))
    return QColor(*_STOPS[-1][1])


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and v is not None else float("nan")


class Heatmap(QWidget):
    """Draws a comparison document (``medreview compare --json``) as three heatmap panels."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("heatmap")
        self.setMouseTracking(True)
        self.setMinimumSize(360, 180)
        self.doc: dict[str, Any] | None = None
        self.rows: list[str] = []
        self._cells: list[tuple[QRectF, str]] = []  # (cell rect, tooltip) after each paint

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(720, 60 + 40 * max(3, len(self.rows)))

    def set_result(self, doc: dict[str, Any] | None) -> None:
        """Show ``doc`` (None clears the heatmap)."""
        self.doc = doc
        self.rows = []
        if doc:
            mods = list(doc.get("a", {}).get("per_modality", {}))
            mods += [m for m in doc.get("b", {}).get("per_modality", {}) if m not in mods]
            self.rows = [*mods, "all"]
        self.updateGeometry()
        self.update()

    def has_result(self) -> bool:
        return bool(self.doc)

    def group(self, side: str, row: str) -> dict[str, Any]:
        d = (self.doc or {}).get(side, {})
        return d if row == "all" else d.get("per_modality", {}).get(row, {})

    def value(self, side: str, row: str, key: str) -> float:
        """A cell's value: A or B's rate, or B - A for ``side == "diff"``."""
        if side == "diff":
            return self.value("b", row, key) - self.value("a", row, key)
        return _num(self.group(side, row).get(key))

    def tooltip_at(self, x: float, y: float) -> str | None:
        """The tooltip of the cell under (x, y), as last painted."""
        for rect, text in self._cells:
            if rect.contains(x, y):
                return text
        return None

    # -- drawing ---------------------------------------------------------------------------
    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        self.draw(p, self.width(), self.height())
        p.end()

    def draw(self, p: QPainter, width: float, height: float) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.fillRect(QRectF(0, 0, width, height), QColor(theme.colour("plot_bg")))
        self._cells = []
        text_colour = QColor(theme.colour("text"))
        if not self.doc or not self.rows:
            p.setPen(QColor(theme.colour("muted")))
            p.drawText(
                QRectF(0, 0, width, height),
                Qt.AlignmentFlag.AlignCenter,
                "The per-modality heatmap appears here after a comparison.",
            )
            return
        a_name = self.doc.get("a", {}).get("name", "A")
        b_name = self.doc.get("b", {}).get("name", "B")
        n_rows, n_cols = len(self.rows), len(COLUMNS)
        base = QFont(self.font())
        row_h = max(22.0, min(64.0, (height - 60) / (n_rows + 1)))
        font_px = max(10, min(20, int(row_h * 0.36)))
        base.setPixelSize(font_px)
        p.setFont(base)
        fm = p.fontMetrics()
        labels = [
            f"{MODALITY_WORDS.get(r, r)} (n={self.group('a', r).get('n', '?')})" for r in self.rows
        ]
        label_w = max(fm.horizontalAdvance(t) for t in labels) + 12
        gap = 14.0
        top = fm.height() * 2 + 8
        panel_w = max(60.0, (width - label_w - 2 * gap - 8) / 3)
        cell_w = panel_w / n_cols
        cell_h = min(row_h, (height - top - 8) / n_rows)
        p.setPen(text_colour)
        for i, text in enumerate(labels):
            y = top + i * cell_h
            p.drawText(
                QRectF(0, y, label_w - 8, cell_h),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                text,
            )
        panels = (("a", f"A: {a_name}"), ("b", f"B: {b_name}"), ("diff", "B − A (green: B better)"))
        diffs = [self.value("diff", r, k) for r in self.rows for k, _ in COLUMNS]
        finite = [abs(d) for d in diffs if math.isfinite(d)]
        span = max(0.05, max(finite) if finite else 0.05)
        bold = QFont(base)
        bold.setBold(True)
        for k, (side, title) in enumerate(panels):
            x0 = label_w + k * (panel_w + gap)
            p.setFont(bold)
            p.setPen(text_colour)
            p.drawText(
                QRectF(x0, 0, panel_w, fm.height() + 2),
                Qt.AlignmentFlag.AlignHCenter,
                fm.elidedText(title, Qt.TextElideMode.ElideMiddle, int(panel_w)),
            )
            p.setFont(base)
            for j, (_key, head) in enumerate(COLUMNS):
                p.setPen(QColor(theme.colour("muted")))
                p.drawText(
                    QRectF(x0 + j * cell_w, fm.height() + 4, cell_w, fm.height() + 2),
                    Qt.AlignmentFlag.AlignHCenter,
                    fm.elidedText(head, Qt.TextElideMode.ElideRight, int(cell_w)),
                )
            for i, row in enumerate(self.rows):
                for j, (key, head) in enumerate(COLUMNS):
                    v = self.value(side, row, key)
                    if side == "diff":
                        good = -v if key in LOWER_IS_BETTER else v
                        level = 0.5 + good / (2 * span)
                        text = "n/a" if not math.isfinite(v) else f"{100 * v:+.1f} pp"
                    else:
                        level = 1 - v if key in LOWER_IS_BETTER else v
                        text = "n/a" if not math.isfinite(v) else f"{100 * v:.1f}%"
                    rect = QRectF(x0 + j * cell_w, top + i * cell_h, cell_w, cell_h)
                    fill = goodness_colour(level)
                    p.fillRect(rect.adjusted(1, 1, -1, -1), fill)
                    dark = fill.lightnessF() < 0.45
                    p.setPen(QColor(theme.colour("heat_text_light" if dark else "heat_text_dark")))
                    p.drawText(
                        rect,
                        Qt.AlignmentFlag.AlignCenter,
                        fm.elidedText(text, Qt.TextElideMode.ElideRight, int(cell_w - 2)),
                    )
                    self._cells.append((rect, self._tooltip(row, key, head)))
            # A rule above "all" sets the total apart from the modalities.
            y = top + (n_rows - 1) * cell_h
            p.setPen(QColor(theme.colour("plot_bg")))
            p.drawLine(int(x0), int(y), int(x0 + panel_w), int(y))

    def _tooltip(self, row: str, key: str, head: str) -> str:
        ga, gb = self.group("a", row), self.group("b", row)
        a, b = self.value("a", row, key), self.value("b", row, key)
        a_name = (self.doc or {}).get("a", {}).get("name", "A")
        b_name = (self.doc or {}).get("b", {}).get("name", "B")

        def pct(v: float) -> str:
            return "n/a" if not math.isfinite(v) else f"{100 * v:.1f}%"

        diff = b - a
        better = "lower is better" if key in LOWER_IS_BETTER else "higher is better"
        return (
            f"{MODALITY_WORDS.get(row, row)} · {head} ({better})\n"
            f"A {a_name}: {pct(a)}   (TP {ga.get('tp', '?')}, FN {ga.get('fn', '?')}, "
            f"TN {ga.get('tn', '?')}, FP {ga.get('fp', '?')})\n"
            f"B {b_name}: {pct(b)}   (TP {gb.get('tp', '?')}, FN {gb.get('fn', '?')}, "
            f"TN {gb.get('tn', '?')}, FP {gb.get('fp', '?')})\n"
            f"B − A: {'n/a' if not math.isfinite(diff) else f'{100 * diff:+.1f} percentage points'}"
            f"   ({ga.get('n', '?')} cases)"
        )

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        text = self.tooltip_at(pos.x(), pos.y())
        if text:
            QToolTip.showText(event.globalPosition().toPoint(), text, self)
        else:
            QToolTip.hideText()
        super().mouseMoveEvent(event)

    def save_png(self, path: str | Path, scale: float = 2.0) -> Path:
        """Write the heatmap as a PNG at ``scale`` times its on-screen size.

        Raises:
            OSError: the file cannot be written.
        """
        out = Path(path)
        w, h = max(self.width(), 720), max(self.height(), 300)
        image = QImage(int(w * scale), int(h * scale), QImage.Format.Format_ARGB32)
        image.fill(QColor(theme.colour("plot_bg")))
        p = QPainter(image)
        p.scale(scale, scale)
        self.draw(p, w, h)
        p.end()
        out.parent.mkdir(parents=True, exist_ok=True)
        # PySide6 6.11 stubs type the format as bytes; the binding accepts only str (a stub gap).
        if not image.save(str(out), "PNG"):  # type: ignore[call-overload]
            raise OSError(f"{out}: the PNG could not be written")
        return out
