"""The review session's model: the queue, the case on screen, its blind A/B pair, and ratings.

Qt-aware but widget-free; the views listen to its signals (napari's ``QtDims(dims)`` idea).

Reads and writes use two ``Store`` instances (a Store is used by one thread at a time). The GUI
thread reads through its own instance (``reader``): with SQLite in WAL mode readers never wait
for the writer, and each read is one short indexed query, so showing the next case stays well
under the 30 ms budget. Every write (add a rating, undo) goes through the ``db`` lane, whose
worker thread owns the writing instance, so writes are serialised and never block the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.gui.image_cache import ImageCache
from app.gui.operations import Operations
from app.gui.queue_query import (  # noqa: F401 (re-exported for the views and tests)
    Filters,
    QueueResult,
    blind_pair,
    pick_versions,
    run_queue_query,
    uncertainty,
)
from app.qt import QObject, Signal

PREFERENCE_WORDS = {"a": "A better", "b": "B better", "tie": "tie", "both_wrong": "both wrong"}


@dataclass(frozen=True)
class Shown:
    """The case on screen: its record, verdict A and B (blind), and the current rating."""

    case: Any
    a: Any | None
    b: Any | None
    rating: Any | None
    predictions: tuple[Any, ...] = field(default=())

    @property
    def can_rate(self) -> bool:
        return self.a is not None and self.b is not None


class ReviewModel(QObject):
    """The queue and the current case; ``save`` and ``undo`` go through the db lane."""

    queueChanged = Signal()
    caseChanged = Signal(object)  # Shown | None
    imageReady = Signal(str, object, str)  # case_id, LoadedImage | None, error message
    rowChanged = Signal(int)
    countsChanged = Signal(int, int)  # rated by this reviewer, cases in the store
    message = Signal(str)  # confirmations for the status bar
    saved = Signal(object)  # the Rating just saved

    def __init__(self, reader: Any, ops: Operations, reviewer: Any, root: Path,
                 images: ImageCache | None = None, versions: tuple[str, str] | None | bool = False) -> None:
        super().__init__()
        self.reader = reader
        self.ops = ops
        self.reviewer = reviewer
        self.root = Path(root)
        self.images = images or ImageCache(ops.io)
        self.filters = Filters()
        self.ids: list[str] = []
        self.rated: set[str] = set()
        self.row = -1
        self.shown: Shown | None = None
        self.total = 0
        self._undo: list[Any] = []  # ratings saved this session, newest last
        # ``versions`` False: not given, read them now (the start-up preload passes them in).
        self.versions = pick_versions(reader.model_versions()) if versions is False else versions

    # -- queue -----------------------------------------------------------------------------
    def set_filters(self, filters: Filters) -> None:
        self.filters = filters
        self.refresh()

    def refresh(self, keep: str | None = None, result: QueueResult | None = None) -> None:
        """Re-run the queue query (or take ``result``, the same query run by the start-up
        preload); show ``keep`` (or the current case) if it is still in the queue."""
        f = self.filters
        keep = keep or (self.shown.case.case_id if self.shown else None)
        result = result or run_queue_query(self.reader, f, self.reviewer.id, self.versions)
        self.ids, self.rated = result.ids, result.rated
        if not self.total or f == Filters(order=f.order):
            self.total = len(self.ids) if f == Filters(order=f.order) else self.count_all()
        self._emit_counts()
        self.queueChanged.emit()
        index = {cid: i for i, cid in enumerate(self.ids)}.get(keep, 0) if keep else 0
        self.go_to(index if self.ids else -1)

    def count_all(self) -> int:
        return len(self.reader.query_case_ids(order="id"))

    def reload(self) -> None:
        """After an import: recount the store and re-run the queue."""
        self.total = self.count_all()
        self.versions = pick_versions(self.reader.model_versions())
        self.refresh()

    def _emit_counts(self) -> None:
        self.countsChanged.emit(len(self.rated), self.total)

    def case_at(self, row: int) -> str:
        return self.ids[row]

    # -- navigation ------------------------------------------------------------------------
    def go_to(self, row: int) -> None:
        if not self.ids or row < 0:
            self.row, self.shown = -1, None
            self.caseChanged.emit(None)
            return
        row = max(0, min(row, len(self.ids) - 1))
        self.row = row
        self.show_case(self.ids[row])

    def next(self) -> None:
        if self.row + 1 < len(self.ids):
            self.go_to(self.row + 1)

    def previous(self) -> None:
        if self.row > 0:
            self.go_to(self.row - 1)

    def open_case(self, case_id: str) -> bool:
        """Show ``case_id``; clears the filters first if the queue does not hold it."""
        if case_id not in self.ids:
            self.filters = Filters(order=self.filters.order)
            self.refresh(keep=case_id)
        if case_id in self.ids:
            self.go_to(self.ids.index(case_id))
            return True
        self.message.emit(f"Case {case_id} is not in this workspace")
        return False

    def show_case(self, case_id: str) -> None:
        case = self.reader.get_case(case_id)
        if case is None:
            self.message.emit(f"Case {case_id} has been removed from the store")
            return
        preds = self.reader.predictions_for_case(case_id)
        a, b = blind_pair(case_id, preds, self.versions)
        rating = self.reader.current_rating(case_id, self.reviewer.id)
        self.shown = Shown(case, a, b, rating, tuple(preds))
        self.caseChanged.emit(self.shown)
        self._request_image(case)
        self._prefetch()

    def image_path(self, case: Any) -> Path:
        path = Path(case.image)
        return path if path.is_absolute() else self.root / path

    def _request_image(self, case: Any) -> None:
        def deliver(image: Any, error: str | None) -> None:
            if self.shown is not None and self.shown.case.case_id == case.case_id:
                self.imageReady.emit(case.case_id, image, error or "")

        self.images.request(self.image_path(case), deliver)

    def _prefetch(self) -> None:
        rows = [r for r in (self.row + 1, self.row + 2, self.row - 1) if 0 <= r < len(self.ids)]
        cases = self.reader.get_cases([self.ids[r] for r in rows]) if rows else []
        self.images.prefetch([self.image_path(c) for c in cases])

    # -- ratings ---------------------------------------------------------------------------
    def save(self, preference: str, true_label: str, severity: str | None,
             rationale: str | None, advance: bool = True) -> bool:
        """Save the rating of the case on screen (db lane) and, by default, move on.

        Returns False (and says why on ``message``) when the case cannot be rated.
        """
        shown = self.shown
        if shown is None or not shown.can_rate:
            self.message.emit("This case has fewer than two model verdicts; it cannot be rated")
            return False
        from feedback_db.records import RatingIn

        rating_in = RatingIn(
            case_id=shown.case.case_id, reviewer_id=self.reviewer.id,
            prediction_a_id=shown.a.id, prediction_b_id=shown.b.id,
            preference=preference, true_label=true_label,
            severity=severity if true_label == "ERROR" else None,
            rationale=(rationale or "").strip() or None,
        )
        words = [PREFERENCE_WORDS[preference], true_label] + ([rating_in.severity] if rating_in.severity else [])
        reveal = f"A was {shown.a.version}, B was {shown.b.version}"

        def done(rating: Any) -> None:
            self._undo.append(rating)
            self.rated.add(rating.case_id)
            self._emit_counts()
            self._row_changed(rating.case_id)
            if self.shown is not None and self.shown.case.case_id == rating.case_id:
                self.shown = Shown(self.shown.case, self.shown.a, self.shown.b, rating, self.shown.predictions)
                self.caseChanged.emit(self.shown)
            self.message.emit(f"Saved rating for {rating.case_id} ({', '.join(words)}); {reveal}")
            self.saved.emit(rating)

        self.ops.db.submit(lambda store, _p: store.add_rating(rating_in), on_success=done,
                           what=f"Saving the rating for {rating_in.case_id}")
        if advance:
            self.next()
        return True

    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo(self) -> bool:
        """Withdraw the last rating saved in this session (the store appends a retraction)."""
        if not self._undo:
            self.message.emit("Nothing to undo")
            return False
        last = self._undo.pop()

        def done(_retraction: Any) -> None:
            self.rated.discard(last.case_id)
            self._emit_counts()
            self._row_changed(last.case_id)
            self.open_case(last.case_id)
            self.message.emit(f"Undid the rating for {last.case_id}; it is unrated again")

        def failed(exc: BaseException) -> None:
            self._undo.append(last)
            self.ops.sink.report("Undo failed", str(exc) or type(exc).__name__)

        self.ops.db.submit(lambda store, _p: store.undo_rating(last.id), on_success=done,
                           on_failure=failed)
        return True

    def _row_changed(self, case_id: str) -> None:
        # A case outside the filtered queue has no row on screen to update.
        if case_id in self.ids:
            self.rowChanged.emit(self.ids.index(case_id))
