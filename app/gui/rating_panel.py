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

# Short labels (the row's heading asks "Which verdict is better?"), so the panel fits a narrow column.
PREFERENCES = (
    ("a", "A", "1"),
    ("b", "B", "2"),
    ("tie", "Tie", "3"),
    ("both_wrong", "Both wrong", "4"),
)
TRUE_LABELS = (("ERROR", "Error", "E"), ("CORRECT", "Correct", "C"))
SEVERITIES = (None, "critical", "high", "moderate")
HINT = (
    "Keys: 1-4 · E/C · S severity · R rationale (Esc leaves) · Enter save · J/K move · "
    "N new pair · F1 all keys"
)


class RatingPanel(QFrame):
    """The clinician's choice for the case on screen; ``saveRequested`` when Save is pressed."""

    saveRequested = Signal()
    undoRequested = Signal()
    newPairRequested = Signal()

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
        labels.addWidget(
            self.severity
        )  # compact: its items say "severity"; the key is in the tooltip
        self.rationale = QPlainTextEdit()
        self.rationale.setObjectName("rationaleEdit")
        self.rationale.setPlaceholderText(
            "Optional: the correct reason, in your words [R to write, Esc to leave]"
        )
        self.rationale.setTabChangesFocus(True)
        self.rationale.setFixedHeight(self.fontMetrics().height() * 2 + 20)
        self.save_button = QPushButton("Save && next  [Enter]")
        self.save_button.setObjectName("saveButton")
        self.save_button.setDefault(True)
        self.undo_button = QPushButton("Undo last  [Ctrl+Z]")
        self.new_pair_button = QPushButton("New pair  [N]")
        self.new_pair_button.setToolTip(
            "Rate the current review pair on this case (your earlier rating stays in the history)"
        )
        self.new_pair_button.setObjectName("newPairButton")
        self.new_pair_button.setVisible(False)
        self.state = QLabel()
        self.state.setObjectName("ratingState")
        self.state.setWordWrap(True)
        # Says, while the choice is being made, when it contradicts itself and which key fixes it.
        self.warning = QLabel()
        self.warning.setObjectName("ratingWarning")
        self.warning.setWordWrap(True)
        self.warning.setVisible(False)
        self._shown: Shown | None = None
        self._check: Any = None  # (preference, true_label) -> reason | None
        hint = QLabel(HINT)
        hint.setObjectName("hint")
        hint.setWordWrap(True)

        # Compact: each heading above its row, so the panel fits a narrow column (1024 px screens).
        grid = QGridLayout()
        grid.setVerticalSpacing(3)
        grid.addWidget(QLabel("Which verdict is better?"), 0, 0)
        grid.addLayout(prefs, 1, 0)
        grid.addWidget(QLabel("True verdict and severity"), 2, 0)
        grid.addLayout(labels, 3, 0)
        grid.addWidget(self.rationale, 4, 0)
        grid.setColumnStretch(0, 1)
        # The state sentence gets the whole width (it wraps); the new-pair button sits with the
        # other actions, so neither widens the narrow column at 1024 px.
        state_row = QHBoxLayout()
        state_row.addWidget(self.state, 1)
        actions = QHBoxLayout()
        actions.addWidget(self.new_pair_button)
        actions.addStretch(1)
        actions.addWidget(self.undo_button)
        actions.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(grid)
        layout.addWidget(self.warning)
        layout.addLayout(state_row)
        layout.addLayout(actions)
        layout.addWidget(hint)
        self.save_button.clicked.connect(self.saveRequested)
        self.undo_button.clicked.connect(self.undoRequested)
        self.new_pair_button.clicked.connect(self.newPairRequested)
        self.pref_group.buttonToggled.connect(lambda *_: self._update_warning())
        self.label_group.buttonToggled.connect(lambda *_: self._update_warning())

    # -- the choice ------------------------------------------------------------------------

    def _choice_row(
        self, prefix: str, choices
    ) -> tuple[QButtonGroup, dict[str, QPushButton], QHBoxLayout]:
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

    def set_contradiction_check(self, check: Any) -> None:
        """``check(preference, true_label) -> reason | None``: the review model's rule."""
        self._check = check
        self._update_warning()

    def contradiction(self) -> str | None:
        if self._check is None or self._shown is None or not self._shown.can_rate:
            return None
        return self._check(self.preference(), self.true_label())

    def _update_warning(self) -> None:
        why = self.contradiction()
        if why is None:
            self.warning.setVisible(False)
            return
        fix = "press 4 if both are wrong, or the other true verdict (E/C), or the other preference (1/2)"
        self.warning.setText(f"⚠ {why[0].upper()}{why[1:]}. To save, {fix}.")
        self.warning.setVisible(True)

    def missing(self) -> str | None:
        """What still has to be chosen or resolved before saving, in words; None when ready."""
        if self.preference() is None:
            return "Choose which verdict is better first (1-4)"
        if self.true_label() is None:
            return "Mark the true verdict first (E or C)"
        why = self.contradiction()
        if why is not None:
            return f"Not saved: {why}. Press 4 if both are wrong, or change the true verdict (E/C) or the preference (1/2)"
        return None

    # -- showing a case --------------------------------------------------------------------
    def show_case(self, shown: Shown | None) -> None:
        """Clear the panel, or load the rating shown with the case (its standing rating, or a
        choice still being saved) so it can be changed."""
        self._shown = shown
        rating: Any = shown.rating if shown else None
        if shown is not None and shown.pending is not None:
            rating = shown.pending
        for group in (self.pref_group, self.label_group):
            group.setExclusive(False)
            for b in group.buttons():
                b.setChecked(False)
            group.setExclusive(True)
        self.severity.setCurrentIndex(0)
        self.rationale.setPlainText("")
        enabled = shown is not None and shown.can_rate and not shown.read_only
        for w in (
            *self.pref_buttons.values(),
            *self.label_buttons.values(),
            self.severity,
            self.rationale,
            self.save_button,
        ):
            w.setEnabled(enabled)
        stale = bool(shown is not None and shown.stale)
        # A rating shown with an earlier pair cannot be saved again; N takes Save's place.
        self.new_pair_button.setVisible(stale)
        self.save_button.setVisible(not stale)
        self.new_pair_button.setEnabled(bool(shown is not None and shown.new_pair is not None))
        self.state.setProperty("kind", "")
        if rating is not None:
            self.set_preference(rating.preference)
            self.set_true_label(rating.true_label)
            self.severity.setCurrentIndex(
                SEVERITIES.index(rating.severity) if rating.severity in SEVERITIES else 0
            )
            self.rationale.setPlainText(rating.rationale or "")
        self.state.setText(self._state_text(shown))
        self.state.setToolTip(
            "Saving again replaces this rating (the old one stays in the history)"
            if shown is not None and shown.rating is not None and not shown.stale
            else ""
        )
        self._update_warning()

    @staticmethod
    def _state_text(shown: Shown | None) -> str:
        if shown is None:
            return "Not rated yet"
        if shown.read_only:
            return "Read-only workspace: you can review, but ratings are not saved"
        if shown.failed is not None:
            return f"⚠ Not saved: {shown.failed}. Press Enter to try again."
        if shown.pending is not None:
            return "Saving…"
        rating: Any = shown.rating
        if shown.stale and rating is not None:
            when = f"{rating.created_at:%Y-%m-%d %H:%M} UTC"
            if rating.imported:
                where = f"Imported rating by {rating.reviewer} ({when}, from {rating.source})"
            else:
                where = f"Rated {when} for an earlier pair (shown above)"
            if shown.new_pair is None:
                return f"{where}. The review pair has no verdicts on this case yet."
            return f"{where}. The review pair has changed: press N to rate the new pair."
        if rating is not None:
            return f"✓ Rated {rating.created_at:%Y-%m-%d %H:%M} UTC"
        if shown.earlier is not None:
            return (
                f"New pair, not rated yet (your earlier rating of {shown.earlier.created_at:%Y-%m-%d} "
                "was for another pair and stays in the history)"
            )
        if not shown.can_rate:
            return "Fewer than two verdicts from the review pair: cannot be rated yet"
        return "Not rated yet"
