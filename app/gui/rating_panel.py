"""The rating panel: which verdict is better, the true verdict, the severity, a corrected reason.

Everything has a key (the review view binds them): 1-4 preference, E/C true verdict, S cycles
the severity, R writes a rationale (Esc leaves it), Enter saves and moves on, Ctrl+Z undoes.
The panel only holds the choice; saving is the review model's job.
"""

from __future__ import annotations

from typing import Any

from app.gui.review_model import Shown
from app.qt import (
    QButtonGroup,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    Signal,
)

PREFERENCES = (("a", "A better", "1"), ("b", "B better", "2"), ("tie", "Tie", "3"),
               ("both_wrong", "Both wrong", "4"))
TRUE_LABELS = (("ERROR", "Error", "E"), ("CORRECT", "Correct", "C"))
SEVERITIES = (None, "critical", "high", "moderate")
HINT = ("Keys: 1-4 preference · E/C true verdict · S severity · R rationale (Esc leaves) · "
        "Enter save & next · J/K next/previous · Ctrl+Z undo")


class RatingPanel(QFrame):
    """The clinician's choice for the case on screen; ``saveRequested`` when Save is pressed."""

    saveRequested = Signal()
    undoRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("ratingPanel")
        self.pref_group, self.pref_buttons, prefs = self._choice_row("pref", PREFERENCES)
        self.label_group, self.label_buttons, labels = self._choice_row("label", TRUE_LABELS)
        self.severity = QComboBox()
        self.severity.setObjectName("severityCombo")
        for value in SEVERITIES:
            self.severity.addItem("— severity" if value is None else value, value)
        self.severity.setToolTip("Severity of the error (S cycles)")
        self.severity.setMinimumWidth(120)
        labels.addWidget(QLabel("Severity [S]"))
        labels.addWidget(self.severity)
        self.rationale = QPlainTextEdit()
        self.rationale.setObjectName("rationaleEdit")
        self.rationale.setPlaceholderText("Optional: the correct reason, in your words [R to write, Esc to leave]")
        self.rationale.setTabChangesFocus(True)
        self.rationale.setFixedHeight(58)
        self.save_button = QPushButton("Save && next  [Enter]")
        self.save_button.setObjectName("saveButton")
        self.save_button.setDefault(True)
        self.undo_button = QPushButton("Undo last  [Ctrl+Z]")
        self.state = QLabel()
        self.state.setObjectName("ratingState")
        hint = QLabel(HINT)
        hint.setObjectName("hint")
        hint.setWordWrap(True)

        grid = QGridLayout()
        grid.addWidget(QLabel("Which verdict is better?"), 0, 0)
        grid.addLayout(prefs, 0, 1)
        grid.addWidget(QLabel("True verdict"), 1, 0)
        grid.addLayout(labels, 1, 1)
        grid.addWidget(QLabel("Rationale"), 2, 0)
        grid.addWidget(self.rationale, 2, 1)
        grid.setColumnStretch(1, 1)
        actions = QHBoxLayout()
        actions.addWidget(self.state, 1)
        actions.addWidget(self.undo_button)
        actions.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addLayout(grid)
        layout.addLayout(actions)
        layout.addWidget(hint)
        self.save_button.clicked.connect(self.saveRequested)
        self.undo_button.clicked.connect(self.undoRequested)

    # -- the choice ------------------------------------------------------------------------

    def _choice_row(self, prefix: str, choices) -> tuple[QButtonGroup, dict[str, QPushButton], QHBoxLayout]:
        """One exclusive row of checkable buttons, each labelled with its key."""
        group = QButtonGroup(self)
        buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        for value, text, key in choices:
            button = QPushButton(f"{text}  [{key}]")
            button.setCheckable(True)
            button.setObjectName(f"{prefix}_{value}")
            group.addButton(button)
            buttons[value] = button
            row.addWidget(button)
        return group, buttons, row
    def set_preference(self, value: str) -> None:
        self.pref_buttons[value].setChecked(True)

    def set_true_label(self, value: str) -> None:
        self.label_buttons[value].setChecked(True)

    def cycle_severity(self) -> None:
        self.severity.setCurrentIndex((self.severity.currentIndex() + 1) % self.severity.count())

    def preference(self) -> str | None:
        return next((v for v, b in self.pref_buttons.items() if b.isChecked()), None)

    def true_label(self) -> str | None:
        return next((v for v, b in self.label_buttons.items() if b.isChecked()), None)

    def severity_value(self) -> str | None:
        return self.severity.currentData()

    def rationale_text(self) -> str | None:
        return self.rationale.toPlainText().strip() or None

    def missing(self) -> str | None:
        """What still has to be chosen before saving, in words; None when complete."""
        if self.preference() is None:
            return "Choose which verdict is better first (1-4)"
        if self.true_label() is None:
            return "Mark the true verdict first (E or C)"
        return None

    # -- showing a case --------------------------------------------------------------------
    def show_case(self, shown: Shown | None) -> None:
        """Clear the panel, or load the standing rating of the case so it can be changed."""
        rating: Any = shown.rating if shown else None
        for group in (self.pref_group, self.label_group):
            group.setExclusive(False)
            for b in group.buttons():
                b.setChecked(False)
            group.setExclusive(True)
        self.severity.setCurrentIndex(0)
        self.rationale.setPlainText("")
        enabled = shown is not None and shown.can_rate
        for w in (*self.pref_buttons.values(), *self.label_buttons.values(), self.severity,
                  self.rationale, self.save_button):
            w.setEnabled(enabled)
        if rating is not None:
            self.set_preference(rating.preference)
            self.set_true_label(rating.true_label)
            self.severity.setCurrentIndex(SEVERITIES.index(rating.severity) if rating.severity in SEVERITIES else 0)
            self.rationale.setPlainText(rating.rationale or "")
            self.state.setText(f"✓ Rated {rating.created_at:%Y-%m-%d %H:%M} UTC")
            self.state.setToolTip("Saving again replaces this rating (the old one stays in the history)")
        elif shown is not None and not shown.can_rate:
            self.state.setText("Fewer than two verdicts: cannot be rated")
        else:
            self.state.setText("Not rated yet")
