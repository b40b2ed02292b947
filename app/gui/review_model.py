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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from feedback_db.protocols import StoreReader

UNDO_HOURS = 12
PREFERENCE_WORDS = {"a": "A better", "b": "B better", "tie": "tie", "both_wrong": "both wrong"}


@dataclass(frozen=True)
class RatedAnswer:
    """An answer a rating was given for, when it is no longer a prediction of the review pair:
    the prediction it pointed at (found by id), or the rating's own text for an imported one."""

    id: int | None
    version: str
    label: str
    reason: str
    text: str
    confidence: float | None = None

    @property
    def answer(self) -> str:
        return self.text


@dataclass(frozen=True)
class Shown:
    """The case on screen: its record, verdicts A and B (blind), and the rating shown with them.

    A rating is always shown with the two answers it was given for. When the review pair has
    changed since (a retrain, another pair chosen) or the rating was imported, ``stale`` is true:
    ``a``/``b`` are the rated answers, the rating is read-only, and ``new_pair`` holds the review
    pair's verdicts to rate instead (``ReviewModel.rate_new_pair``). ``pending`` is a choice
    confirmed but not yet in the store ("saving..."); ``failed`` says why it could not be saved.
    """

    case: Any
    a: Any | None
    b: Any | None
    rating: Any | None
    predictions: tuple[Any, ...] = field(default=())
    stale: bool = False
    new_pair: tuple[Any, Any] | None = None
    earlier: Any | None = None  # a stale rating, when the new pair is on screen instead
    pending: Any | None = None  # RatingIn on its way to the store
    failed: str | None = None
    read_only: bool = False  # the workspace cannot be written: review without saving

    @property
    def can_rate(self) -> bool:
        return self.a is not None and self.b is not None and not self.stale


def is_bound(rating: Any, a: Any | None, b: Any | None) -> bool:
    """True when ``rating`` was given for exactly verdicts ``a`` and ``b`` as shown."""
    return (
        a is not None
        and b is not None
        and rating.prediction_a_id == a.id
        and rating.prediction_b_id == b.id
    )


def rated_answers(rating: Any, by_id: dict[int, Any]) -> tuple[Any, Any]:
    """The two answers ``rating`` was given for: its predictions, or its own imported text."""
    from feedback_db.pairs import parse_label

    out = []
    for pid, text in (
        (rating.prediction_a_id, rating.answer_a),
        (rating.prediction_b_id, rating.answer_b),
    ):
        pred = by_id.get(pid) if pid is not None else None
        if pred is not None:
            out.append(pred)
            continue
        label, reason = parse_label(text or "")
        source = f"imported from {rating.source}" if rating.source else "an earlier verdict"
        out.append(RatedAnswer(pid, source, label, reason, text or ""))
    return out[0], out[1]


class ReviewModel(QObject):
    """The queue and the current case; ``save`` and ``undo`` go through the db lane."""

    queueChanged = Signal()
    caseChanged = Signal(object)  # Shown | None
    imageReady = Signal(str, object, str)  # case_id, LoadedImage | None, error message
    rowChanged = Signal(int)
    countsChanged = Signal(int, int)  # rated by this reviewer, cases in the store
    message = Signal(str)  # confirmations for the status bar
    saved = Signal(object)  # the Rating just saved

    def __init__(
        self,
        reader: StoreReader,
        ops: Operations,
        reviewer: Any,
        root: Path,
        images: ImageCache | None = None,
        versions: tuple[str, str] | None | bool = False,
    ) -> None:
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
        # Confirmed choices not yet in the store, by case: shown as "saving..." and kept across
        # navigation until the db lane has them; a failed one stays, unsaved, with its reason.
        from app.workspace import Workspace

        # A read-only workspace is reviewed without saving (clearly marked in the panel).
        self.read_only = Workspace(self.root).read_only
        self.pending: dict[str, Any] = {}
        self.failed: dict[str, str] = {}
        self.new_pair_for: set[str] = set()  # stale cases where the clinician chose the new pair
        # Undo (store.undo_last) reaches back over the reviewer's session: the ratings made in the
        # last UNDO_HOURS, so it also works after a restart.
        self.session_started = datetime.now(UTC) - timedelta(hours=UNDO_HOURS)
        # ``versions`` False: not given, read them now (the start-up preload passes them in).
        self.versions: tuple[str, str] | None = (
            self.pick_pair() if isinstance(versions, bool) else versions
        )

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
        """After an import or a retrain: recount the store, pick the review pair again and re-run
        the queue."""
        self.total = self.count_all()
        self.versions = self.pick_pair()
        self.refresh()

    def pick_pair(self) -> tuple[str, str] | None:
        """The review pair: the workspace's choice, else the active version against the newest
        candidate (queue_query.pick_versions)."""
        from app.workspace import Workspace

        return pick_versions(self.reader.model_versions(), Workspace(self.root).review_pair)

    def set_pair(self, pair: tuple[str, str] | None) -> None:
        """Choose the review pair (None: the default) and remember it in the workspace."""
        from app.workspace import Workspace

        Workspace(self.root).set_review_pair(pair)
        self.versions = self.pick_pair()
        words = " vs ".join(self.versions) if self.versions else "none (fewer than two versions)"
        self.message.emit(f"Review pair: {words}")
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
        self.shown = self._compose(case)
        if self.read_only:
            from dataclasses import replace

            self.shown = replace(self.shown, read_only=True)
        self.caseChanged.emit(self.shown)
        self._request_image(case)
        self._prefetch()

    def _compose(self, case: Any) -> Shown:
        """What to show for ``case``: the review pair, or the pair its rating was given for."""
        cid = case.case_id
        preds = self.reader.predictions_for_case(cid)
        a, b = blind_pair(cid, preds, self.versions)
        pending, failed = self.pending.get(cid), self.failed.get(cid)
        if pending is not None:
            # The pair a pending choice was made for is the one on screen when it was made.
            by_id = {p.id: p for p in preds}
            pa, pb = by_id.get(pending.prediction_a_id), by_id.get(pending.prediction_b_id)
            if pa is None or pb is None:
                found = self.reader.predictions_by_id(
                    [pending.prediction_a_id, pending.prediction_b_id]
                )
                pa, pb = found.get(pending.prediction_a_id), found.get(pending.prediction_b_id)
            return Shown(case, pa, pb, None, tuple(preds), pending=pending, failed=failed)
        rating = self.reader.current_rating(cid, self.reviewer.id)
        if rating is None or is_bound(rating, a, b):
            return Shown(case, a, b, rating, tuple(preds))
        new_pair = (a, b) if a is not None and b is not None else None
        if cid in self.new_pair_for and new_pair is not None:
            return Shown(case, a, b, None, tuple(preds), earlier=rating)
        ids = [i for i in (rating.prediction_a_id, rating.prediction_b_id) if i is not None]
        by_id = self.reader.predictions_by_id(ids) if ids else {}
        ra, rb = rated_answers(rating, by_id)
        return Shown(case, ra, rb, rating, tuple(preds), stale=True, new_pair=new_pair)

    def rate_new_pair(self) -> bool:
        """On a case whose rating was given for another pair: show the review pair to rate."""
        shown = self.shown
        if shown is None or not shown.stale:
            return False
        if shown.new_pair is None:
            self.message.emit(
                "The review pair has no verdicts on this case yet; run the models on it first"
            )
            return False
        self.new_pair_for.add(shown.case.case_id)
        self.show_case(shown.case.case_id)
        return True

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
    def contradiction(self, preference: str | None, true_label: str | None) -> str | None:
        """Why this choice contradicts itself on the case on screen (feedback_db.pairs), or None."""
        shown = self.shown
        if shown is None or not shown.can_rate or preference is None or true_label is None:
            return None
        from feedback_db.pairs import contradiction

        assert shown.a is not None and shown.b is not None  # can_rate
        return contradiction(preference, true_label, shown.a.answer, shown.b.answer)

    def save(
        self,
        preference: str,
        true_label: str,
        severity: str | None,
        rationale: str | None,
        advance: bool = True,
    ) -> bool:
        """Save the rating of the case on screen (db lane) and, by default, move on.

        The choice is kept as pending ("saving...") until the store has it, across navigation;
        the db lane waits out another program's write lock (the store retries with backoff), and
        a save that finally fails stays on screen, unsaved, with the reason. Returns False (and
        says why on ``message``) when the case cannot be rated or the choice contradicts itself.
        """
        shown = self.shown
        if shown is None or not shown.can_rate:
            if shown is not None and shown.stale:
                self.message.emit(
                    "This rating was given for an earlier pair; press N to rate the current pair"
                )
            else:
                self.message.emit("This case has fewer than two model verdicts; it cannot be rated")
            return False
        if self.read_only:
            self.message.emit(
                "This workspace is read-only: ratings cannot be saved here "
                "(copy it to a folder you can write to)"
            )
            return False
        if shown.pending is not None and shown.failed is None:
            self.message.emit(f"The rating of {shown.case.case_id} is still being saved")
            return False
        why = self.contradiction(preference, true_label)
        if why is not None:
            self.message.emit(f"Not saved: {why}")
            return False
        from feedback_db.records import RatingIn

        assert shown.a is not None and shown.b is not None  # can_rate
        rating_in = RatingIn(
            case_id=shown.case.case_id,
            reviewer_id=self.reviewer.id,
            prediction_a_id=shown.a.id,
            prediction_b_id=shown.b.id,
            preference=preference,
            true_label=true_label,
            severity=severity if true_label == "ERROR" else None,
            rationale=(rationale or "").strip() or None,
        )
        cid = rating_in.case_id
        words = [PREFERENCE_WORDS[preference], true_label] + (
            [rating_in.severity] if rating_in.severity else []
        )
        reveal = f"A was {shown.a.version}, B was {shown.b.version}"
        self.pending[cid] = rating_in
        self.failed.pop(cid, None)
        self._row_changed(cid)

        def done(rating: Any) -> None:
            if self.pending.get(cid) is rating_in:
                del self.pending[cid]
            self.new_pair_for.discard(cid)
            self.rated.add(cid)
            self._emit_counts()
            self._row_changed(cid)
            if self.shown is not None and self.shown.case.case_id == cid:
                self.shown = self._compose(self.shown.case)
                self.caseChanged.emit(self.shown)
            self.message.emit(f"Saved rating for {cid} ({', '.join(words)}); {reveal}")
            self.saved.emit(rating)

        def failed(exc: BaseException) -> None:
            from app.gui.operations import describe

            self.failed[cid] = describe(exc)
            self._row_changed(cid)
            if self.shown is not None and self.shown.case.case_id == cid:
                self.shown = self._compose(self.shown.case)
                self.caseChanged.emit(self.shown)
            self.ops.sink.report(
                f"The rating of {cid} was not saved",
                f"{describe(exc)}. Your choice is still on screen: open the case and save it again.",
            )

        self.ops.db.submit(
            lambda store, _p: store.add_rating(rating_in),
            on_success=done,
            on_failure=failed,
            what=f"Saving the rating for {cid}",
        )
        if self.shown is not None and self.shown.case.case_id == cid:
            self.shown = self._compose(self.shown.case)
            self.caseChanged.emit(self.shown)
        if advance:
            self.next()
        return True

    def confirm_no_identifier(self) -> None:
        """The clinician confirms the case on screen, whose DICOM declares burned-in text, shows
        no identifier (db lane); only then does export include its image."""
        shown = self.shown
        if shown is None or not getattr(shown.case, "burned_in", False) or self.read_only:
            return
        cid, name = shown.case.case_id, self.reviewer.name

        def done(_case: Any) -> None:
            self.message.emit(
                f"Case {cid}: you confirmed the image shows no identifier; it can be exported"
            )
            if self.shown is not None and self.shown.case.case_id == cid:
                self.show_case(cid)

        self.ops.db.submit(
            lambda store, _p: store.confirm_no_identifier(cid, name),
            on_success=done,
            what=f"Confirming the image of {cid}",
        )

    def is_saving(self, case_id: str) -> bool:
        return case_id in self.pending and case_id not in self.failed

    def undo(self) -> bool:
        """Undo this reviewer's newest rating of the session (the last ``UNDO_HOURS``), in the
        store (``undo_last``): the case goes back to its earlier rating, or to unrated. Works
        after a re-rate and after a restart, since the store keeps the history."""
        since = self.session_started

        def done(row: Any) -> None:
            if row is None:
                self.message.emit("Nothing to undo")
                return
            cid = row.case_id
            if row.retracted:
                self.rated.discard(cid)
                words = "it is unrated again"
            else:
                self.rated.add(cid)
                words = "its earlier rating stands again"
            self._emit_counts()
            self._row_changed(cid)
            self.open_case(cid)
            self.message.emit(f"Undid the rating for {cid}; {words}")

        def failed(exc: BaseException) -> None:
            from app.gui.operations import describe

            self.ops.sink.report("Undo failed", describe(exc))

        self.ops.db.submit(
            lambda store, _p: store.undo_last(self.reviewer.id, since=since),
            on_success=done,
            on_failure=failed,
            what="Undoing the last rating",
        )
        return True

    def _row_changed(self, case_id: str) -> None:
        # A case outside the filtered queue has no row on screen to update.
        if case_id in self.ids:
            self.rowChanged.emit(self.ids.index(case_id))
