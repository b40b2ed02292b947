"""The image viewer: fit, zoom on the wheel, pan by dragging, 1:1, window/level by right-drag.

Greyscale images (X-ray, MRI, ultrasound, DICOM) arrive from ``core.cases.images.LoadedImage``:
window/level re-maps the values before any window (``raw``: DICOM modality values such as HU,
inverted for MONOCHROME1), starting from the file's own window, so nothing the first window
clipped is lost; images without ``raw`` are re-mapped from their 0..1 grey levels. While the right button is
held the re-map runs on a downsampled preview (at most ``PREVIEW_SIDE`` pixels a side), scaled to
the full size, so dragging stays smooth on a 4k image; releasing the button renders at full
resolution. Colour images (histopathology) have no window/level.

Over the image, in the corners as on a reading-room workstation: the pixel under the cursor
(``hovered(x, y)``; the pane puts the value in words), the window, the zoom and the frame, and,
where the pixel spacing is known, a scale bar in millimetres. The ruler (``M``, or Shift+drag)
measures a distance: in mm with a known spacing, else in pixels.
"""

from __future__ import annotations

import math

import numpy as np

from app.gui import theme
from app.qt import (
    QColor,
    QFont,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QImage,
    QPainter,
    QPen,
    QPixmap,
    QPointF,
    QRectF,
    Qt,
    QTransform,
    Signal,
)

PREVIEW_SIDE = 768
MIN_WIDTH = 1.0 / 255.0


def apply_window(
    pixels: np.ndarray, center: float, width: float, invert: bool = False
) -> np.ndarray:
    """Map values through a window ``center`` +/- ``width``/2 to uint8 (inverted if asked)."""
    width = max(width, 1e-12)
    low = center - width / 2.0
    out = (pixels.astype(np.float32, copy=False) - np.float32(low)) * np.float32(255.0 / width)
    np.clip(out, 0.0, 255.0, out=out)
    grey = out.astype(np.uint8)
    return 255 - grey if invert else grey


def to_qimage(array: np.ndarray) -> QImage:
    """A QImage that owns a copy of ``array`` (H x W uint8 greyscale or H x W x 3 uint8 RGB)."""
    array = np.ascontiguousarray(array)
    h, w = array.shape[:2]
    if array.ndim == 2:
        img = QImage(array.data, w, h, array.strides[0], QImage.Format.Format_Grayscale8)
    else:
        img = QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGB888)
    return img.copy()


class ImageViewer(QGraphicsView):
    """Shows one image; ``windowChanged(center, width)`` while window/level changes."""

    windowChanged = Signal(float, float)
    hovered = Signal(int, int)  # image pixel under the cursor; (-1, -1) when it leaves the image
    measured = Signal(str)  # the ruler's length in words

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("imageViewer")
        self._scene = QGraphicsScene(self)
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._scene.addItem(self._item)
        self.setScene(self._scene)
        self.setBackgroundBrush(QColor(theme.VIEWER_BG))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setMinimumSize(220, 200)
        self.viewport().setMouseTracking(True)
        self._pixels: np.ndarray | None = None
        self._preview: np.ndarray | None = None
        self._grey = False
        self._center, self._width = 0.5, 1.0
        self._default = (0.5, 1.0)
        self._span = 1.0  # the default window's width: the unit of drag sensitivity and limits
        self._invert = False
        self._drag_origin: tuple[float, float, float, float] | None = None
        self._fitted = True
        self._message = ""
        self.spacing: tuple[float, float] | None = None  # (row, column) mm per pixel
        self.corner_text: dict[str, str] = {}  # top-left, top-right, bottom-right overlays
        self.ruler_mode = False
        self._ruler: tuple[QPointF, QPointF] | None = None  # scene points
        self._measuring = False

    # -- content ---------------------------------------------------------------------------
    @property
    def is_greyscale(self) -> bool:
        return self._grey

    @property
    def display_window(self) -> tuple[float, float]:
        """The window/level now shown: (centre, width). Not ``window``: that is QWidget's."""
        return self._center, self._width

    def has_image(self) -> bool:
        return self._pixels is not None

    def set_image(
        self,
        pixels: np.ndarray | None,
        is_greyscale: bool = True,
        window: tuple[float, float] | None = None,
        message: str = "",
        raw: np.ndarray | None = None,
        invert: bool = False,
    ) -> None:
        """Show ``pixels`` (None clears the view and shows ``message`` instead).

        Args:
            window: the starting window (centre, width) in the units of ``raw`` when given,
                else of ``pixels``; default: all of 0..1, or the full range of ``raw``.
            raw: greyscale values before windowing (``LoadedImage.raw``), re-windowed instead
                of ``pixels`` so a new window can show what the first one clipped.
            invert: display inverted (MONOCHROME1).
        """
        self._ruler = None
        self._message = message
        if pixels is None:
            self._pixels = self._preview = None
            self._grey = self._invert = False
            self._item.setPixmap(QPixmap())
            self.viewport().update()
            return
        grey = bool(is_greyscale) and pixels.ndim == 2
        source = raw if grey and raw is not None and raw.shape == pixels.shape else pixels
        use_raw = source is raw
        self._pixels = source
        self._grey = grey
        self._invert = bool(invert) and use_raw
        if self._grey:
            step = max(1, int(np.ceil(max(source.shape) / PREVIEW_SIDE)))
            self._preview = source[::step, ::step] if step > 1 else source
            if window is None or not window[1] > 0:
                lo, hi = (float(source.min()), float(source.max())) if use_raw else (0.0, 1.0)
                window = ((lo + hi) / 2.0, (hi - lo) or 1.0)
        self._default = (float(window[0]), float(window[1])) if window else (0.5, 1.0)
        self._span = self._default[1]
        self._center, self._width = self._default
        self._render(full=True)
        self._scene.setSceneRect(self._item.boundingRect())
        self.fit()

    def _render(self, full: bool) -> None:
        if self._pixels is None:
            return
        if not self._grey:
            self._item.setPixmap(QPixmap.fromImage(to_qimage(self._pixels)))
            self._item.setTransform(QTransform())
            return
        source = self._pixels if full or self._preview is None else self._preview
        pix = QPixmap.fromImage(
            to_qimage(apply_window(source, self._center, self._width, self._invert))
        )
        self._item.setPixmap(pix)
        scale = self._pixels.shape[1] / source.shape[1]
        self._item.setTransform(QTransform.fromScale(scale, scale))

    def set_window(self, center: float, width: float, full: bool = True) -> None:
        """Set the window (units of the image's values); limits scale with the default window."""
        low, high = self._default[0] - 2 * self._span, self._default[0] + 2 * self._span
        self._center = float(np.clip(center, low, high))
        self._width = float(np.clip(width, self._span * MIN_WIDTH, self._span * 4.0))
        if self._grey:
            self._render(full)
        self.windowChanged.emit(self._center, self._width)

    # -- view ------------------------------------------------------------------------------
    def fit(self) -> None:
        if self._pixels is not None:
            self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)
            self._fitted = True

    def actual_size(self) -> None:
        self.setTransform(QTransform())
        self._fitted = False

    def zoom(self, factor: float) -> None:
        current = self.transform().m11()
        if 0.05 <= current * factor <= 40:
            self.scale(factor, factor)
            self._fitted = False

    def reset(self) -> None:
        """Fit and the default window/level."""
        self.set_window(*self._default)
        self.fit()

    def zoom_level(self) -> float:
        return self.transform().m11()

    # -- ruler -----------------------------------------------------------------------------
    def set_ruler_mode(self, on: bool) -> None:
        """In ruler mode a left-drag measures instead of panning (Shift+drag always measures)."""
        self.ruler_mode = bool(on)
        self.setDragMode(
            QGraphicsView.DragMode.NoDrag if on else QGraphicsView.DragMode.ScrollHandDrag
        )
        self.viewport().setCursor(
            Qt.CursorShape.CrossCursor if on else Qt.CursorShape.OpenHandCursor
        )

    def distance(self, a: QPointF, b: QPointF) -> tuple[float, str]:
        """The length from scene point ``a`` to ``b``: (value, unit), mm where the spacing is known."""
        dx, dy = b.x() - a.x(), b.y() - a.y()
        if self.spacing:
            row, col = self.spacing
            return math.hypot(dx * col, dy * row), "mm"
        return math.hypot(dx, dy), "px"

    def measure(self, a: QPointF, b: QPointF) -> str:
        """Draw the ruler from ``a`` to ``b`` (scene points) and return its length in words."""
        self._ruler = (a, b)
        value, unit = self.distance(a, b)
        text = f"{value:.1f} {unit}"
        self.viewport().update()
        self.measured.emit(text)
        return text

    def clear_ruler(self) -> None:
        self._ruler = None
        self.viewport().update()

    # -- events ----------------------------------------------------------------------------
    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        delta = event.angleDelta().y()
        if delta:
            self.zoom(1.0015**delta)
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    def _wants_ruler(self, event) -> bool:
        return (
            event.button() == Qt.MouseButton.LeftButton
            and self._pixels is not None
            and (self.ruler_mode or bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))
        )

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self._wants_ruler(event):
            start = self.mapToScene(event.position().toPoint())
            self._measuring = True
            self.measure(start, start)
            event.accept()
            return
        if event.button() == Qt.MouseButton.RightButton and self._grey:
            p = event.position()
            self._drag_origin = (p.x(), p.y(), self._center, self._width)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._pixels is not None:
            pt = self.mapToScene(event.position().toPoint())
            h, w = self._pixels.shape[:2]
            x, y = math.floor(pt.x()), math.floor(pt.y())
            self.hovered.emit(*((x, y) if 0 <= x < w and 0 <= y < h else (-1, -1)))
            if self._measuring and self._ruler is not None:
                self.measure(self._ruler[0], pt)
                event.accept()
                return
        if self._drag_origin is not None:
            x0, y0, c0, w0 = self._drag_origin
            p = event.position()
            # Horizontal drag changes the width (contrast), vertical the level (brightness).
            self.set_window(
                c0 - (p.y() - y0) * self._span / 400.0, w0 * (1.0025 ** (p.x() - x0)), full=False
            )
            event.accept()
            return
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self.hovered.emit(-1, -1)
        super().leaveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._measuring and event.button() == Qt.MouseButton.LeftButton:
            self._measuring = False
            event.accept()
            return
        if event.button() == Qt.MouseButton.RightButton and self._drag_origin is not None:
            self._drag_origin = None
            self._render(full=True)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (right-drag is window/level)
        event.accept()

    def drawForeground(self, painter: QPainter, rect) -> None:  # noqa: N802
        painter.save()
        painter.resetTransform()
        view = QRectF(self.viewport().rect())
        if self._pixels is None:
            if self._message:
                painter.setPen(QColor(theme.VIEWER_TEXT))
                painter.drawText(
                    view, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message
                )
            painter.restore()
            return
        fm = painter.fontMetrics()
        pad = 6.0
        corners = {
            "top-left": Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
            "top-right": Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
            "bottom-right": Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
        }
        inner = view.adjusted(pad, pad, -pad, -pad)
        for key, align in corners.items():
            text = self.corner_text.get(key)
            if text:
                self._shadow_text(painter, inner, align, text)
        if self.spacing:
            self._scale_bar(painter, inner, fm.height())
        if self._ruler is not None:
            a, b = (self.mapFromScene(p) for p in self._ruler)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setPen(QPen(QColor("#000000"), 4))
            painter.drawLine(a, b)
            painter.setPen(QPen(QColor("#ffd54f"), 2))
            painter.drawLine(a, b)
            for end in (a, b):
                painter.drawEllipse(QPointF(end), 3.0, 3.0)
            value, unit = self.distance(*self._ruler)
            mid = QRectF(
                QPointF((a.x() + b.x()) / 2 + 8, (a.y() + b.y()) / 2 - fm.height()),
                view.bottomRight(),
            )
            self._shadow_text(
                painter,
                mid,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                f"{value:.1f} {unit}",
                colour="#ffd54f",
            )
        painter.restore()

    def _shadow_text(
        self, painter: QPainter, rect: QRectF, align, text: str, colour: str | None = None
    ) -> None:
        """Text that reads on any grey: a dark outline under a light fill."""
        painter.setPen(QColor("#000000"))
        for dx, dy in ((1, 1), (-1, -1), (1, -1), (-1, 1)):
            painter.drawText(rect.translated(dx, dy), align, text)
        painter.setPen(QColor(colour or theme.VIEWER_TEXT))
        painter.drawText(rect, align, text)

    def _scale_bar(self, painter: QPainter, inner: QRectF, line_h: float) -> None:
        """A bar of a round number of millimetres, about a fifth of the view wide, bottom left."""
        row, col = self.spacing or (0.0, 0.0)
        px_per_mm = self.transform().m11() / col if col > 0 else 0.0
        if px_per_mm <= 0:
            return
        target = inner.width() / 5 / px_per_mm
        mm = next((m for m in (1, 2, 5, 10, 20, 50, 100, 200, 500) if m >= target * 0.6), 500)
        length = mm * px_per_mm
        y = inner.bottom() - 4
        x0 = inner.left()
        painter.setPen(QPen(QColor("#000000"), 5))
        painter.drawLine(QPointF(x0, y), QPointF(x0 + length, y))
        painter.setPen(QPen(QColor(theme.VIEWER_TEXT), 3))
        painter.drawLine(QPointF(x0, y), QPointF(x0 + length, y))
        font = QFont(painter.font())
        painter.setFont(font)
        self._shadow_text(
            painter,
            QRectF(x0, y - line_h - 6, length + 80, line_h + 2),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
            f"{mm} mm",
        )
