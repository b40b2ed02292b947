"""The keyboard overlay (F1 or ?): every key of the app on one card over the window.

It lists the review keys (``review_view.KEY_HELP``) and the window's actions with their
shortcuts, read from the actions themselves, so the card cannot drift from what the keys do.
Any key or a click closes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.qt import QColor, QFrame, QGridLayout, QLabel, QPainter, Qt, QVBoxLayout, QWidget


class ShortcutOverlay(QWidget):
    """A dimmed layer over ``parent`` with a card of shortcuts in the middle."""

    def __init__(
        self, parent: QWidget, sections: Sequence[tuple[str, Sequence[tuple[str, str]]]]
    ) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutLayer")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.card = QFrame(self)
        self.card.setObjectName("shortcutOverlay")
        title = QLabel("Keyboard shortcuts")
        title.setObjectName("overlayTitle")
        hint = QLabel(
            "Letters work wherever the focus is, except while you type in a text box. "
            "Press any key or click to close."
        )
        hint.setObjectName("overlayText")
        hint.setWordWrap(True)
        grid = QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(3)
        # Sections flow into two columns of (key, words) pairs.
        half = (len(sections) + 1) // 2
        rows = [0, 0]
        for i, (heading, keys) in enumerate(sections):
            side = 0 if i < half else 1
            head = QLabel(heading)
            head.setObjectName("overlayHeading")
            grid.addWidget(head, rows[side], side * 2, 1, 2)
            rows[side] += 1
            for key, words in keys:
                k = QLabel(key)
                k.setObjectName("overlayKey")
                t = QLabel(words)
                t.setObjectName("overlayText")
                grid.addWidget(k, rows[side], side * 2)
                grid.addWidget(t, rows[side], side * 2 + 1)
                rows[side] += 1
        layout = QVBoxLayout(self.card)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.addWidget(title)
        layout.addLayout(grid)
        layout.addWidget(hint)
        self.hide()

    def open(self) -> None:
        parent = self.parentWidget()
        if parent is not None:  # it covers the window it was made for
            self.setGeometry(parent.rect())
        self.raise_()
        self.show()
        self.setFocus(Qt.FocusReason.PopupFocusReason)
        self._place()

    def _place(self) -> None:
        hint = self.card.sizeHint()
        w = min(hint.width(), self.width() - 20)
        h = min(
            self.card.heightForWidth(w) if self.card.hasHeightForWidth() else hint.height(),
            self.height() - 20,
        )
        self.card.setGeometry((self.width() - w) // 2, max(10, (self.height() - h) // 2), w, h)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._place()

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0, 150))
        p.end()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        self.hide()
        event.accept()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self.hide()
        event.accept()
