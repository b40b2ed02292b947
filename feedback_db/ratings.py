"""The ratings part of the store: append-only judgements, supersession, undo, derived pairs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from feedback_db import convert
from feedback_db.current import is_current, not_superseded
from feedback_db.errors import StoreError
from feedback_db.models import (
    CaseRow,
    PredictionRow,
    PreferencePairRow,
    RatingRow,
    ReviewerRow,
    utcnow,
)
from feedback_db.pairs import contradiction, derive_pairs
from feedback_db.records import PreferencePair, Rating, RatingIn
from feedback_db.session import SessionFactory


def standing(s: Session, case_id: str, reviewer_id: int) -> RatingRow | None:
    """The reviewer's last row on the case that nothing supersedes (may be a retraction)."""
    stmt = (
        select(RatingRow)
        .where(RatingRow.case_id == case_id, RatingRow.reviewer_id == reviewer_id, not_superseded())
        .order_by(RatingRow.id.desc())
        .limit(1)
    )
    return s.scalars(stmt).first()


def insert_rating(s: Session, rating: RatingIn, *, rated_at: datetime | None = None) -> Rating:
    """``Store.add_rating`` inside the caller's session."""
    reviewer = s.get(ReviewerRow, rating.reviewer_id)
    if reviewer is None:
        raise StoreError(f"cannot rate as unknown reviewer id {rating.reviewer_id}")
    ids = (rating.prediction_a_id, rating.prediction_b_id)
    found = {p.id: p for p in s.scalars(select(PredictionRow).where(PredictionRow.id.in_(ids)))}
    texts = []
    for side, pid in zip(("A", "B"), ids, strict=True):
        pred = found.get(pid)
        # Both verdicts belonging to the case proves the case exists (foreign key), so the case
        # is looked up only to word an error.
        if (pred is None or pred.case_id != rating.case_id) and s.get(
            CaseRow, rating.case_id
        ) is None:
            raise StoreError(f"cannot rate unknown case {rating.case_id!r}")
        if pred is None:
            raise StoreError(f"verdict {side}: unknown prediction id {pid}")
        if pred.case_id != rating.case_id:
            raise StoreError(
                f"verdict {side}: prediction {pid} is for case {pred.case_id!r}, not {rating.case_id!r}"
            )
        texts.append(convert.prediction(pred, "").answer)
    why = contradiction(rating.preference, rating.true_label, texts[0], texts[1])
    if why is not None:
        raise StoreError(f"rating of case {rating.case_id} not saved: {why}")
    previous = standing(s, rating.case_id, rating.reviewer_id)
    return write_rating(
        s,
        rating,
        reviewer.name,
        (texts[0], texts[1]),
        previous.id if previous is not None else None,
        rated_at,
    )


def write_rating(
    s: Session,
    rating: RatingIn | None,
    reviewer_name: str,
    texts: tuple[str, str],
    supersedes_id: int | None,
    rated_at: datetime | None,
    *,
    fields: dict[str, Any] | None = None,
) -> Rating:
    """Insert a checked rating and its pairs. ``texts``: the answers of A and B as the clinician
    saw them (kept on the row, so the rating is always shown with what it rated);
    ``supersedes_id``: the reviewer's standing row on the case. ``fields`` gives the columns
    directly instead of ``rating`` (imports, undo), e.g. NULL prediction ids with a ``source``."""
    if fields is None:
        assert rating is not None
        fields = {
            "case_id": rating.case_id,
            "reviewer_id": rating.reviewer_id,
            "prediction_a_id": rating.prediction_a_id,
            "prediction_b_id": rating.prediction_b_id,
            "preference": rating.preference,
            "true_label": rating.true_label,
            "severity": rating.severity,
            "rationale": rating.rationale,
            "margin": rating.margin,
        }
    row = RatingRow(
        **fields,
        answer_a=texts[0],
        answer_b=texts[1],
        supersedes_id=supersedes_id,
        created_at=convert.naive_utc(rated_at) if rated_at is not None else utcnow(),
    )
    if row.retracted is None:
        row.retracted = False
    s.add(row)
    s.flush()
    if not row.retracted:
        pairs = derive_pairs(row.preference, row.true_label, row.rationale, texts[0], texts[1])
        s.add_all(
            PreferencePairRow(rating_id=row.id, case_id=row.case_id, chosen=c, rejected=r)
            for c, r in pairs
        )
    return convert.rating(row, reviewer_name)


_JUDGEMENT = (
    "case_id",
    "reviewer_id",
    "prediction_a_id",
    "prediction_b_id",
    "preference",
    "true_label",
    "severity",
    "rationale",
    "margin",
    "source",
    "imported_at",
)


def _copy(row: RatingRow, **changes: Any) -> dict[str, Any]:
    fields = {name: getattr(row, name) for name in _JUDGEMENT}
    fields.update(changes)
    return fields


class RatingsMixin:
    """Rating methods of ``Store``; see ``Store`` for the thread-safety rule."""

    _db: SessionFactory

    def add_rating(self, rating: RatingIn, *, rated_at: datetime | None = None) -> Rating:
        """Save a clinician's judgement; it supersedes the same reviewer's standing one on the case.

        Never overwrites: the previous rating stays in the history. The preference pairs the
        rating yields (feedback_db.pairs) are written in the same transaction. ``rated_at`` (UTC)
        is for imports that keep the original time; the default is now.

        Raises:
            StoreError: unknown case, reviewer or prediction, a prediction of another case, or a
                database error; nothing is saved then.
        """
        with self._db.scope("saving a rating", write=True) as s:
            return insert_rating(s, rating, rated_at=rated_at)

    def undo_rating(self, rating_id: int) -> Rating:
        """Withdraw one standing rating: append a retraction that supersedes it (history kept).

        Returns the retraction row. Raises:
            StoreError: the rating does not exist, is itself a retraction, or was superseded
                (only the standing rating can be withdrawn).
        """
        with self._db.scope("undoing a rating", write=True) as s:
            row = s.get(RatingRow, rating_id)
            if row is None:
                raise StoreError(f"cannot undo unknown rating id {rating_id}")
            if row.retracted:
                raise StoreError(f"rating {rating_id} is a retraction; rate the case again instead")
            later = s.scalars(
                select(RatingRow.id).where(RatingRow.supersedes_id == rating_id)
            ).first()
            if later is not None:
                raise StoreError(
                    f"rating {rating_id} was superseded by rating {later}; only the standing rating can be undone"
                )
            name = s.get(ReviewerRow, row.reviewer_id)
            return write_rating(
                s,
                None,
                name.name if name else "",
                (row.answer_a or "", row.answer_b or ""),
                row.id,
                None,
                fields=_copy(row, retracted=True, undo_of=row.id),
            )

    def undo_last(self, reviewer_id: int, *, since: datetime | None = None) -> Rating | None:
        """Undo the reviewer's newest rating made in the app (since ``since``, UTC) not yet undone.

        Undo lives here, not in a view, so it works after a re-rate and after a restart: the
        rating's case goes back to what it was before that rating (the earlier rating it had
        superseded, restored as a new row, or unrated), appended to the history like everything
        else. Imported ratings are not undone this way (they were not made here). Returns the row
        written, or None when there is nothing left to undo.

        Raises:
            StoreError: the case was rated again since in a way undo cannot step over (a newer
                imported rating), or a database error.
        """
        undone = aliased(RatingRow, name="undone")
        stmt = (
            select(RatingRow)
            .where(
                RatingRow.reviewer_id == reviewer_id,
                RatingRow.undo_of.is_(None),
                RatingRow.retracted.is_(False),
                RatingRow.source.is_(None),
                ~exists(select(undone.id).where(undone.undo_of == RatingRow.id)),
            )
            .order_by(RatingRow.id.desc())
            .limit(1)
        )
        if since is not None:
            stmt = stmt.where(RatingRow.created_at >= convert.naive_utc(since))
        with self._db.scope("undoing a rating", write=True) as s:
            row = s.scalars(stmt).first()
            if row is None:
                return None
            head = standing(s, row.case_id, reviewer_id)
            assert head is not None  # the row itself, or a row that supersedes it
            if head.id != row.id and head.undo_of is None and head.source is not None:
                raise StoreError(
                    f"case {row.case_id} has a newer imported rating by this reviewer; "
                    "rate the case again instead of undoing"
                )
            before = s.get(RatingRow, row.supersedes_id) if row.supersedes_id is not None else None
            name = s.get(ReviewerRow, reviewer_id)
            reviewer_name = name.name if name else ""
            if before is None or before.retracted:
                fields = _copy(row, retracted=True, undo_of=row.id)
                texts = (row.answer_a or "", row.answer_b or "")
            else:
                fields = _copy(before, retracted=False, undo_of=row.id)
                texts = (before.answer_a or "", before.answer_b or "")
            return write_rating(s, None, reviewer_name, texts, head.id, None, fields=fields)

    def current_rating(self, case_id: str, reviewer_id: int | None = None) -> Rating | None:
        """The standing rating on the case (the reviewer's, or the latest of anyone's); None if unrated."""
        stmt = (
            select(RatingRow, ReviewerRow.name)
            .join(ReviewerRow, ReviewerRow.id == RatingRow.reviewer_id)
            .where(RatingRow.case_id == case_id, is_current())
            .order_by(RatingRow.id.desc())
            .limit(1)
        )
        if reviewer_id is not None:
            stmt = stmt.where(RatingRow.reviewer_id == reviewer_id)
        with self._db.scope("reading a rating") as s:
            found = s.execute(stmt).first()
            return None if found is None else convert.rating(found[0], found[1])

    def rating_history(self, case_id: str) -> list[Rating]:
        """Every rating row on the case, oldest first, retractions and superseded ones included."""
        stmt = (
            select(RatingRow, ReviewerRow.name)
            .join(ReviewerRow, ReviewerRow.id == RatingRow.reviewer_id)
            .where(RatingRow.case_id == case_id)
            .order_by(RatingRow.id)
        )
        with self._db.scope("reading rating history") as s:
            return [convert.rating(row, name) for row, name in s.execute(stmt)]

    def rated_count(self, reviewer_id: int | None = None) -> int:
        """How many cases have a standing rating (by the reviewer, or by anyone)."""
        stmt = select(func.count(func.distinct(RatingRow.case_id))).where(is_current())
        if reviewer_id is not None:
            stmt = stmt.where(RatingRow.reviewer_id == reviewer_id)
        with self._db.scope("counting ratings") as s:
            return int(s.scalar(stmt) or 0)

    def pairs_for_rating(self, rating_id: int) -> list[PreferencePair]:
        """The preference pairs a rating yielded, in order."""
        stmt = (
            select(PreferencePairRow)
            .where(PreferencePairRow.rating_id == rating_id)
            .order_by(PreferencePairRow.id)
        )
        with self._db.scope("reading preference pairs") as s:
            return [
                PreferencePair(p.id, p.rating_id, p.case_id, p.chosen, p.rejected)
                for p in s.scalars(stmt)
            ]
