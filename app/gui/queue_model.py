"""The case queue as a Qt item model: a list of ids, rows read from the store only when shown.

``rowCount`` is the length of the id list (one query for 50,000 cases); ``data`` reads case
records a page at a time (``PAGE`` ids in one ``get_cases`` query) the first time a row of that
page is painted, and the uncertainty of a row (two verdicts) the first time it is painted. A
queue of 50,000 cases therefore costs one id list until it is scrolled.
"""

from __future__ import annotations

from typing import Any

from app.gui import theme
from app.gui.review_model import ReviewModel, uncertainty
from app.qt import QAbstractTableModel, QBrush, QColor, QModelIndex, QPersistentModelIndex, Qt

# What Qt passes for an index: either kind (QAbstractItemModel's own signature).
Index = QModelIndex | QPersistentModelIndex

PAGE = 200
COLUMNS = ("Status", "Modality", "Finding", "Split", "Uncertainty")
MODALITY_LABELS = {
    "xray": "X-ray",
    "histopathology": "Histopathology",
    "mri": "MRI",
    "ultrasound": "Ultrasound",
}


class QueueModel(QAbstractTableModel):
    """Rows of the review queue; listens to the review model for queue and rating changes."""

    def __init__(self, review: ReviewModel, parent=None) -> None:
        super().__init__(parent)
        self._review = review
        self._pages: dict[int, dict[str, Any]] = {}
        self._uncertainty: dict[str, float | None] = {}
        review.queueChanged.connect(self._reset)
        review.rowChanged.connect(self._row_changed)

    def _reset(self) -> None:
        self.beginResetModel()
        self._pages.clear()
        self._uncertainty.clear()
        self.endResetModel()

    def _row_changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._review.ids)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def case_record(self, row: int) -> Any | None:
        """The case of ``row``, reading its page from the store on first use."""
        ids = self._review.ids
        if not 0 <= row < len(ids):
            return None
        page = row // PAGE
        records = self._pages.get(page)
        if records is None:
            chunk = ids[page * PAGE : (page + 1) * PAGE]
            records = {c.case_id: c for c in self._review.reader.get_cases(chunk)}
            self._pages[page] = records
        return records.get(ids[row])

    def _uncertainty_of(self, case_id: str) -> float | None:
        if case_id not in self._uncertainty:
            preds = self._review.reader.predictions_for_case(case_id)
            self._uncertainty[case_id] = uncertainty(preds, self._review.versions)
        return self._uncertainty[case_id]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        case_id = self._review.ids[row]
        rated = case_id in self._review.rated
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                if case_id in self._review.failed:
                    return "⚠ not saved"
                if case_id in self._review.pending:
                    return "… saving"
                return "✓ rated" if rated else "○ to rate"
            if col == 4:
                value = self._uncertainty_of(case_id)
                return "—" if value is None else f"{value:.2f}"
            case = self.case_record(row)
            if case is None:
                return ""
            if col == 1:
                return MODALITY_LABELS.get(case.modality, case.modality)
            if col == 2:
                return case.finding
            if col == 3:
                return case.split or "—"
        elif role == Qt.ItemDataRole.ToolTipRole:
            case = self.case_record(row)
            if case is not None:
                value = self._uncertainty_of(case_id)
                unsure = "—" if value is None else f"{value:.2f}"
                return (
                    f"{case.case_id} ({'rated' if rated else 'to rate'})\n"
                    f"{MODALITY_LABELS.get(case.modality, case.modality)}, split {case.split or '—'}, "
                    f"uncertainty {unsure}\n{case.finding}\nTreatment: {case.treatment}"
                )
        elif role == Qt.ItemDataRole.ForegroundRole and col == 0:
            return QBrush(QColor(theme.colour("rated" if rated else "to_rate")))
        elif role == Qt.ItemDataRole.UserRole:
            return case_id
        return None
