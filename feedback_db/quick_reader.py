"""The first screen's reads over plain ``sqlite3``, before SQLAlchemy is loaded.

Importing SQLAlchemy and the ORM models costs about 0.4 s of CPU at start, a third of the GUI's
start-up budget, and none of it is needed to show one case. ``QuickReader`` answers the handful
of reads the window makes before its first case is on screen (reviewers, versions, the start
queue, one case with its verdicts and its standing rating, the visible rows of the queue) with
plain SQL on a read-only connection; the full ``Store`` loads after the first case is shown
(``app.gui.preload.StartupReader``).

Every method returns exactly what the ``Store`` method of the same name returns on the same
database: the same records, in the same order (``tests/feedback_db/test_quick_reader.py`` checks
each one against the Store on stores with superseded and retracted ratings, several verdicts per
version and versions without evaluations). Anything else (queue filters other than the start
queue's, every write) is for the Store: ``query_case_ids`` raises ``NotQuick`` for those.

``QuickReader.open`` returns None, never raises, whenever the quick path does not apply: no file,
a schema other than ``HEAD`` (an upgrade must go through ``open_store``, with its backup), or
any sqlite3 error. The caller then opens the Store as before, which reports problems in words.

This module imports only the standard library and ``feedback_db.records`` (no SQLAlchemy).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedback_db.records import (
    QUEUE_ORDERS,
    CaseRecord,
    ModelVersion,
    Prediction,
    Rating,
    Reviewer,
)
from feedback_db.revision import HEAD

# SQLite's limit on bound parameters is 32766 (3.32+); the Store reads ids in chunks of this size.
_CHUNK = 500

_CURRENT = "r.retracted = 0 AND NOT EXISTS (SELECT 1 FROM ratings AS later WHERE later.supersedes_id = r.id)"
_PREDICTION_COLS = (
    "p.id, v.name, p.case_id, p.label, p.reason, p.text, p.confidence, p.latency_ms, p.created_at"
)
_CASE_COLS = (
    "case_id, modality, image, finding, treatment, error_type, severity, cost_impact, split, "
    "meta, created_at, burned_in, burned_in_cleared_by, burned_in_cleared_at"
)
_RATING_COLS = (
    "r.id, r.case_id, r.reviewer_id, rv.name, r.prediction_a_id, r.prediction_b_id, r.preference, "
    "r.true_label, r.severity, r.rationale, r.margin, r.supersedes_id, r.retracted, r.created_at, "
    "r.answer_a, r.answer_b, r.source, r.imported_at, r.undo_of"
)


class NotQuick(Exception):
    """This read is not one the quick reader answers; ask the Store."""


def _time(value: Any) -> datetime | None:
    """A DateTime column (naive UTC text, as SQLAlchemy writes it on SQLite) as aware UTC."""
    if value is None:
        return None
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def _json(value: Any) -> Any:
    return None if value is None else json.loads(value)


def _prediction(row: tuple[Any, ...]) -> Prediction:
    pid, version, case_id, label, reason, text, conf, latency, created = row
    created_at = _time(created)
    assert created_at is not None  # NOT NULL in the schema
    return Prediction(pid, version, case_id, label, reason, text, conf, latency, created_at)


def _case(row: tuple[Any, ...]) -> CaseRecord:
    (cid, modality, image, finding, treatment, error_type, severity, cost, split, meta, created,
     burned, cleared_by, cleared_at) = row  # fmt: skip
    return CaseRecord(
        case_id=cid,
        modality=modality,
        image=image,
        finding=finding,
        treatment=treatment,
        error_type=error_type,
        severity=severity,
        cost_impact=cost,
        split=split,
        meta=dict(_json(meta) or {}),
        created_at=_time(created),
        burned_in=bool(burned),
        burned_in_cleared_by=cleared_by,
        burned_in_cleared_at=_time(cleared_at),
    )


def _rating(row: tuple[Any, ...]) -> Rating:
    (rid, case_id, reviewer_id, reviewer, a_id, b_id, preference, true_label, severity, rationale,
     margin, supersedes, retracted, created, answer_a, answer_b, source, imported, undo_of) = row  # fmt: skip
    created_at = _time(created)
    assert created_at is not None
    return Rating(
        id=rid,
        case_id=case_id,
        reviewer_id=reviewer_id,
        reviewer=reviewer,
        prediction_a_id=a_id,
        prediction_b_id=b_id,
        preference=preference,
        true_label=true_label,
        severity=severity,
        rationale=rationale,
        margin=margin,
        supersedes_id=supersedes,
        retracted=bool(retracted),
        created_at=created_at,
        answer_a=answer_a,
        answer_b=answer_b,
        source=source,
        imported_at=_time(imported),
        undo_of=undo_of,
    )


class QuickReader:
    """Read-only plain-sqlite3 answers to the first screen's reads (module docstring).

    Made on one thread and then used by another (the start-up preload hands it to the GUI
    thread), never by two at once, as a Store is.
    """

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con

    @classmethod
    def open(cls, path: Path) -> QuickReader | None:
        """A reader on the SQLite store at ``path``, or None where the quick path does not apply."""
        if not path.is_file():
            return None
        try:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            con = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except (sqlite3.Error, ValueError, OSError):
            return None
        try:
            con.execute("PRAGMA query_only = ON")
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            if row is None or row[0] != HEAD:
                con.close()
                return None
        except sqlite3.Error:
            con.close()
            return None
        return cls(con)

    def close(self) -> None:
        self._con.close()

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        return self._con.execute(sql, tuple(params)).fetchall()

    # -- the Store's reads, same records ---------------------------------------------------
    def reviewers(self) -> list[Reviewer]:
        rows = self._rows("SELECT id, name, role, created_at FROM reviewers ORDER BY id")
        return [Reviewer(i, n, r, _time(c)) for i, n, r, c in rows]  # type: ignore[arg-type]

    def model_versions(self) -> list[ModelVersion]:
        rows = self._rows(
            "SELECT v.id, v.name, v.backend, v.base_model, v.parent, v.path, v.metrics, v.active, "
            "v.note, v.created_at, v.card_sha256, e.promoted, e.reason FROM model_versions AS v "
            "LEFT JOIN evaluations AS e ON e.id = "
            "(SELECT max(id) FROM evaluations WHERE version_id = v.id) ORDER BY v.id"
        )
        out = []
        for vid, name, backend, base, parent, path, metrics, active, note, created, sha, prom, why in rows:  # fmt: skip
            metrics = _json(metrics)
            out.append(
                ModelVersion(
                    id=vid,
                    name=name,
                    backend=backend,
                    base_model=base,
                    parent=parent,
                    path=path,
                    metrics=dict(metrics) if metrics is not None else None,
                    active=bool(active),
                    note=note,
                    created_at=_time(created),  # type: ignore[arg-type]
                    promoted=None if prom is None else bool(prom),
                    promotion_reason=why,
                    card_sha256=sha,
                )
            )
        return out

    def get_case(self, case_id: str) -> CaseRecord | None:
        rows = self._rows(f"SELECT {_CASE_COLS} FROM cases WHERE case_id = ?", (case_id,))
        return _case(rows[0]) if rows else None

    def get_cases(self, ids: Iterable[str]) -> list[CaseRecord]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, CaseRecord] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self._rows(
                f"SELECT {_CASE_COLS} FROM cases WHERE case_id IN ({marks})", chunk
            ):
                found[row[0]] = _case(row)
        return [found[i] for i in wanted if i in found]

    def predictions_for_case(self, case_id: str) -> list[Prediction]:
        rows = self._rows(
            f"SELECT {_PREDICTION_COLS} FROM predictions AS p "
            "JOIN model_versions AS v ON v.id = p.version_id WHERE p.id IN "
            "(SELECT max(id) FROM predictions WHERE case_id = ? GROUP BY version_id) ORDER BY v.id",
            (case_id,),
        )
        return [_prediction(r) for r in rows]

    def predictions_by_id(self, ids: Iterable[int]) -> dict[int, Prediction]:
        wanted = sorted({int(i) for i in ids})
        out: dict[int, Prediction] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = (
                f"SELECT {_PREDICTION_COLS} FROM predictions AS p "
                f"JOIN model_versions AS v ON v.id = p.version_id WHERE p.id IN ({marks})"
            )
            out.update((r[0], _prediction(r)) for r in self._rows(sql, chunk))
        return out

    def current_rating(self, case_id: str, reviewer_id: int | None = None) -> Rating | None:
        sql = (
            f"SELECT {_RATING_COLS} FROM ratings AS r JOIN reviewers AS rv ON rv.id = r.reviewer_id "
            f"WHERE r.case_id = ? AND {_CURRENT}"
        )
        params: list[Any] = [case_id]
        if reviewer_id is not None:
            sql += " AND r.reviewer_id = ?"
            params.append(reviewer_id)
        rows = self._rows(sql + " ORDER BY r.id DESC LIMIT 1", params)
        return _rating(rows[0]) if rows else None

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
        """The two queue queries the window runs at start: the unfiltered queue in either order,
        and the ids a reviewer has rated (``rated=True``, ``order="id"``), as ``Store``'s.

        Raises:
            NotQuick: any other combination (a filter): the Store answers it.
        """
        if order not in QUEUE_ORDERS or modality is not None or split is not None:
            raise NotQuick
        if disagree is not None:
            raise NotQuick
        if rated is not None:
            if not rated or order != "id":
                raise NotQuick
            sql = f"SELECT r.case_id FROM ratings AS r WHERE {_CURRENT}"
            params: list[Any] = []
            if reviewer_id is not None:
                sql += " AND r.reviewer_id = ?"
                params.append(reviewer_id)
            return [
                r[0]
                for r in self._rows(
                    f"SELECT case_id FROM cases WHERE case_id IN ({sql}) ORDER BY case_id", params
                )
            ]
        names: tuple[str, ...] = versions or ()
        if not names and order == "uncertainty":
            active = self._rows("SELECT name FROM model_versions WHERE active = 1")
            names = (active[0][0],) if active else ()
        if order != "uncertainty" or not names:
            return [r[0] for r in self._rows("SELECT case_id FROM cases ORDER BY case_id")]
        joins, params = [], []
        for i, name in enumerate(names):
            joins.append(
                f"LEFT OUTER JOIN predictions AS p{i} ON p{i}.id = (SELECT max(q.id) FROM "
                "predictions AS q WHERE q.version_id = (SELECT id FROM model_versions WHERE "
                f"name = ?) AND q.case_id = c.case_id)"
            )
            params.append(name)
        if len(names) == 2:
            # Where one verdict has no confidence, the other's doubt alone (as the Store's CASE).
            key = (
                "CASE WHEN p0.confidence IS NULL THEN abs(p1.confidence - 0.5) "
                "WHEN p1.confidence IS NULL THEN abs(p0.confidence - 0.5) "
                "ELSE (abs(p0.confidence - 0.5) + abs(p1.confidence - 0.5)) / 2.0 END"
            )
        else:
            key = "abs(p0.confidence - 0.5)"
        sql = (
            f"SELECT c.case_id FROM cases AS c {' '.join(joins)} "
            f"ORDER BY ({key}) IS NULL, {key}, c.case_id"
        )
        return [r[0] for r in self._rows(sql, params)]
