"""The review queue: which case ids to show, filtered and ordered, in one SQL query.

Built to stay fast at 50,000 cases: the filters are indexed columns, "rated" is an IN over the
standing ratings, and a version's latest prediction per case is a grouped max(id) on the
(version_id, case_id, id) index.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import aliased

from feedback_db.current import is_current
from feedback_db.models import CaseRow, ModelVersionRow, PredictionRow, RatingRow
from feedback_db.records import QUEUE_ORDERS
from feedback_db.session import SessionFactory


def _join_latest(stmt: Select[Any], version: str, tag: str) -> tuple[Select[Any], Any]:
    """Outer-join the latest prediction of ``version`` for each case; return the aliased row.

    A correlated max(id) per case is one seek on the (version_id, case_id, id) index, faster
    than grouping every prediction of the version first.
    """
    vid = select(ModelVersionRow.id).where(ModelVersionRow.name == version).scalar_subquery()
    inner = aliased(PredictionRow, name=f"inner_{tag}")
    latest = (
        select(func.max(inner.id))
        .where(inner.version_id == vid, inner.case_id == CaseRow.case_id)
        .correlate(CaseRow)
        .scalar_subquery()
    )
    pred = aliased(PredictionRow, name=f"pred_{tag}")
    return stmt.outerjoin(pred, pred.id == latest), pred


def _doubt(pred: Any) -> ColumnElement[Any]:
    """|confidence - 0.5|: 0 is a coin toss, 0.5 is certainty."""
    return func.abs(pred.confidence - 0.5)


class QueueMixin:
    """Queue methods of ``Store``; see ``Store`` for the thread-safety rule."""

    _db: SessionFactory

    def _active_name(self) -> str | None:
        with self._db.scope("reading the active version") as s:
            return s.scalar(select(ModelVersionRow.name).where(ModelVersionRow.active.is_(True)))

    def query_case_ids(
        self,
        *,
        modality: str | None = None,
        split: str | None = None,
        rated: bool | None = None,
        reviewer_id: int | None = None,
        disagree: bool | None = None,
        versions: tuple[str, str] | None = None,
        order: str = "uncertainty",
    ) -> list[str]:
        """Case ids for the queue.

        Args:
            modality, split: keep only cases with this value.
            rated: True for cases with a standing rating, False for cases without one; by
                ``reviewer_id`` when given (``reviewer_id`` alone filters nothing).
            disagree: True for cases where the latest predictions of the two ``versions`` have
                different labels, False where both exist and agree.
            versions: the two model versions compared (A and B).
            order: ``uncertainty``: least confident first, by the mean |confidence - 0.5| of the
                two versions' latest predictions (of the active version when ``versions`` is
                None), cases without confidence last, then by id; ``id``: by case id.

        Raises:
            ValueError: an unknown ``order``, or ``disagree`` without ``versions``.
            StoreError: a database error.
        """
        if order not in QUEUE_ORDERS:
            raise ValueError(f"order must be one of {', '.join(QUEUE_ORDERS)}; got {order!r}")
        if disagree is not None and versions is None:
            raise ValueError("disagree needs versions=(A, B) to compare")
        stmt: Select[Any] = select(CaseRow.case_id)
        if modality is not None:
            stmt = stmt.where(CaseRow.modality == modality)
        if split is not None:
            stmt = stmt.where(CaseRow.split == split)
        if rated is not None:
            standing = select(RatingRow.case_id).where(is_current())
            if reviewer_id is not None:
                standing = standing.where(RatingRow.reviewer_id == reviewer_id)
            in_standing = CaseRow.case_id.in_(standing)
            stmt = stmt.where(in_standing if rated else ~in_standing)
        names: tuple[str, ...] = versions or ()
        if not names and order == "uncertainty":
            active = self._active_name()
            names = (active,) if active else ()
        preds = []
        for i, name in enumerate(names):
            stmt, pred = _join_latest(stmt, name, f"v{i}")
            preds.append(pred)
        if disagree is not None:
            a, b = preds
            stmt = stmt.where(a.label != b.label if disagree else a.label == b.label)
        if order == "uncertainty" and preds:
            doubts = [_doubt(p) for p in preds]
            key: ColumnElement[Any]
            if len(doubts) == 2:
                both = (doubts[0] + doubts[1]) / 2.0
                key = case(
                    (preds[0].confidence.is_(None), doubts[1]),
                    (preds[1].confidence.is_(None), doubts[0]),
                    else_=both,
                )
            else:
                key = doubts[0]
            stmt = stmt.order_by(key.is_(None), key, CaseRow.case_id)
        else:
            stmt = stmt.order_by(CaseRow.case_id)
        with self._db.scope("querying the case queue") as s:
            return list(s.scalars(stmt))
