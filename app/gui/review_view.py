"""The review view: queue on the left, the image in the middle, case, verdicts and rating on the
right, and the keyboard shortcuts that make rating a case a few key presses.

It takes the ``ReviewModel`` and listens to it; it holds no state of its own beyond widgets.
"""

from __future__ import annotations

from typing import Any

from app.gui.image_viewer import ImageViewer
from app.gui.queue_view import QueueView
from app.gui.rating_panel import RatingPanel
from app.gui.review_model import ReviewModel, Shown
from app.gui.verdict_cards import CasePanel, VerdictPair
from app.qt import (
    QHBoxLayout,
    QKeySequence,
    QLabel,
    QPushButton,
    QShortcut,
    QSplitter,
    Qt,
    QVBoxLayout,
    QWidget,
)


class ImagePane(QWidget):
    """The image viewer with its buttons (fit, 1:1, reset) and the window/level readout."""

    def __init__(self, review: ReviewModel, parent=None) -> None:
        super().__init__(parent)
        self._review = review
        self.shown_case_id: str | None = None  # the case whose image (or error) is on screen
        self.viewer = ImageViewer()
        self.fit_button = QPushButton("Fit  [F]")
        self.actual_button = QPushButton("1:1  [O]")
        self.reset_button = QPushButton("Reset  [W]")
        self.readout = QLabel()
        self.readout.setObjectName("hint")
        bar = QHBoxLayout()
        for b in (self.fit_button, self.actual_button, self.reset_button):
            bar.addWidget(b)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.viewer, 1)
        layout.addWidget(self.readout)
        self.fit_button.clicked.connect(self.viewer.fit)
        self.actual_button.clicked.connect(self.viewer.actual_size)
        self.reset_button.clicked.connect(self.viewer.reset)
        self.viewer.windowChanged.connect(self._show_window)
        review.caseChanged.connect(self._loading)
        review.imageReady.connect(self._show_image)

    def _loading(self, shown: Shown | None) -> None:
        if shown is None:
            self.viewer.set_image(None, message="No case selected")
        elif self.shown_case_id != shown.case.case_id:
            self.viewer.set_image(None, message="Loading image…")

    def _show_image(self, case_id: str, image: Any, error: str) -> None:
        self.shown_case_id = case_id
        if image is None:
            self.viewer.set_image(None, message=error or "The image could not be shown")
            self.readout.setText("")
            return
        meta = getattr(image, "meta", {}) or {}
        raw = getattr(image, "raw", None)
        center, width = meta.get("window_center"), meta.get("window_width")
        window = (float(center), float(width)) if raw is not None and center is not None and width else None
        self.viewer.set_image(image.pixels, image.is_greyscale, window,
                              raw=raw, invert=bool(getattr(image, "invert", False)))
        self._show_window(*self.viewer.window)

    def _show_window(self, center: float, width: float) -> None:
        if self.viewer.is_greyscale:
            self.readout.setText(f"Window/level (right-drag): W {width:.4g}  L {center:.4g}")
        else:
            self.readout.setText("Colour image: no window/level")


class ReviewView(QWidget):
    """Composes the panes and binds the review keys."""

    def __init__(self, review: ReviewModel, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("reviewView")
        self.review = review
        self.queue = QueueView(review)
        self.image = ImagePane(review)
        self.case_panel = CasePanel(review)
        self.verdicts = VerdictPair(review)
        self.rating = RatingPanel()

        right = QWidget()
        col = QVBoxLayout(right)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.case_panel)
        col.addWidget(self.verdicts)
        col.addWidget(self.rating)
        col.addStretch(1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.queue)
        self.splitter.addWidget(self.image)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([400, 470, 560])
        self.splitter.setCollapsible(0, False)
        self.splitter.setCollapsible(2, False)
        self.queue.setMinimumWidth(380)
        right.setMinimumWidth(540)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.splitter)

        review.caseChanged.connect(self.rating.show_case)
        self.rating.saveRequested.connect(self.save)
        self.rating.undoRequested.connect(review.undo)
        self.shortcuts: dict[str, QShortcut] = {}
        self._bind_keys()
        if review.shown is not None:
            for view in (self.case_panel.show_case, self.verdicts.show_case, self.rating.show_case):
                view(review.shown)

    def _bind(self, keys: str | list[str], slot) -> None:
        for key in [keys] if isinstance(keys, str) else keys:
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
            self.shortcuts[key] = sc

    def _bind_keys(self) -> None:
        r = self.rating
        for value, key in (("a", "1"), ("b", "2"), ("tie", "3"), ("both_wrong", "4")):
            self._bind(key, lambda v=value: r.set_preference(v) if r.save_button.isEnabled() else None)
        self._bind("E", lambda: r.set_true_label("ERROR") if r.save_button.isEnabled() else None)
        self._bind("C", lambda: r.set_true_label("CORRECT") if r.save_button.isEnabled() else None)
        self._bind("S", r.cycle_severity)
        self._bind("R", lambda: r.rationale.setFocus(Qt.FocusReason.ShortcutFocusReason))
        self._bind("Escape", self._leave_text)
        self._bind(["Return", "Enter", "Ctrl+Return"], self.save)
        self._bind("J", self.review.next)
        self._bind("K", self.review.previous)
        self._bind("Ctrl+Z", self.review.undo)
        self._bind("F", self.image.viewer.fit)
        self._bind("O", self.image.viewer.actual_size)
        self._bind("W", self.image.viewer.reset)

    def _leave_text(self) -> None:
        self.image.viewer.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def save(self) -> None:
        """Save the panel's choice for the case on screen and move to the next case."""
        missing = self.rating.missing()
        if missing:
            self.review.message.emit(missing)
            return
        self.review.save(self.rating.preference(), self.rating.true_label(),
                         self.rating.severity_value(), self.rating.rationale_text())
        self.image.viewer.setFocus(Qt.FocusReason.OtherFocusReason)
