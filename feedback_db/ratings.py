"""The ratings part of the store: append-only judgements, supersession, undo, derived pairs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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
from feedback_db.pairs import derive_pairs
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
    """``Store.add_rating`` inside the caller's session (the JSONL import batches many)."""
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
        if (pred is None or pred.case_id != rating.case_id) and s.get(CaseRow, rating.case_id) is None:
            raise StoreError(f"cannot rate unknown case {rating.case_id!r}")
        if pred is None:
            raise StoreError(f"verdict {side}: unknown prediction id {pid}")
        if pred.case_id != rating.case_id:
            raise StoreError(
                f"verdict {side}: prediction {pid} is for case {pred.case_id!r}, not {rating.case_id!r}"
            )
        texts.append(convert.prediction(pred, "").answer)
    previous = standing(s, rating.case_id, rating.reviewer_id)
    return write_rating(
        s, rating, reviewer.name, (texts[0], texts[1]), previous.id if previous is not None else None, rated_at
    )


def write_rating(
    s: Session,
    rating: RatingIn,
    reviewer_name: str,
    texts: tuple[str, str],
    supersedes_id: int | None,
    rated_at: datetime | None,
) -> Rating:
    """Insert a checked rating and its pairs. ``texts``: the answers of verdicts A and B;
    ``supersedes_id``: the reviewer's standing row on the case (the import tracks it itself)."""
    row = RatingRow(
        case_id=rating.case_id,
        reviewer_id=rating.reviewer_id,
        prediction_a_id=rating.prediction_a_id,
        prediction_b_id=rating.prediction_b_id,
        preference=rating.preference,
        true_label=rating.true_label,
        severity=rating.severity,
        rationale=rating.rationale,
        margin=rating.margin,
        supersedes_id=supersedes_id,
        retracted=False,
        created_at=convert.naive_utc(rated_at) if rated_at is not None else utcnow(),
    )
    s.add(row)
    s.flush()
    pairs = derive_pairs(rating.preference, rating.true_label, rating.rationale, texts[0], texts[1])
    s.add_all(
        PreferencePairRow(rating_id=row.id, case_id=row.case_id, chosen=c, rejected=r) for c, r in pairs
    )
    return convert.rating(row, reviewer_name)


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
        """Withdraw a standing rating: append a retraction that supersedes it (history kept).

        Returns the retraction row. Raises:
            StoreError: the rating does not exist, is itself a retraction, or was superseded
                (only the standing rating can be undone).
        """
        with self._db.scope("undoing a rating", write=True) as s:
            row = s.get(RatingRow, rating_id)
            if row is None:
                raise StoreError(f"cannot undo unknown rating id {rating_id}")
            if row.retracted:
                raise StoreError(f"rating {rating_id} is a retraction; rate the case again instead")
            later = s.scalars(select(RatingRow.id).where(RatingRow.supersedes_id == rating_id)).first()
            if later is not None:
                raise StoreError(f"rating {rating_id} was superseded by rating {later}; only the standing rating can be undone")
            retraction = RatingRow(
                case_id=row.case_id,
                reviewer_id=row.reviewer_id,
                prediction_a_id=row.prediction_a_id,
                prediction_b_id=row.prediction_b_id,
                preference=row.preference,
                true_label=row.true_label,
                severity=row.severity,
                rationale=row.rationale,
                margin=row.margin,
                supersedes_id=row.id,
                retracted=True,
            )
            s.add(retraction)
            s.flush()
            name = s.get(ReviewerRow, row.reviewer_id)
            return convert.rating(retraction, name.name if name else "")

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
        stmt = select(PreferencePairRow).where(PreferencePairRow.rating_id == rating_id).order_by(PreferencePairRow.id)
        with self._db.scope("reading preference pairs") as s:
            return [PreferencePair(p.id, p.rating_id, p.case_id, p.chosen, p.rejected) for p in s.scalars(stmt)]
