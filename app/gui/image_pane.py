"""The image pane: the viewer, its buttons, window presets, frames and the image info panel.

Listens to the review model (``caseChanged``, ``imageReady``). What it adds to the viewer:

* the value under the cursor in the image's own units (HU for CT, stored values for other
  DICOM, the grey level or RGB of ordinary images), written in the viewer's top-left corner;
* window presets for the case's modality (``app.gui.image_info.window_presets``);
* frame scrolling for a multi-frame DICOM file (slider, Page Up / Page Down): frames are
  decoded on the io lane, one at a time, and the last few are kept;
* the image info panel (I): format, size, spacing and the tags kept in the workspace's
  de-identified copy, read on the io lane.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from app.gui import image_info
from app.gui.image_viewer import ImageViewer
from app.gui.review_model import ReviewModel, Shown
from app.qt import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    Qt,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

FRAME_CACHE = 8


class ImagePane(QWidget):
    """The image viewer with its tools, for the case on screen."""

    def __init__(self, review: ReviewModel, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("imagePane")
        self._review = review
        self.shown_case_id: str | None = None  # the case whose image (or error) is on screen
        self.image: Any = None  # the LoadedImage on screen (the current frame)
        self.path: Path | None = None
        self.modality = ""
        self.viewer = ImageViewer()
        self.fit_button = self._button("Fit", "Fit the image to the pane (F)")
        self.actual_button = self._button("1:1", "One image pixel per screen pixel (O)")
        self.ruler_button = self._button(
            "Ruler", "Measure a distance: drag on the image (M, or Shift+drag)"
        )
        self.ruler_button.setCheckable(True)
        self.info_button = self._button("Info", "Image details and the DICOM tags kept (I)")
        self.info_button.setCheckable(True)
        self.preset = QComboBox()
        self.preset.setObjectName("presetCombo")
        self.preset.setToolTip(
            "Window/level presets for this modality; Stored and W go back to the "
            "file's own (right-drag on the image to adjust)"
        )
        self.preset.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        # Preset names are at most this long, so the closed box never cuts one off.
        self.preset.setMinimumContentsLength(image_info.MAX_PRESET_NAME)
        bar = QHBoxLayout()
        bar.setSpacing(3)
        for b in (self.fit_button, self.actual_button):
            bar.addWidget(b)
        bar.addWidget(self.preset)
        bar.addWidget(self.ruler_button)
        bar.addWidget(self.info_button)
        bar.addStretch(1)

        self.frame_slider = QSlider(Qt.Orientation.Horizontal)
        self.frame_slider.setObjectName("frameSlider")
        self.frame_slider.setToolTip("Scroll the frames (Page Up / Page Down)")
        self.frame_label = QLabel()
        self.frame_label.setObjectName("hint")
        self.frames = QWidget()
        frow = QHBoxLayout(self.frames)
        frow.setContentsMargins(0, 0, 0, 0)
        frow.addWidget(QLabel("Frame"))
        frow.addWidget(self.frame_slider, 1)
        frow.addWidget(self.frame_label)
        self.frames.setVisible(False)

        # Wrapping text, not a table: a long tag value wraps instead of being cut off.
        self.info = QTextBrowser()
        self.info.setObjectName("imageInfo")
        self.info.setMaximumHeight(180)
        self.info.setVisible(False)
        self.info_rows: list[tuple[str, str]] = []
        self.pixel = QLabel()  # the value under the cursor, also drawn on the image
        self.pixel.setObjectName("pixelReadout")
        self.pixel.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(self.viewer, 1)
        layout.addWidget(self.frames)
        layout.addWidget(self.info)
        self.fit_button.clicked.connect(self.viewer.fit)
        self.actual_button.clicked.connect(self.viewer.actual_size)
        self.ruler_button.toggled.connect(self.viewer.set_ruler_mode)
        self.info_button.toggled.connect(self.show_info)
        self.preset.activated.connect(self._preset_chosen)
        self.frame_slider.valueChanged.connect(self._frame_chosen)
        self.viewer.windowChanged.connect(self._show_window)
        self.viewer.hovered.connect(self._hovered)
        review.caseChanged.connect(self._loading)
        review.imageReady.connect(self._show_image)
        self._frames: OrderedDict[int, Any] = OrderedDict()
        self._frame_wanted = 0
        self._info_for: Path | None = None

    @staticmethod
    def _button(text: str, tip: str) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setObjectName("imageTool")
        b.setToolTip(tip)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the review view, not the button
        return b

    # -- the case's image ------------------------------------------------------------------
    def _loading(self, shown: Shown | None) -> None:
        if shown is None:
            self.viewer.set_image(None, message="No case selected")
            self.image = None
        elif self.shown_case_id != shown.case.case_id:
            self.viewer.set_image(None, message="Loading image…")
        if shown is not None:
            self.modality = shown.case.modality

    def _show_image(self, case_id: str, image: Any, error: str) -> None:
        self.shown_case_id = case_id
        self._frames.clear()
        self._frame_wanted = 0
        shown = self._review.shown
        self.path = self._review.image_path(shown.case) if shown is not None else None
        if image is None:
            self.image = None
            self.viewer.set_image(None, message=error or "The image could not be shown")
            self.viewer.corner_text = {}
            self.preset.clear()
            self.preset.setEnabled(False)
            self.frames.setVisible(False)
            self._fill_info([("Image", error or "could not be shown")])
            return
        frames = int((image.meta or {}).get("frames", 1) or 1)
        self._frames[0] = image
        self.frame_slider.blockSignals(True)
        self.frame_slider.setRange(0, max(0, frames - 1))
        self.frame_slider.setValue(0)
        self.frame_slider.blockSignals(False)
        self.frames.setVisible(frames > 1 and (image.meta or {}).get("format") == "dicom")
        self._display(image, keep_window=False)
        self._fill_presets(image)
        self._info_for = None
        if self.info.isVisible():
            self.show_info(True)

    def _display(self, image: Any, keep_window: bool) -> None:
        """Put ``image`` (a frame of the case) on screen; a new frame keeps the window."""
        self.image = image
        meta = image.meta or {}
        raw = getattr(image, "raw", None)
        center, width = meta.get("window_center"), meta.get("window_width")
        window = (
            (float(center), float(width))
            if raw is not None and center is not None and width
            else None
        )
        if keep_window and self.viewer.is_greyscale:
            window = self.viewer.display_window
        fitted, transform = self.viewer._fitted, self.viewer.transform()
        self.viewer.set_image(
            image.pixels,
            image.is_greyscale,
            window,
            raw=raw,
            invert=bool(getattr(image, "invert", False)),
        )
        if keep_window and not fitted:
            self.viewer.setTransform(transform)
            self.viewer._fitted = False
        spacing = meta.get("pixel_spacing")
        self.viewer.spacing = (float(spacing[0]), float(spacing[1])) if spacing else None
        frames = int(meta.get("frames", 1) or 1)
        frame = int(meta.get("frame", 0) or 0)
        self.frame_label.setText(f"{frame + 1} / {frames}")
        self.viewer.corner_text["bottom-right"] = (
            f"frame {frame + 1}/{frames}" if frames > 1 else ""
        )
        self._show_window(*self.viewer.display_window)

    def reset(self) -> None:
        self.viewer.reset()
        self.viewer.clear_ruler()
        if self.preset.count():
            self.preset.setCurrentIndex(0)

    def _show_window(self, center: float, width: float) -> None:
        if self.image is None:
            return
        if self.viewer.is_greyscale:
            meta = self.image.meta or {}
            unit = " HU" if image_info.is_ct(meta) else ""
            if meta.get("format") != "dicom":  # grey levels 0..1 shown on the file's 0-255 scale
                center, width = center * 255, width * 255
            self.viewer.corner_text["top-right"] = f"W {width:.4g}  L {center:.4g}{unit}"
        else:
            self.viewer.corner_text["top-right"] = "colour: no window/level"
        self.viewer.viewport().update()

    def _hovered(self, x: int, y: int) -> None:
        text = (
            image_info.value_text(self.image, x, y) if self.image is not None and x >= 0 else None
        )
        self.pixel.setText(f"({x}, {y})  {text}" if text else "")
        self.viewer.corner_text["top-left"] = self.pixel.text()
        self.viewer.viewport().update()

    # -- presets ---------------------------------------------------------------------------
    def _fill_presets(self, image: Any) -> None:
        self.preset.clear()
        presets = image_info.window_presets(image, self.modality)
        for name, center, width in presets:
            self.preset.addItem(name, (center, width))
        self.preset.setEnabled(bool(presets))
        if not presets:
            self.preset.addItem("Colour: no presets")

    def _preset_chosen(self, index: int) -> None:
        window = self.preset.itemData(index)
        if window:
            self.viewer.set_window(*window)

    def apply_preset(self, index: int) -> None:
        self.preset.setCurrentIndex(index)
        self._preset_chosen(index)

    # -- frames ----------------------------------------------------------------------------
    def step_frame(self, delta: int) -> None:
        if self.frames.isVisible():
            self.frame_slider.setValue(self.frame_slider.value() + delta)

    def _frame_chosen(self, frame: int) -> None:
        self._frame_wanted = frame
        cached = self._frames.get(frame)
        if cached is not None:
            self._frames.move_to_end(frame)
            self._display(cached, keep_window=True)
            return
        path, case_id = self.path, self.shown_case_id
        if path is None:
            return

        def done(image: Any) -> None:
            if self.shown_case_id != case_id:
                return
            self._frames[frame] = image
            while len(self._frames) > FRAME_CACHE:
                self._frames.popitem(last=False)
            if self._frame_wanted == frame:
                self._display(image, keep_window=True)

        def failed(exc: BaseException) -> None:
            if self.shown_case_id == case_id:
                self._review.message.emit(f"Frame {frame + 1} cannot be shown: {exc}")

        self._review.ops.io.submit(
            lambda _p: image_info.load_frame(path, frame), on_success=done, on_failure=failed
        )

    # -- info ------------------------------------------------------------------------------
    def show_info(self, on: bool) -> None:
        """Show (or hide) the image info panel; its rows are read on the io lane."""
        if self.info_button.isChecked() != on:
            self.info_button.setChecked(on)
            return
        self.info.setVisible(on)
        if not on or self.image is None or self.path is None or self._info_for == self.path:
            return
        path, image, case_id = self.path, self._frames.get(0, self.image), self.shown_case_id
        self._info_for = path

        def done(rows: list[tuple[str, str]]) -> None:
            if self.shown_case_id == case_id:
                self._fill_info(rows)

        self._review.ops.io.submit(
            lambda _p: image_info.describe_image(path, image),
            on_success=done,
            on_failure=lambda exc: self._fill_info([("Image info", str(exc))]),
        )

    def _fill_info(self, rows: list[tuple[str, str]]) -> None:
        from html import escape

        self.info_rows = list(rows)
        body = "".join(
            f"<tr><td style='padding-right:10px'><b>{escape(name)}</b></td><td>{escape(value)}</td></tr>"
            for name, value in rows
        )
        self.info.setHtml(f"<table cellspacing='0'>{body}</table>")
