"""The queue pane: filters, the count "rated N / total M", and the table of cases.

Changing a filter re-runs the store's queue query (``ReviewModel.set_filters``); selecting a row
shows that case. The table follows the review model's current row, so J/K and "save and next"
move the selection too.

The pane is compact: the filters are a column of boxes that each say what they filter (no
labels), and the table drops its less needed columns (split, uncertainty, modality) when the
pane is too narrow for them, so the finding keeps room; each row's tooltip has the whole case.
"""

from __future__ import annotations

from app.gui.queue_model import MODALITY_LABELS, QueueModel
from app.gui.review_model import Filters, ReviewModel
from app.qt import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    Qt,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from core.cases.records import MODALITIES, SPLITS


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
        self.disagree.setToolTip(
            "Only cases where the two compared versions give different verdicts"
        )
        self.order = QComboBox()
        self.order.addItem("Most uncertain first", "uncertainty")
        self.order.addItem("By case id", "id")
        if review.filters.order == "id":
            self.order.setCurrentIndex(1)
        for combo, tip in (
            (self.modality, "Filter by modality"),
            (self.status, "Filter by rating status"),
            (self.split, "Filter by split"),
            (self.order, "Queue order (remembered)"),
        ):
            combo.setToolTip(tip)

        form = QGridLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(4)
        form.setVerticalSpacing(3)
        form.addWidget(self.modality, 0, 0)
        form.addWidget(self.status, 1, 0)
        form.addWidget(self.split, 2, 0)
        form.addWidget(self.order, 3, 0)
        form.addWidget(self.disagree, 4, 0)

        self.count = QLabel()
        self.count.setObjectName("countLabel")
        self.count.setWordWrap(True)
        self.table = QTableView()
        self.table.setObjectName("queueTable")
        self.model = QueueModel(review, self.table)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(30)
        self._widths: dict[int, int] = {}  # (a hidden column's width reads 0)
        self.measure_columns()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)

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
        # A model reset (every re-query) shows all columns again: fit them after it.
        self.model.modelReset.connect(self.fit_columns)
        review.caseChanged.connect(self._follow_case)
        self._show_counts(len(review.rated), review.total)
        self.disagree.setEnabled(review.versions is not None)

    def measure_columns(self) -> None:
        """Fixed column widths from the font (not ResizeToContents, which would measure rows on
        every change): the widest value or header of each column. Again after a font change."""
        from app.qt import QFontMetrics

        fm = self.table.fontMetrics()
        bold = self.table.font()
        bold.setBold(True)
        bfm = QFontMetrics(bold)
        for col, samples in (
            (0, ("✓ rated", "○ to rate")),
            (1, tuple(MODALITY_LABELS.values())),
            (3, ("train", "review", "Split")),
            (4, ("0.00",)),
        ):
            head = bfm.horizontalAdvance(self.model.headerData(col, Qt.Orientation.Horizontal)) + 14
            self._widths[col] = max(head, *(fm.horizontalAdvance(t) + 14 for t in samples))
            if not self.table.isColumnHidden(col):
                self.table.setColumnWidth(col, self._widths[col])
        self._row_height()

    def _row_height(self) -> None:
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)

    # The columns dropped first when the pane is narrow; the finding keeps FINDING_MIN chars.
    OPTIONAL_COLUMNS = (3, 4, 1)
    FINDING_MIN = 16

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.fit_columns()

    def fit_columns(self) -> None:
        """Hide the optional columns the pane is too narrow for (each row's tooltip keeps them),
        so the finding column keeps room for about ``FINDING_MIN`` characters."""
        room = self.width() - 4 - self.table.verticalScrollBar().sizeHint().width()
        need = self.fontMetrics().averageCharWidth() * self.FINDING_MIN
        fixed = [c for c in range(self.model.columnCount()) if c != 2]
        hidden: set[int] = set()
        for col in (None, *self.OPTIONAL_COLUMNS):
            if col is not None:
                hidden.add(col)
            used = sum(self._widths.get(c, 0) for c in fixed if c not in hidden)
            if room - used >= need:
                break
        for col in self.OPTIONAL_COLUMNS:
            was_hidden = self.table.isColumnHidden(col)
            self.table.setColumnHidden(col, col in hidden)
            if was_hidden and col not in hidden:
                self.table.setColumnWidth(col, self._widths[col])

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
        filtered = f" · {shown} shown" if shown != total else ""
        self.count.setText(f"Rated {rated} / total {total}{filtered}")

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
