"""A light live line plot (QPainter) for the training curves: loss, reward and KL per step.

Chosen over matplotlib's canvas because it appends a point in microseconds and repaints only
when visible, so a fast stream of progress lines never slows the window. Each series is scaled to
its own range (the legend shows the latest value and the range), since loss, reward and KL live
on different scales.
"""

from __future__ import annotations

from app.qt import QColor, QPainter, QPainterPath, QPen, QPointF, QRectF, QSize, Qt, QWidget

SERIES_COLOURS = {"loss": "#d84315", "reward": "#2e7d32", "kl": "#1565c0"}


class LivePlot(QWidget):
    """Appends (x, y) points per named series and draws them, each normalised to its range."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("livePlot")
        self.setMinimumHeight(180)
        self.series: dict[str, list[tuple[float, float]]] = {name: [] for name in SERIES_COLOURS}
        self.stages: list[tuple[float, str]] = []  # (x where a stage began, its name)
        self._x = 0

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(600, 220)

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
            if value is not None and name in self.series:
                self.series[name].append((float(self._x), float(value)))
                added = True
        if added:
            self._x += 1
            self.update()

    def point_count(self) -> int:
        return sum(len(p) for p in self.series.values())

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        rect = QRectF(self.rect()).adjusted(44, 26, -12, -22)
        p.fillRect(self.rect(), QColor("#ffffff"))
        p.setPen(QPen(QColor("#c9ced6"), 1))
        p.drawRect(rect)
        for i in range(1, 4):
            y = rect.top() + rect.height() * i / 4
            p.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
        total = max(1, self._x - 1)
        p.setPen(QPen(QColor("#8a94a0"), 1, Qt.PenStyle.DashLine))
        for x, name in self.stages:
            px = rect.left() + rect.width() * x / total
            if x > 0:
                p.drawLine(QPointF(px, rect.top()), QPointF(px, rect.bottom()))
            p.drawText(QPointF(px + 4, rect.bottom() - 4), name)
        legend_x = rect.left()
        any_points = False
        for name, points in self.series.items():
            colour = QColor(SERIES_COLOURS[name])
            if points:
                any_points = True
                ys = [y for _, y in points]
                lo, hi = min(ys), max(ys)
                span = (hi - lo) or 1.0
                path = QPainterPath()
                for i, (x, y) in enumerate(points):
                    pt = QPointF(rect.left() + rect.width() * x / total,
                                 rect.bottom() - rect.height() * (y - lo) / span)
                    path.moveTo(pt) if i == 0 else path.lineTo(pt)
                p.setPen(QPen(colour, 2))
                p.drawPath(path)
                text = f"{name} {ys[-1]:.4g}  [{lo:.3g}, {hi:.3g}]"
            else:
                text = f"{name} —"
            p.setPen(colour)
            p.drawText(QPointF(legend_x, 17), text)
            legend_x += p.fontMetrics().horizontalAdvance(text) + 24
        p.setPen(QColor("#5f6670"))
        p.drawText(QPointF(rect.left(), rect.bottom() + 16), "step")
        p.drawText(QRectF(0, rect.top(), 40, 16), Qt.AlignmentFlag.AlignRight, "max")
        p.drawText(QRectF(0, rect.bottom() - 14, 40, 16), Qt.AlignmentFlag.AlignRight, "min")
        if not any_points:
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "Curves appear as training reports progress")
        p.end()
