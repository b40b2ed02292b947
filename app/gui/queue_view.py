"""The queue pane: filters, the count "rated N / total M", and the table of cases.

Changing a filter re-runs the store's queue query (``ReviewModel.set_filters``); selecting a row
shows that case. The table follows the review model's current row, so J/K and "save and next"
move the selection too.
"""

from __future__ import annotations

from app.gui.queue_model import MODALITY_LABELS, QueueModel
from app.gui.review_model import Filters, ReviewModel
from app.qt import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    Qt,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from core.cases import MODALITIES, SPLITS


class QueueView(QWidget):
    """Filters above the queue table; takes the review model and listens to it."""

    def __init__(self, review: ReviewModel, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("queueView")
        self._review = review
        self._syncing = False

        self.modality = QComboBox()
        self.modality.addItem("All modalities", None)
        for m in MODALITIES:
            self.modality.addItem(MODALITY_LABELS.get(m, m), m)
        self.status = QComboBox()
        for text, value in (("All cases", None), ("To rate", False), ("Rated", True)):
            self.status.addItem(text, value)
        self.split = QComboBox()
        self.split.addItem("All splits", None)
        for s in SPLITS:
            self.split.addItem(s, s)
        self.disagree = QCheckBox("Models disagree")
        self.disagree.setToolTip("Only cases where the two compared versions give different verdicts")
        self.order = QComboBox()
        self.order.addItem("Most uncertain first", "uncertainty")
        self.order.addItem("By case id", "id")
        if review.filters.order == "id":
            self.order.setCurrentIndex(1)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Modality", self.modality)
        form.addRow("Status", self.status)
        form.addRow("Split", self.split)
        form.addRow("Order", self.order)
        form.addRow("", self.disagree)

        self.count = QLabel()
        self.count.setObjectName("countLabel")
        self.table = QTableView()
        self.table.setObjectName("queueTable")
        self.model = QueueModel(review, self.table)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 74), (1, 92), (3, 46), (4, 94)):
            self.table.setColumnWidth(col, width)
        self.table.setWordWrap(False)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.count)
        layout.addWidget(self.table, 1)

        for combo in (self.modality, self.status, self.split, self.order):
            combo.currentIndexChanged.connect(self._apply_filters)
        self.disagree.toggled.connect(self._apply_filters)
        self.table.selectionModel().currentRowChanged.connect(self._on_row_selected)
        review.countsChanged.connect(self._show_counts)
        review.caseChanged.connect(self._follow_case)
        self._show_counts(len(review.rated), review.total)
        self.disagree.setEnabled(review.versions is not None)

    def filters(self) -> Filters:
        return Filters(
            modality=self.modality.currentData(),
            split=self.split.currentData(),
            rated=self.status.currentData(),
            disagree=True if self.disagree.isChecked() else None,
            order=self.order.currentData(),
        )

    def _apply_filters(self, *_args) -> None:
        self._review.set_filters(self.filters())

    def _show_counts(self, rated: int, total: int) -> None:
        shown = len(self._review.ids)
        self.count.setText(f"Rated {rated} / total {total}   ·   {shown} in this queue")

    def _follow_case(self, _shown) -> None:
        row = self._review.row
        if row < 0 or self.table.currentIndex().row() == row:
            return
        self._syncing = True
        try:
            index = self.model.index(row, 0)
            self.table.setCurrentIndex(index)
            self.table.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)
        finally:
            self._syncing = False
        self._show_counts(len(self._review.rated), self._review.total)

    def _on_row_selected(self, current, _previous) -> None:
        if not self._syncing and current.isValid() and current.row() != self._review.row:
            self._review.go_to(current.row())
