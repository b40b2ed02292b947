"""The review view: queue on the left, the image in the middle, case, verdicts and rating on the
right, and the keyboard shortcuts that make rating a case a few key presses.

It takes the ``ReviewModel`` and listens to it; it holds no state of its own beyond widgets.

Layout: the image gets the room. The three panes sit in a splitter whose sizes the main window
remembers; the queue and the case column have a minimum that keeps every label whole, and the
case column scrolls (vertically only) when the window is too short for it, so nothing is cut
off at any size the window allows (down to 1024 x 720).

Keys: single letters are shortcuts wherever the focus is, except in a text field (the rationale),
where they are text. The filter boxes and the queue table do not search by typed letters, so a
letter never changes a filter or jumps the queue (``_NoTypeAhead``).
"""

from __future__ import annotations

from app.gui.image_pane import ImagePane
from app.gui.queue_view import QueueView
from app.gui.rating_panel import RatingPanel
from app.gui.review_model import ReviewModel
from app.gui.verdict_cards import CasePanel, VerdictPair
from app.qt import (
    QAbstractItemView,
    QComboBox,
    QEvent,
    QFrame,
    QKeySequence,
    QLabel,
    QObject,
    QScrollArea,
    QShortcut,
    QSplitter,
    Qt,
    QVBoxLayout,
    QWidget,
)

# Every key of the review view, in words: the shortcut overlay (F1) and docs/app.md show these.
KEY_HELP: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Rate the case",
        (
            ("1 / 2", "A better / B better"),
            ("3 / 4", "tie / both wrong"),
            ("E / C", "true verdict: ERROR / CORRECT"),
            ("S", "cycle the severity"),
            ("R / Esc", "write / leave the corrected rationale"),
            ("Enter", "save and show the next case"),
            ("Ctrl+Z", "undo the last rating"),
            ("N", "rate the current pair (a case rated for an earlier one)"),
        ),
    ),
    ("Move", (("J / K", "next / previous case"),)),
    (
        "Image",
        (
            ("F / O / W", "fit / 1:1 / reset window and zoom"),
            ("wheel, drag", "zoom, pan"),
            ("right-drag", "window (across) / level (up and down)"),
            ("M, Shift+drag", "ruler (mm where the spacing is known)"),
            ("Page Up / Down", "previous / next frame"),
            ("I", "image info and kept DICOM tags"),
        ),
    ),
)


class _NoTypeAhead(QObject):
    """Stops combo boxes and tables from treating typed letters as a search (which would change
    a filter or jump the queue); arrows, Space and the app's shortcuts still work."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.KeyPress:
            mods = event.modifiers() & (
                Qt.KeyboardModifier.ControlModifier
                | Qt.KeyboardModifier.AltModifier
                | Qt.KeyboardModifier.MetaModifier
            )
            text = event.text()
            if not mods and text and text.isprintable() and not text.isspace():
                event.accept()
                return True
        return False


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
        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.setVisible(False)

        column = QWidget()
        column.setObjectName("caseColumn")
        col = QVBoxLayout(column)
        col.setContentsMargins(0, 0, 4, 0)
        col.setSpacing(6)
        col.addWidget(self.notice)
        col.addWidget(self.case_panel)
        col.addWidget(self.verdicts)
        col.addWidget(self.rating)
        col.addStretch(1)
        self.right = QScrollArea()
        self.right.setObjectName("caseScroll")
        self.right.setWidget(column)
        self.right.setWidgetResizable(True)
        self.right.setFrameShape(QFrame.Shape.NoFrame)
        self.right.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._column = column
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("reviewSplitter")
        self.splitter.addWidget(self.queue)
        self.splitter.addWidget(self.image)
        self.splitter.addWidget(self.right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        for i in range(3):
            self.splitter.setCollapsible(i, False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter)
        self._sized = False

        guard = _NoTypeAhead(self)
        self._guard = guard
        for w in self.queue.findChildren(QComboBox) + self.queue.findChildren(QAbstractItemView):
            w.installEventFilter(guard)

        review.caseChanged.connect(self.rating.show_case)
        self.rating.saveRequested.connect(self.save)
        self.rating.undoRequested.connect(review.undo)
        # Issue 9 (the lead's): the rating bound to its pair, and the contradiction check.
        if hasattr(self.rating, "newPairRequested") and hasattr(review, "rate_new_pair"):
            self.rating.newPairRequested.connect(review.rate_new_pair)
        if hasattr(self.rating, "set_contradiction_check") and hasattr(review, "contradiction"):
            self.rating.set_contradiction_check(review.contradiction)
        self.shortcuts: dict[str, QShortcut] = {}
        self._bind_keys()
        if review.shown is not None:
            for view in (self.case_panel.show_case, self.verdicts.show_case, self.rating.show_case):
                view(review.shown)

    # -- layout ----------------------------------------------------------------------------
    def column_minimum(self) -> int:
        """The case column's narrowest width that keeps every label and button whole."""
        bar = self.right.verticalScrollBar().sizeHint().width()
        return self._column.minimumSizeHint().width() + bar + 2

    def fix_minimums(self) -> None:
        """Set the panes' minimum widths from their contents (call again after a font change)."""
        self.right.setMinimumWidth(self.column_minimum())
        self.queue.setMinimumWidth(self.queue.minimumSizeHint().width())

    def default_sizes(self, width: int) -> list[int]:
        """Pane widths for a window ``width`` wide with no remembered layout: the queue and the
        case column at a comfortable width (never below their minimum), the image the rest."""
        self.fix_minimums()
        q_min, r_min = self.queue.minimumWidth(), self.right.minimumWidth()
        queue = max(q_min, min(360, int(width * 0.2)))
        right = max(r_min, min(600, int(width * 0.3)))
        image = max(self.image.minimumSizeHint().width(), width - queue - right - 16)
        return [queue, image, right]

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self.fix_minimums()
        if not self._sized:
            self._sized = True
            if not getattr(self, "_restored", False):
                # Once the window has its size (after this event), lay the panes out.
                from app.qt import QTimer

                QTimer.singleShot(0, self, self._lay_out_panes)  # cancelled if the view is gone

    def _lay_out_panes(self) -> None:
        self.splitter.setSizes(self.default_sizes(self.width()))

    def restore_layout(self, state: bytes) -> bool:
        """Restore remembered pane widths (``QSplitter.saveState``); False when unusable."""
        from app.qt import QByteArray

        ok = bool(state) and self.splitter.restoreState(QByteArray(state))
        self._restored = ok
        return ok

    def layout_state(self) -> bytes:
        return bytes(self.splitter.saveState().data())

    def show_notice(self, text: str) -> None:
        """A note above the case (a new model version waiting for this case to be finished)."""
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    # -- keys ------------------------------------------------------------------------------
    def _bind(self, keys: str | list[str], slot) -> None:
        for key in [keys] if isinstance(keys, str) else keys:
            old = self.shortcuts.pop(key, None)
            if old is not None:  # one shortcut per key: two would make the key ambiguous (dead)
                old.setParent(None)
                old.deleteLater()
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
            self.shortcuts[key] = sc

    def _bind_keys(self) -> None:
        r = self.rating
        for value, key in (("a", "1"), ("b", "2"), ("tie", "3"), ("both_wrong", "4")):
            self._bind(
                key, lambda v=value: r.set_preference(v) if r.save_button.isEnabled() else None
            )
        self._bind("E", lambda: r.set_true_label("ERROR") if r.save_button.isEnabled() else None)
        self._bind("C", lambda: r.set_true_label("CORRECT") if r.save_button.isEnabled() else None)
        self._bind("S", r.cycle_severity)
        self._bind("R", lambda: r.rationale.setFocus(Qt.FocusReason.ShortcutFocusReason))
        self._bind("Escape", self._leave_text)
        self._bind(["Return", "Enter", "Ctrl+Return"], self.save)
        self._bind("J", self.review.next)
        self._bind("K", self.review.previous)
        self._bind("Ctrl+Z", self.review.undo)
        if hasattr(self.review, "rate_new_pair"):
            self._bind("N", self.review.rate_new_pair)
        self._bind("F", self.image.viewer.fit)
        self._bind("O", self.image.viewer.actual_size)
        self._bind("W", self.image.reset)
        self._bind("M", self.image.ruler_button.toggle)
        self._bind("I", self.image.info_button.toggle)
        self._bind("PgDown", lambda: self.image.step_frame(1))
        self._bind("PgUp", lambda: self.image.step_frame(-1))

    def _leave_text(self) -> None:
        self.image.viewer.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def save(self) -> None:
        """Save the panel's choice for the case on screen and move to the next case."""
        missing = self.rating.missing()
        preference, true_label = self.rating.preference(), self.rating.true_label()
        if (
            missing or preference is None or true_label is None
        ):  # missing() names what is not chosen
            self.review.message.emit(
                missing or "Choose the better verdict and the true verdict first"
            )
            return
        self.review.save(
            preference, true_label, self.rating.severity_value(), self.rating.rationale_text()
        )
        self.image.viewer.setFocus(Qt.FocusReason.OtherFocusReason)
