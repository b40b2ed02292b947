"""A light live plot (QPainter) for the training curves: loss, reward and KL, one panel each.

Chosen over matplotlib's canvas because it appends a point in microseconds and repaints only
when visible, so a fast stream of progress lines never slows the window. Loss, reward and KL
live on different scales, so each has its own panel with its own labelled y axis (numbers at
"nice" steps) and the latest value in its title; the panels share the x axis (progress step,
numbered), and a dashed line marks where each training stage began.
"""

from __future__ import annotations

import math

from app.gui import theme
from app.qt import QColor, QFont, QPainter, QPainterPath, QPen, QPointF, QRectF, QSize, Qt, QWidget

SERIES = (("loss", "Loss"), ("reward", "Reward"), ("kl", "KL"))


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))

    def n_ticks(step: float) -> int:
        return math.floor(hi / step + 1e-9) - math.ceil(lo / step - 1e-9) + 1

    # The round step whose tick count is nearest to ``count`` (the smaller step on a tie).
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda st: (abs(n_ticks(st) - count), st))
    digits = max(0, 1 - math.floor(math.log10(step)))
    start = math.ceil(lo / step - 1e-9)
    return [round(k * step, digits) + 0.0 for k in range(start, start + n_ticks(step))]


def tick_text(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.1e}"
    return f"{v:.3g}"


class LivePlot(QWidget):
    """Appends points per named series (loss, reward, kl) and draws one panel per series."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("livePlot")
        self.setMinimumHeight(200)
        self.series: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in SERIES}
        self.stages: list[tuple[float, str]] = []  # (x where a stage began, its name)
        self._x = 0

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(600, 300)

    def clear(self) -> None:
        for points in self.series.values():
            points.clear()
        self.stages.clear()
        self._x = 0
        self.update()

    def add(self, stage: str | None = None, **values: float | None) -> None:
        """Add the values of one progress event (None values are skipped); a new ``stage`` is
        marked on the plot where its first point lands."""
        if stage and any(v is not None for v in values.values()):
            if not self.stages or self.stages[-1][1] != stage:
                self.stages.append((float(self._x), stage))
        added = False
        for name, value in values.items():
            if value is not None and name in self.series and math.isfinite(value):
                self.series[name].append((float(self._x), float(value)))
                added = True
        if added:
            self._x += 1
            self.update()

    def point_count(self) -> int:
        return sum(len(p) for p in self.series.values())

    def panels(self) -> list[str]:
        """The series that have points (each gets a panel); all three before any point."""
        shown = [name for name, _ in SERIES if self.series[name]]
        return shown or [name for name, _ in SERIES]

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.fillRect(self.rect(), QColor(theme.colour("plot_bg")))
        fm = p.fontMetrics()
        line_h = fm.height()
        left = fm.horizontalAdvance("-0.000e+00") * 0.75 + 10
        outer = QRectF(self.rect()).adjusted(left, 6, -12, -(line_h * 2 + 6))
        names = self.panels()
        gap = line_h + 8
        height = (outer.height() - gap * (len(names) - 1)) / len(names)
        total = max(1, self._x - 1)
        muted, grid = QColor(theme.colour("muted")), QColor(theme.colour("grid"))
        labels = dict(SERIES)
        for k, name in enumerate(names):
            top = outer.top() + k * (height + gap) + line_h + 2
            rect = QRectF(outer.left(), top, outer.width(), max(10.0, height - line_h - 2))
            colour = QColor(theme.colour(name))
            points = self.series[name]
            ys = [y for _, y in points]
            title = labels[name] + (
                f"   latest {ys[-1]:.4g}   range [{min(ys):.3g}, {max(ys):.3g}]" if ys else "   —"
            )
            p.setPen(colour)
            bold = QFont(p.font())
            bold.setBold(True)
            p.setFont(bold)
            p.drawText(QPointF(rect.left(), rect.top() - 4), title)
            p.setFont(self.font())
            lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
            if hi - lo < 1e-12:
                pad = abs(lo) * 0.05 or 0.5
                lo, hi = lo - pad, hi + pad
            ticks = nice_ticks(lo, hi, 3 if rect.height() < 90 else 4)
            if ticks:
                lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
            span = hi - lo

            def y_of(v: float, rect=rect, lo=lo, span=span) -> float:
                return rect.bottom() - rect.height() * (v - lo) / span

            p.setPen(QPen(grid, 1))
            p.drawRect(rect)
            for t in ticks:
                y = y_of(t)
                p.setPen(QPen(grid, 1, Qt.PenStyle.DotLine))
                p.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
                p.setPen(muted)
                p.drawText(
                    QRectF(0, y - line_h / 2, rect.left() - 6, line_h),
                    Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                    tick_text(t),
                )
            p.setPen(QPen(muted, 1, Qt.PenStyle.DashLine))
            for x, stage in self.stages:
                px = rect.left() + rect.width() * x / total
                if x > 0:
                    p.drawLine(QPointF(px, rect.top()), QPointF(px, rect.bottom()))
                if k == 0:
                    p.drawText(QPointF(px + 4, rect.top() + line_h), stage)
            if points:
                path = QPainterPath()
                for i, (x, y) in enumerate(points):
                    pt = QPointF(rect.left() + rect.width() * x / total, y_of(y))
                    path.moveTo(pt) if i == 0 else path.lineTo(pt)
                p.setPen(QPen(colour, 2))
                p.drawPath(path)
            if k == len(names) - 1:
                p.setPen(muted)
                for t in nice_ticks(0, max(total, 4), 5):
                    if t > total or t != int(t):  # steps are counted: whole numbers only
                        continue
                    px = rect.left() + rect.width() * t / total
                    p.drawLine(QPointF(px, rect.bottom()), QPointF(px, rect.bottom() + 4))
                    p.drawText(
                        QRectF(px - 30, rect.bottom() + 4, 60, line_h),
                        Qt.AlignmentFlag.AlignHCenter,
                        tick_text(t),
                    )
                p.drawText(
                    QRectF(rect.left(), rect.bottom() + line_h + 4, rect.width(), line_h),
                    Qt.AlignmentFlag.AlignHCenter,
                    "progress step (one per reported line)",
                )
        if not self.point_count():
            p.setPen(muted)
            p.drawText(
                outer, Qt.AlignmentFlag.AlignCenter, "Curves appear as training reports progress"
            )
        p.end()
