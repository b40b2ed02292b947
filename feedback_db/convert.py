"""ORM rows to frozen records (the store never hands out a row)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from feedback_db import models as m
from feedback_db import records as r


@overload
def aware(dt: datetime) -> datetime: ...
@overload
def aware(dt: None) -> None: ...
def aware(dt: datetime | None) -> datetime | None:
    """The database's naive UTC time as an aware datetime."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def naive_utc(dt: datetime) -> datetime:
    """An aware (or naive-UTC) datetime as the naive UTC the columns hold."""
    return dt if dt.tzinfo is None else dt.astimezone(UTC).replace(tzinfo=None)


def reviewer(row: m.ReviewerRow) -> r.Reviewer:
    return r.Reviewer(row.id, row.name, row.role, aware(row.created_at))


def case(row: m.CaseRow) -> r.CaseRecord:
    return r.CaseRecord(
        case_id=row.case_id,
        modality=row.modality,
        image=row.image,
        finding=row.finding,
        treatment=row.treatment,
        error_type=row.error_type,
        severity=row.severity,
        cost_impact=row.cost_impact,
        split=row.split,
        meta=dict(row.meta or {}),
        created_at=aware(row.created_at),
        burned_in=bool(row.burned_in),
        burned_in_cleared_by=row.burned_in_cleared_by,
        burned_in_cleared_at=aware(row.burned_in_cleared_at),
    )


def model_version(row: m.ModelVersionRow, last_eval: m.EvaluationRow | None) -> r.ModelVersion:
    return r.ModelVersion(
        id=row.id,
        name=row.name,
        backend=row.backend,
        base_model=row.base_model,
        parent=row.parent,
        path=row.path,
        metrics=dict(row.metrics) if row.metrics is not None else None,
        active=bool(row.active),
        note=row.note,
        created_at=aware(row.created_at),
        promoted=None if last_eval is None else bool(last_eval.promoted),
        promotion_reason=None if last_eval is None else last_eval.reason,
        card_sha256=row.card_sha256,
    )


def evaluation(row: m.EvaluationRow, version: str) -> r.Evaluation:
    return r.Evaluation(
        row.id, version, dict(row.metrics), bool(row.promoted), row.reason, aware(row.created_at)
    )


def prediction(row: m.PredictionRow, version: str) -> r.Prediction:
    return r.Prediction(
        id=row.id,
        version=version,
        case_id=row.case_id,
        label=row.label,
        reason=row.reason,
        text=row.text,
        confidence=row.confidence,
        latency_ms=row.latency_ms,
        created_at=aware(row.created_at),
    )


def rating(row: m.RatingRow, reviewer_name: str) -> r.Rating:
    return r.Rating(
        id=row.id,
        case_id=row.case_id,
        reviewer_id=row.reviewer_id,
        reviewer=reviewer_name,
        prediction_a_id=row.prediction_a_id,
        prediction_b_id=row.prediction_b_id,
        preference=row.preference,
        true_label=row.true_label,
        severity=row.severity,
        rationale=row.rationale,
        margin=row.margin,
        supersedes_id=row.supersedes_id,
        retracted=bool(row.retracted),
        created_at=aware(row.created_at),
        answer_a=row.answer_a,
        answer_b=row.answer_b,
        source=row.source,
        imported_at=aware(row.imported_at),
        undo_of=row.undo_of,
    )


def training_run(row: m.TrainingRunRow) -> r.TrainingRun:
    config: dict[str, Any] = dict(row.config or {})
    return r.TrainingRun(
        id=row.id,
        kind=row.kind,
        config=config,
        parent_version=row.parent_version,
        status=row.status,
        message=row.message,
        version=row.version,
        started_at=aware(row.started_at),
        finished_at=aware(row.finished_at),
    )
