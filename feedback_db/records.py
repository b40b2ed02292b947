"""Frozen records: what the store takes in and gives back. Never ORM rows (Optuna's FrozenTrial).

Inputs end in ``In`` (``CaseIn``, ``PredictionIn``, ``RatingIn``) and are validated on
construction, so a bad value fails where it was made, with the field named. Times are aware UTC
datetimes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PREFERENCES: tuple[str, ...] = ("a", "b", "tie", "both_wrong")
TRUE_LABELS: tuple[str, ...] = ("ERROR", "CORRECT")
PREDICTION_LABELS: tuple[str, ...] = ("ERROR", "CORRECT", "UNPARSEABLE")
SEVERITIES: tuple[str, ...] = ("critical", "high", "moderate")
RUN_STATUSES: tuple[str, ...] = ("running", "succeeded", "failed", "canceled", "killed")
# "killed": closed at start-up because its process died without finishing (app/runs.py).
FINISHED_STATUSES: tuple[str, ...] = ("succeeded", "failed", "canceled", "killed")
QUEUE_ORDERS: tuple[str, ...] = ("uncertainty", "id")


def _check_choice(
    name: str, value: object, choices: tuple[str, ...], optional: bool = False
) -> None:
    if value is None and optional:
        return
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_text(name: str, value: object, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or (not optional and not value.strip()):
        raise ValueError(f"{name} must be a non-empty string; got {value!r}")


def _check_number(name: str, value: object, optional: bool = True) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")


@dataclass(frozen=True)
class StoreInfo:
    """Where the store is and what it holds.

    Attributes:
        url: the database URL, with any password hidden.
        revision: the schema revision of the database (None before the first migration).
        head: the newest revision this program knows.
        counts: rows per table.
    """

    url: str
    revision: str | None
    head: str
    counts: dict[str, int]

    @property
    def up_to_date(self) -> bool:
        return self.revision == self.head


@dataclass(frozen=True)
class Reviewer:
    id: int
    name: str
    role: str
    created_at: datetime


@dataclass(frozen=True)
class CaseIn:
    """A case to add. ``image`` is a path relative to the workspace (``images/<sha>.png``)."""

    case_id: str
    modality: str
    image: str
    finding: str
    treatment: str
    error_type: str | None = None
    severity: str | None = None
    cost_impact: float | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # The DICOM declares text burned into its pixels: export withholds it until cleared.
    burned_in: bool = False

    def __post_init__(self) -> None:
        for name in ("case_id", "modality", "image", "finding", "treatment"):
            _check_text(name, getattr(self, name))
        _check_text("error_type", self.error_type, optional=True)
        _check_choice("severity", self.severity, SEVERITIES, optional=True)
        _check_number("cost_impact", self.cost_impact)
        _check_text("split", self.split, optional=True)
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta must be a dict; got {type(self.meta).__name__}")


@dataclass(frozen=True)
class CaseRecord:
    case_id: str
    modality: str
    image: str
    finding: str
    treatment: str
    error_type: str | None
    severity: str | None
    cost_impact: float | None
    split: str | None
    meta: dict[str, Any] = field(compare=False, hash=False)
    created_at: datetime | None = None
    burned_in: bool = False
    burned_in_cleared_by: str | None = None
    burned_in_cleared_at: datetime | None = None


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version. ``promoted``/``promotion_reason`` come from its latest
    evaluation (None when never evaluated)."""

    id: int
    name: str
    backend: str
    base_model: str
    parent: str | None
    path: str | None
    metrics: dict[str, Any] | None
    active: bool
    note: str | None
    created_at: datetime
    promoted: bool | None = None
    promotion_reason: str | None = None
    card_sha256: str | None = None


@dataclass(frozen=True)
class Evaluation:
    id: int
    version: str
    metrics: dict[str, Any]
    promoted: bool
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class PredictionIn:
    case_id: str
    label: str
    reason: str
    text: str
    confidence: float | None = None
    latency_ms: float | None = None

    def __post_init__(self) -> None:
        _check_text("case_id", self.case_id)
        _check_choice("label", self.label, PREDICTION_LABELS)
        _check_text("reason", self.reason, optional=True)
        if self.reason is None:
            raise ValueError("reason must be a string")
        _check_text("text", self.text, optional=True)
        if self.text is None:
            raise ValueError("text must be a string")
        _check_number("confidence", self.confidence)
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1]; got {self.confidence!r}")
        _check_number("latency_ms", self.latency_ms)


@dataclass(frozen=True)
class Prediction:
    id: int
    version: str
    case_id: str
    label: str
    reason: str
    text: str
    confidence: float | None
    latency_ms: float | None
    created_at: datetime

    @property
    def answer(self) -> str:
        """What the model wrote, or the canonical ``LABEL - reason`` when it wrote nothing."""
        if self.text.strip():
            return self.text
        return f"{self.label} - {self.reason}".rstrip(" -")


@dataclass(frozen=True)
class RatingIn:
    """One clinician's judgement of an A/B pair of verdicts on a case.

    Attributes:
        preference: ``a`` | ``b`` | ``tie`` | ``both_wrong``.
        true_label: the clinician's verdict, ``ERROR`` | ``CORRECT``.
        severity: ``critical`` | ``high`` | ``moderate`` for an error, else None.
        rationale: the clinician's corrected reason; it becomes the gold answer.
        margin: how much better the preferred verdict is (TRL's ``margin``), if given.
    """

    case_id: str
    reviewer_id: int
    prediction_a_id: int
    prediction_b_id: int
    preference: str
    true_label: str
    severity: str | None = None
    rationale: str | None = None
    margin: float | None = None

    def __post_init__(self) -> None:
        _check_text("case_id", self.case_id)
        for name in ("reviewer_id", "prediction_a_id", "prediction_b_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer id; got {value!r}")
        if self.prediction_a_id == self.prediction_b_id:
            raise ValueError("prediction_a_id and prediction_b_id must differ")
        _check_choice("preference", self.preference, PREFERENCES)
        _check_choice("true_label", self.true_label, TRUE_LABELS)
        _check_choice("severity", self.severity, SEVERITIES, optional=True)
        _check_text("rationale", self.rationale, optional=True)
        _check_number("margin", self.margin)


@dataclass(frozen=True)
class Rating:
    """A row of the append-only ratings log.

    A retraction (``retracted=True``, made by ``undo_rating``) repeats the fields of the rating it
    withdraws and supersedes it, so the case reads as unrated while the history stays complete.
    """

    id: int
    case_id: str
    reviewer_id: int
    reviewer: str
    prediction_a_id: int | None
    prediction_b_id: int | None
    preference: str
    true_label: str
    severity: str | None
    rationale: str | None
    margin: float | None
    supersedes_id: int | None
    retracted: bool
    created_at: datetime
    answer_a: str | None = None
    answer_b: str | None = None
    source: str | None = None
    imported_at: datetime | None = None
    undo_of: int | None = None

    @property
    def imported(self) -> bool:
        """True for a rating imported from a file: its answers are its own text, not predictions."""
        return self.prediction_a_id is None or self.prediction_b_id is None


@dataclass(frozen=True)
class PreferencePair:
    id: int
    rating_id: int
    case_id: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class TrainingRun:
    id: int
    kind: str
    config: dict[str, Any]
    parent_version: str | None
    status: str
    message: str | None
    version: str | None
    started_at: datetime
    finished_at: datetime | None
