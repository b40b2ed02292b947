"""Model versions, their evaluations, and training runs: the store's register of models.

Unlike ratings these rows are not clinical judgements: a version's ``active`` flag and latest
metrics are updated in place, while every evaluation and its promotion decision is kept.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from feedback_db import convert
from feedback_db.errors import StoreError
from feedback_db.models import EvaluationRow, ModelVersionRow, PredictionRow, TrainingRunRow, utcnow
from feedback_db.records import (
    FINISHED_STATUSES,
    Evaluation,
    ModelVersion,
    PredictionIn,
    TrainingRun,
)
from feedback_db.session import SessionFactory


def checked_json(value: dict[str, Any], what: str) -> dict[str, Any]:
    """A copy of ``value``, checked to be JSON (every database driver then stores it the same).

    Raises:
        StoreError: ``value`` holds something JSON cannot (an object, NaN).
    """
    try:
        return dict(json.loads(json.dumps(value, allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON: {exc}") from exc


def version_row(s: Session, name: str) -> ModelVersionRow:
    row = s.scalars(select(ModelVersionRow).where(ModelVersionRow.name == name)).first()
    if row is None:
        raise StoreError(f"unknown model version {name!r}")
    return row


def _last_eval(s: Session, version_id: int) -> EvaluationRow | None:
    stmt = (
        select(EvaluationRow)
        .where(EvaluationRow.version_id == version_id)
        .order_by(EvaluationRow.id.desc())
        .limit(1)
    )
    return s.scalars(stmt).first()


class VersionsMixin:
    """Model version and training run methods of ``Store``; see ``Store`` for the thread-safety rule."""

    _db: SessionFactory

    def add_model_version(
        self,
        name: str,
        backend: str,
        base_model: str,
        *,
        parent: str | None = None,
        path: str | None = None,
        metrics: dict[str, Any] | None = None,
        active: bool = False,
        note: str | None = None,
        card_sha256: str | None = None,
    ) -> ModelVersion:
        """Register a model version (``active=True`` makes it the one active version).
        ``card_sha256`` is the hash of its model card (``core.models.registry.card_sha256``), checked
        when the version is loaded.

        Raises:
            StoreError: the name is taken or the parent is unknown.
        """
        with self._db.scope(f"registering model version {name!r}", write=True) as s:
            if s.scalar(select(ModelVersionRow.id).where(ModelVersionRow.name == name)) is not None:
                raise StoreError(f"model version {name!r} already exists")
            if parent is not None:
                version_row(s, parent)
            if active:
                s.execute(update(ModelVersionRow).values(active=False))
            row = ModelVersionRow(
                name=name,
                backend=backend,
                base_model=base_model,
                parent=parent,
                path=path,
                metrics=None if metrics is None else checked_json(metrics, "metrics"),
                active=active,
                note=note,
                card_sha256=card_sha256,
            )
            s.add(row)
            s.flush()
            return convert.model_version(row, None)

    def model_versions(self) -> list[ModelVersion]:
        """All versions, oldest first."""
        with self._db.scope("reading model versions") as s:
            rows = list(s.scalars(select(ModelVersionRow).order_by(ModelVersionRow.id)))
            return [convert.model_version(r, _last_eval(s, r.id)) for r in rows]

    def get_model_version(self, name: str) -> ModelVersion | None:
        with self._db.scope("reading a model version") as s:
            row = s.scalars(select(ModelVersionRow).where(ModelVersionRow.name == name)).first()
            return None if row is None else convert.model_version(row, _last_eval(s, row.id))

    def set_active(self, name: str) -> ModelVersion:
        """Make ``name`` the one active version. Raises StoreError for an unknown name."""
        with self._db.scope(f"activating {name!r}", write=True) as s:
            row = version_row(s, name)
            s.execute(
                update(ModelVersionRow).where(ModelVersionRow.id != row.id).values(active=False)
            )
            row.active = True
            s.flush()
            return convert.model_version(row, _last_eval(s, row.id))

    def active_version(self) -> ModelVersion | None:
        with self._db.scope("reading the active version") as s:
            row = s.scalars(select(ModelVersionRow).where(ModelVersionRow.active.is_(True))).first()
            return None if row is None else convert.model_version(row, _last_eval(s, row.id))

    def record_evaluation(
        self, name: str, metrics: dict[str, Any], promoted: bool, reason: str
    ) -> Evaluation:
        """Append an evaluation of ``name``; its metrics become the version's; promoted = made active.

        Raises:
            StoreError: unknown version, or metrics that are not JSON.
        """
        with self._db.scope(f"recording the evaluation of {name!r}", write=True) as s:
            row = version_row(s, name)
            checked = checked_json(metrics, "metrics")
            ev = EvaluationRow(
                version_id=row.id, metrics=checked, promoted=bool(promoted), reason=reason
            )
            s.add(ev)
            row.metrics = checked
            if promoted:
                s.execute(
                    update(ModelVersionRow).where(ModelVersionRow.id != row.id).values(active=False)
                )
                row.active = True
            s.flush()
            return convert.evaluation(ev, name)

    def evaluations(self, name: str) -> list[Evaluation]:
        """Every evaluation of ``name``, oldest first. Raises StoreError for an unknown name."""
        with self._db.scope("reading evaluations") as s:
            row = version_row(s, name)
            stmt = (
                select(EvaluationRow)
                .where(EvaluationRow.version_id == row.id)
                .order_by(EvaluationRow.id)
            )
            return [convert.evaluation(e, name) for e in s.scalars(stmt)]

    # -- training runs --------------------------------------------------------------------------
    def add_training_run(
        self, kind: str, config: dict[str, Any], parent_version: str | None
    ) -> TrainingRun:
        """Record a training run that has started (status ``running``).

        Raises:
            StoreError: unknown parent version, or a config that is not JSON.
        """
        with self._db.scope(f"recording a {kind} training run", write=True) as s:
            if parent_version is not None:
                version_row(s, parent_version)
            row = TrainingRunRow(
                kind=kind,
                config=checked_json(config, "training config"),
                parent_version=parent_version,
                status="running",
            )
            s.add(row)
            s.flush()
            return convert.training_run(row)

    def finish_training_run(
        self, run_id: int, status: str, message: str | None, version: str | None = None
    ) -> TrainingRun:
        """Close a running training run with its outcome and, on success, the version it made.

        Raises:
            ValueError: ``status`` is not succeeded, failed or canceled.
            StoreError: unknown run, a run already finished, or an unknown version.
        """
        if status not in FINISHED_STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(FINISHED_STATUSES)}; got {status!r}"
            )
        with self._db.scope("finishing a training run", write=True) as s:
            row = s.get(TrainingRunRow, run_id)
            if row is None:
                raise StoreError(f"unknown training run {run_id}")
            if row.status != "running":
                raise StoreError(f"training run {run_id} already finished ({row.status})")
            if version is not None:
                version_row(s, version)
            row.status, row.message, row.version, row.finished_at = (
                status,
                message,
                version,
                utcnow(),
            )
            s.flush()
            return convert.training_run(row)

    def record_trained_version(
        self,
        run_id: int,
        version: dict[str, Any],
        predictions: list[PredictionIn],
        metrics: dict[str, Any],
        promoted: bool,
        reason: str,
    ) -> ModelVersion:
        """Register a trained version, its verdicts and its evaluation, and close its run as
        succeeded, all in ONE transaction: a kill at any instant leaves either all of it or none.

        Args:
            version: the ``add_model_version`` fields (``name``, ``backend``, ``base_model``,
                ``parent``, ``path``, ``note``, ``card_sha256``); the parent must exist.
            promoted: make it the active version.

        Raises:
            StoreError: the name is taken, an unknown parent or run, a run already finished, or
                a database error; nothing is written then.
        """
        name = version["name"]
        with self._db.scope(f"recording trained version {name!r}", write=True) as s:
            run = s.get(TrainingRunRow, run_id)
            if run is None:
                raise StoreError(f"unknown training run {run_id}")
            if run.status != "running":
                raise StoreError(f"training run {run_id} already finished ({run.status})")
            if s.scalar(select(ModelVersionRow.id).where(ModelVersionRow.name == name)) is not None:
                raise StoreError(f"model version {name!r} already exists")
            if version.get("parent") is not None:
                version_row(s, version["parent"])
            checked = checked_json(metrics, "metrics")
            if promoted:
                s.execute(update(ModelVersionRow).values(active=False))
            row = ModelVersionRow(
                name=name,
                backend=version["backend"],
                base_model=version["base_model"],
                parent=version.get("parent"),
                path=version.get("path"),
                metrics=checked,
                active=bool(promoted),
                note=version.get("note"),
                card_sha256=version.get("card_sha256"),
            )
            s.add(row)
            s.flush()
            now = utcnow()
            if predictions:
                s.execute(
                    insert(PredictionRow),
                    [
                        {
                            "version_id": row.id,
                            "case_id": p.case_id,
                            "label": p.label,
                            "reason": p.reason,
                            "text": p.text,
                            "confidence": p.confidence,
                            "latency_ms": p.latency_ms,
                            "created_at": now,
                        }
                        for p in predictions
                    ],
                )
            ev = EvaluationRow(
                version_id=row.id, metrics=checked, promoted=bool(promoted), reason=reason
            )
            s.add(ev)
            run.status, run.message, run.version, run.finished_at = "succeeded", reason, name, now
            s.flush()
            return convert.model_version(row, ev)

    def training_runs(self) -> list[TrainingRun]:
        """All training runs, oldest first."""
        with self._db.scope("reading training runs") as s:
            return [
                convert.training_run(r)
                for r in s.scalars(select(TrainingRunRow).order_by(TrainingRunRow.id))
            ]
