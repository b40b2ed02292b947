"""The SQLAlchemy 2 typed mapping of the store's tables.

Migrations in ``feedback_db/migrations`` create these tables; ``Base.metadata`` is only the
in-code description (a test checks the two agree). Clinical judgements (``ratings``,
``preference_pairs``) are only ever inserted: a changed rating is a new row that supersedes the
old one. Times are naive UTC in the database and made aware in the records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Now, as the naive UTC datetime the columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class ReviewerRow(Base):
    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CaseRow(Base):
    __tablename__ = "cases"

    case_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    modality: Mapped[str] = mapped_column(String(50), index=True)
    image: Mapped[str] = mapped_column(Text)
    finding: Mapped[str] = mapped_column(Text)
    treatment: Mapped[str] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(String(100))
    severity: Mapped[str | None] = mapped_column(String(20))
    cost_impact: Mapped[float | None] = mapped_column(Float)
    split: Mapped[str | None] = mapped_column(String(20), index=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The DICOM declared burned-in annotation (text in the pixels); export leaves the image out
    # until a clinician confirms it shows no identifier (revision 0003).
    burned_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    burned_in_cleared_by: Mapped[str | None] = mapped_column(String(200))
    burned_in_cleared_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    backend: Mapped[str] = mapped_column(String(50))
    base_model: Mapped[str] = mapped_column(Text)
    parent: Mapped[str | None] = mapped_column(ForeignKey("model_versions.name"))
    path: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    # sha256 of model_card.json when the version was registered; checked at load (revision 0003).
    card_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EvaluationRow(Base):
    """One evaluation of a version and the promotion decision taken on it (revision 0002)."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    promoted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PredictionRow(Base):
    __tablename__ = "predictions"
    # "Latest prediction of a version for a case" is max(id) per (version, case).
    __table_args__ = (Index("ix_predictions_version_case_id", "version_id", "case_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), index=True)
    label: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RatingRow(Base):
    __tablename__ = "ratings"
    __table_args__ = (Index("ix_ratings_case_reviewer", "case_id", "reviewer_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("reviewers.id"), index=True)
    # The predictions the rating was given for; NULL for an imported rating, which keeps the other
    # workstation's answers as its own text (answer_a/answer_b) with its provenance (revision 0003).
    prediction_a_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id"))
    prediction_b_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id"))
    answer_a: Mapped[str | None] = mapped_column(Text)
    answer_b: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[datetime | None] = mapped_column(DateTime)
    preference: Mapped[str] = mapped_column(String(20))
    true_label: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str | None] = mapped_column(String(20))
    rationale: Mapped[str | None] = mapped_column(Text)
    margin: Mapped[float | None] = mapped_column(Float)
    # Unique: a rating is superseded at most once, so "current" = nothing supersedes it.
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("ratings.id"), unique=True)
    retracted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set on a row written by undo: the rating it withdraws (undo lives in the store).
    undo_of: Mapped[int | None] = mapped_column(ForeignKey("ratings.id", name="fk_ratings_undo_of"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PreferencePairRow(Base):
    __tablename__ = "preference_pairs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rating_id: Mapped[int] = mapped_column(ForeignKey("ratings.id"), index=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"))
    chosen: Mapped[str] = mapped_column(Text)
    rejected: Mapped[str] = mapped_column(Text)


class TrainingRunRow(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    parent_version: Mapped[str | None] = mapped_column(ForeignKey("model_versions.name"))
    status: Mapped[str] = mapped_column(String(20), default="running")
    message: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(ForeignKey("model_versions.name"))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


TABLES: tuple[str, ...] = (
    "reviewers",
    "cases",
    "model_versions",
    "evaluations",
    "predictions",
    "ratings",
    "preference_pairs",
    "training_runs",
)
