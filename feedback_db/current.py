"""SQL for "the current rating": the clinical log is append-only, so current is derived.

A rating row is current when no later row supersedes it; a current retraction means unrated. The
unique index on ``ratings.supersedes_id`` makes the NOT EXISTS probe an index lookup.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.orm import aliased

from feedback_db.models import RatingRow

_Later = aliased(RatingRow, name="later")


def not_superseded() -> ColumnElement[bool]:
    """True for ratings rows nothing supersedes (includes retractions)."""
    return ~exists(select(_Later.id).where(_Later.supersedes_id == RatingRow.id))


def is_current() -> ColumnElement[bool]:
    """True for the rows that are a case's standing judgement: not superseded, not a retraction."""
    return and_(RatingRow.retracted.is_(False), not_superseded())
