"""The case panel (modality, stated finding, proposed treatment) and the two blind verdict cards.

Each card shows its verdict word, the reason and the model's confidence. An UNPARSEABLE answer
is flagged in its own colour with the raw text, because every metric counts it as wrong. Which
version wrote a card is hidden until the clinician's rating on the case is saved.
"""

from __future__ import annotations

from typing import Any

from app.gui.queue_model import MODALITY_LABELS
from app.gui.review_model import ReviewModel, Shown
from app.qt import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
)

LABEL_STYLE = {
    "ERROR": "verdictError",
    "CORRECT": "verdictCorrect",
    "UNPARSEABLE": "verdictUnparseable",
}


def _label(text: str = "", name: str | None = None, wrap: bool = False) -> QLabel:
    label = QLabel(text)
    if name:
        label.setObjectName(name)
    label.setWordWrap(wrap)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class CasePanel(QFrame):
    """What was stated and proposed for the case on screen."""

    def __init__(self, review: ReviewModel, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("casePanel")
        self.case_id = _label(name="caseId", wrap=True)
        self.modality = _label(name="caseModality")
        self.finding = _label(name="caseFinding", wrap=True)
        self.treatment = _label(name="caseTreatment", wrap=True)
        grid = QGridLayout(self)
        grid.setContentsMargins(10, 8, 10, 8)
        grid.setColumnStretch(1, 1)
        for row, (title, widget) in enumerate(
            (
                ("Case", self.case_id),
                ("Modality", self.modality),
                ("Stated finding", self.finding),
                ("Proposed treatment", self.treatment),
            )
        ):
            head = QLabel(title)
            head.setObjectName("fieldTitle")
            grid.addWidget(head, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(widget, row, 1)
        # A DICOM that declares text burned into its pixels (imported with --allow-burned-in):
        # flagged here, and left out of exports until a clinician confirms it shows no identifier.
        self._review = review
        self.burned_in = _label(name="burnedInFlag", wrap=True)
        self.burned_in.setVisible(False)
        self.confirm_button = QPushButton("Confirm: no identifier in this image")
        self.confirm_button.setObjectName("confirmNoIdentifier")
        self.confirm_button.setToolTip(
            "You looked at the whole image and it shows no name, ID or date; "
            "the case may then be exported"
        )
        self.confirm_button.setVisible(False)
        self.confirm_button.clicked.connect(review.confirm_no_identifier)
        grid.addWidget(self.burned_in, 4, 0, 1, 2)
        grid.addWidget(self.confirm_button, 5, 0, 1, 2)
        review.caseChanged.connect(self.show_case)

    def show_case(self, shown: Shown | None) -> None:
        if shown is None:
            for w in (self.case_id, self.modality, self.finding, self.treatment):
                w.setText("—")
            self.finding.setText("No case in this queue. Change the filters, or import cases.")
            return
        case = shown.case
        self.case_id.setText(f"{case.case_id}   ·   split {case.split or '—'}")
        self.modality.setText(MODALITY_LABELS.get(case.modality, case.modality))
        self.finding.setText(case.finding)
        self.treatment.setText(case.treatment)
        burned = bool(getattr(case, "burned_in", False))
        cleared = getattr(case, "burned_in_cleared_by", None)
        self.burned_in.setVisible(burned)
        self.confirm_button.setVisible(burned and not cleared and not self._review.read_only)
        if burned and cleared:
            self.burned_in.setText(
                f"⚠ The file declares text burned into the image; {cleared} confirmed "
                "it shows no identifier, so it may be exported."
            )
        elif burned:
            self.burned_in.setText(
                "⚠ The file declares text burned into the image (a name, ID or date may "
                "be visible). It is left out of exports until you confirm it shows none."
            )


class VerdictCard(QFrame):
    """One model verdict, with no hint of which model wrote it until the case is rated."""

    def __init__(self, side: str, parent=None) -> None:
        super().__init__(parent)
        self.side = side
        self.setObjectName("verdictCard")
        self.title = QLabel(f"Verdict {side}")
        self.title.setObjectName("cardTitle")
        self.verdict = QLabel()
        self.verdict.setObjectName("verdictWord")
        self.reason = _label(wrap=True)
        self.reason.setObjectName("verdictReason")
        self.confidence = QProgressBar()
        self.confidence.setRange(0, 100)
        self.confidence.setTextVisible(True)
        self.confidence.setFormat("confidence %p%")
        self.author = QLabel()
        self.author.setObjectName("verdictAuthor")
        self.author.setWordWrap(True)  # compact: wraps in a narrow column instead of widening it
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(self.verdict)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addLayout(top)
        self.reason.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.reason, 1)
        layout.addWidget(self.confidence)
        layout.addWidget(self.author)
        self.reason.setMinimumHeight(54)

    def show_prediction(self, pred: Any | None, reveal: bool) -> None:
        if pred is None:
            self.verdict.setText("no verdict")
            self.verdict.setProperty("kind", "none")
            self.reason.setText("This version has not judged this case yet.")
            self.confidence.setVisible(False)
            self.author.setText("")
            self._restyle()
            return
        label = pred.label
        self.verdict.setProperty("kind", label.lower())
        if label == "UNPARSEABLE":
            self.verdict.setText("⚠ UNPARSEABLE")
            self.reason.setText(
                f"The model did not answer ERROR or CORRECT (counts as wrong):\n{pred.text}"
            )
        else:
            self.verdict.setText(label)
            self.reason.setText(pred.reason or "(no reason given)")
        if pred.confidence is None:
            self.confidence.setVisible(False)
        else:
            self.confidence.setVisible(True)
            self.confidence.setValue(round(pred.confidence * 100))
        if getattr(pred, "id", 0) is None:  # an imported rating's own text: no model wrote it here
            self.author.setText(f"As rated: {pred.version}")
        else:
            self.author.setText(
                f"Written by {pred.version}" if reveal else "Model hidden until you rate"
            )
        self._restyle()

    def _restyle(self) -> None:
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)


class VerdictPair(QWidget):
    """Cards A and B side by side; listens to the review model."""

    def __init__(self, review: ReviewModel, parent=None) -> None:
        super().__init__(parent)
        self.card_a = VerdictCard("A")
        self.card_b = VerdictCard("B")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.card_a, 1)
        layout.addWidget(self.card_b, 1)
        review.caseChanged.connect(self.show_case)

    def show_case(self, shown: Shown | None) -> None:
        reveal = shown is not None and shown.rating is not None
        for card in (self.card_a, self.card_b):
            # The cards say which pair they are: the one rated earlier, or the one to rate.
            stale = shown is not None and shown.stale
            card.title.setText(f"{card.side} as rated" if stale else f"Verdict {card.side}")
        self.card_a.show_prediction(shown.a if shown else None, reveal)
        self.card_b.show_prediction(shown.b if shown else None, reveal)
