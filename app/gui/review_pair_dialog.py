"""Choose the review pair: the two model versions whose verdicts the clinician rates side by side.

The default is the active version (the one clinicians use) against the newest candidate. The
choice is a workspace setting (``workspace.json`` ``review_pair``), so every window and a restart
rate the same pair; "Models disagree" and the uncertainty order follow it.
"""

from __future__ import annotations

from typing import Any

from app.qt import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)


def version_label(v: Any) -> str:
    """A version as the pickers list it: name, back end, and whether it is the active one."""
    tags = [v.backend]
    if v.active:
        tags.append("active")
    return f"{v.name}  ({', '.join(tags)})"


class ReviewPairDialog(QDialog):
    """Two pickers and a reset; ``chosen()`` is the pair, or None for the default."""

    def __init__(
        self,
        versions: list[Any],
        current: tuple[str, str] | None,
        default: tuple[str, str] | None,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Review pair")
        self._default = default
        self._use_default = False
        self.first = QComboBox()
        self.second = QComboBox()
        for box in (self.first, self.second):
            box.setObjectName("pairPicker")
            for v in versions:
                box.addItem(version_label(v), v.name)
        pair = current or default
        if pair is not None:
            self.first.setCurrentIndex(max(0, self.first.findData(pair[0])))
            self.second.setCurrentIndex(max(0, self.second.findData(pair[1])))
        intro = QLabel(
            "The two versions whose verdicts you rate side by side (shown blind, as A and B "
            "in a random order per case). Ratings made for another pair stay with that pair."
        )
        intro.setWordWrap(True)
        self.problem = QLabel()
        self.problem.setObjectName("hint")
        form = QFormLayout()
        form.addRow("Version", self.first)
        form.addRow("against", self.second)
        words = " vs ".join(default) if default else "none yet"
        self.reset = QPushButton(f"Use the default (active vs newest: {words})")
        self.reset.clicked.connect(self._choose_default)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.reset)
        layout.addWidget(buttons)
        for box in (self.first, self.second):
            box.currentIndexChanged.connect(self._check)
        self._check()

    def _check(self) -> None:
        same = self.first.currentData() == self.second.currentData()
        self.problem.setText("Choose two different versions." if same else "")
        self.ok.setEnabled(not same and self.first.count() >= 2)

    def _choose_default(self) -> None:
        self._use_default = True
        self.accept()

    def _accept(self) -> None:
        self._use_default = False
        self.accept()

    def chosen(self) -> tuple[str, str] | None:
        """The pair to remember, or None to go back to the default."""
        if self._use_default:
            return None
        pair = (str(self.first.currentData()), str(self.second.currentData()))
        return None if pair == self._default else pair
