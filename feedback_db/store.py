"""The repository: every read and write of the feedback store goes through ``Store``.

Open one with ``open_store(url)``. Methods take and return the frozen records of
``feedback_db.records``; the ratings, queue and model-register methods live in ``ratings.py``,
``queue.py`` and ``versions.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from feedback_db import convert, migrate
from feedback_db.errors import StoreError
from feedback_db.models import (
    TABLES,
    Base,
    CaseRow,
    ModelVersionRow,
    PredictionRow,
    ReviewerRow,
    utcnow,
)
from feedback_db.queue import QueueMixin
from feedback_db.ratings import RatingsMixin
from feedback_db.records import (
    CaseIn,
    CaseRecord,
    Prediction,
    PredictionIn,
    Reviewer,
    StoreInfo,
)
from feedback_db.session import (
    DEFAULT_WRITE_PATIENCE_S,
    SessionFactory,
    db_detail,
    make_engine,
    safe_url,
    sqlite_path,
)
from feedback_db.versions import VersionsMixin, checked_json, version_row

_CHUNK = 500  # ids per IN (...) probe, well under every database's parameter limit


def chunks(items: list[str]) -> Iterator[list[str]]:
    """``items`` in slices small enough for one ``IN (...)`` on every database."""
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _info(engine: Engine) -> StoreInfo:
    revision = migrate.current_revision(engine)
    try:
        present = set(inspect(engine).get_table_names())
        counts: dict[str, int] = {}
        with engine.connect() as conn:
            for name in TABLES:
                if name in present:
                    table = Base.metadata.tables[name]
                    counts[name] = int(conn.scalar(select(func.count()).select_from(table)) or 0)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read {safe_url(str(engine.url))}: {db_detail(exc)}") from exc
    return StoreInfo(safe_url(str(engine.url)), revision, migrate.head_revision(), counts)


def inspect_store(url: str) -> StoreInfo:
    """What ``info()`` says, without creating or upgrading anything (for ``medreview db info``).

    Raises:
        StoreError: a SQLite file that does not exist, a database that cannot be read, one that
            is not a MedGemma Reviewer store, or one newer than this program.
    """
    path = sqlite_path(url)
    if path is not None and not Path(path).is_file():
        raise StoreError(f"no database at {path}")
    engine = make_engine(url)
    try:
        migrate._check_known(engine, migrate.current_revision(engine))
        return _info(engine)
    finally:
        engine.dispose()


def open_store(
    url: str,
    *,
    upgrade: bool = True,
    synchronous: str = "NORMAL",
    write_patience: float = DEFAULT_WRITE_PATIENCE_S,
    read_only: bool = False,
) -> Store:
    """Open the store at a SQLAlchemy URL (``sqlite:////abs/path/medreview.db``, ``postgresql+psycopg://...``).

    A new database is created at the newest schema. An older one is upgraded after a backup copy
    (SQLite: ``<file>.bak-<revision>-<time>`` beside it; ``Store.backup_path``) when ``upgrade``
    is true, and refused otherwise. ``synchronous`` (SQLite only): ``NORMAL`` or ``FULL``, see
    feedback_db.session. ``write_patience`` (SQLite): how long a write waits, retrying with
    backoff, while another program holds the write lock, before it fails with ``StoreBusy``.
    ``read_only``: open a SQLite file read-only (a workspace on a read-only disk or share): it is
    never created, migrated or written; every write fails with StoreError.

    Raises:
        StoreError: bad URL, unreachable database, a database that is not ours or is newer than
            this program, a needed upgrade that was not allowed, or a failed upgrade.
    """
    path = sqlite_path(url)
    if read_only and path is not None:
        if not Path(path).is_file():
            raise StoreError(
                f"no database at {path} (the workspace is read-only, so none can be made)"
            )
        from sqlalchemy.engine import URL

        url = URL.create(
            "sqlite", database=f"file:{Path(path).resolve()}", query={"mode": "ro", "uri": "true"}
        ).render_as_string(hide_password=False)
        upgrade = False
    elif path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url, synchronous=synchronous, write_patience=write_patience)
    try:
        if upgrade:
            backup = migrate.upgrade(engine)
        else:
            backup = None
            revision = migrate.current_revision(engine)
            head = migrate.head_revision()
            if revision != head:
                fix = (
                    "open it where it can be written, to upgrade it"
                    if read_only
                    else "run `medreview db upgrade` (a backup is made first)"
                )
                raise StoreError(
                    f"{safe_url(url)} is at schema revision {revision or 'none'}, this program needs "
                    f"{head}: {fix}"
                )
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, backup_path=backup)


class Store(RatingsMixin, QueueMixin, VersionsMixin):
    """The feedback store on one database.

    Thread safety: the rule is one thread at a time per instance for writes, which is how the GUI
    uses it (one worker lane, so ratings land in the order the clinician made them). Calls keep no
    shared state (each has its own session from a thread-safe pool), so reads from other threads,
    and even concurrent writes, are also safe (tested). Several processes may open the same
    database: a SQLite writer that meets another's lock waits, retrying with backoff, for up to the
    store's ``write_patience``. Every method runs in its own transaction and
    returns frozen records.
    """

    def __init__(self, engine: Engine, *, backup_path: Path | None = None) -> None:
        self._db = SessionFactory(engine)
        self.url = engine.url.render_as_string(hide_password=False)  # reopenable; info() hides it
        #: the copy made before this open upgraded the schema, if any
        self.backup_path = backup_path

    @property
    def sessions(self) -> SessionFactory:
        """The session factory (for feedback_db's own export and import modules)."""
        return self._db

    def close(self) -> None:
        """Release the database connections. The instance must not be used afterwards."""
        self._db.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the store itself ----------------------------------------------------------------------
    def info(self) -> StoreInfo:
        """URL (password hidden), schema revision, the program's head revision, rows per table."""
        return _info(self._db.engine)

    # -- reviewers ------------------------------------------------------------------------------
    def ensure_reviewer(self, name: str, role: str) -> Reviewer:
        """The reviewer called ``name``, created with ``role`` if new (an existing one is unchanged).

        Raises:
            ValueError: an empty name or role.
        """
        name, role = name.strip(), role.strip()
        if not name or not role:
            raise ValueError("a reviewer needs a non-empty name and role")
        with self._db.scope("saving a reviewer", write=True) as s:
            row = s.scalars(select(ReviewerRow).where(ReviewerRow.name == name)).first()
            if row is None:
                row = ReviewerRow(name=name, role=role)
                s.add(row)
                s.flush()
            return convert.reviewer(row)

    def reviewers(self) -> list[Reviewer]:
        with self._db.scope("reading reviewers") as s:
            return [
                convert.reviewer(r) for r in s.scalars(select(ReviewerRow).order_by(ReviewerRow.id))
            ]

    # -- cases ----------------------------------------------------------------------------------
    def add_cases(self, cases: Iterable[CaseIn], *, skip_existing: bool = False) -> int:
        """Add cases in one transaction; return how many were added.

        Raises:
            StoreError: a case id already exists (or repeats in the input) and ``skip_existing``
                is false; nothing is added then.
        """
        incoming: dict[str, CaseIn] = {}
        for c in cases:
            if c.case_id in incoming:
                if skip_existing:
                    continue
                raise StoreError(f"case id {c.case_id!r} appears twice in the input")
            incoming[c.case_id] = c
        with self._db.scope("adding cases", write=True) as s:
            existing: set[str] = set()
            for chunk in chunks(list(incoming)):
                existing.update(
                    s.scalars(select(CaseRow.case_id).where(CaseRow.case_id.in_(chunk)))
                )
            if existing and not skip_existing:
                shown = ", ".join(sorted(existing)[:5])
                raise StoreError(f"{len(existing)} case id(s) already in the store: {shown}")
            now = utcnow()
            rows: list[dict[str, Any]] = [
                {
                    **{k: getattr(c, k) for k in CaseIn.__dataclass_fields__},
                    "meta": checked_json(c.meta, f"case {cid} meta"),
                    "created_at": now,
                }
                for cid, c in incoming.items()
                if cid not in existing
            ]
            if rows:
                s.execute(insert(CaseRow), rows)
            return len(rows)

    def confirm_no_identifier(self, case_id: str, reviewer: str) -> CaseRecord:
        """Record that ``reviewer`` looked at a case whose DICOM declares text burned into the
        pixels and confirmed the image shows no identifier; only then does export include it.

        Raises:
            StoreError: unknown case, a case that declares no burned-in text, or a database error.
        """
        if not reviewer.strip():
            raise StoreError("confirming an image needs the reviewer's name")
        with self._db.scope(f"confirming the image of {case_id}", write=True) as s:
            row = s.get(CaseRow, case_id)
            if row is None:
                raise StoreError(f"unknown case {case_id!r}")
            if not row.burned_in:
                raise StoreError(f"case {case_id} declares no burned-in text; nothing to confirm")
            row.burned_in_cleared_by, row.burned_in_cleared_at = reviewer.strip(), utcnow()
            s.flush()
            return convert.case(row)

    def get_case(self, case_id: str) -> CaseRecord | None:
        with self._db.scope("reading a case") as s:
            row = s.get(CaseRow, case_id)
            return None if row is None else convert.case(row)

    def get_cases(self, ids: Iterable[str]) -> list[CaseRecord]:
        """The cases with these ids, in the order asked; unknown ids are left out."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, CaseRecord] = {}
        with self._db.scope("reading cases") as s:
            for chunk in chunks(wanted):
                for row in s.scalars(select(CaseRow).where(CaseRow.case_id.in_(chunk))):
                    found[row.case_id] = convert.case(row)
        return [found[i] for i in wanted if i in found]

    # -- predictions ----------------------------------------------------------------------------
    def add_predictions(self, version: str, preds: Iterable[PredictionIn]) -> int:
        """Store a version's verdicts (a bulk insert); return how many.

        Raises:
            StoreError: unknown version or case; nothing is stored then.
        """
        items = list(preds)
        with self._db.scope(f"saving predictions of {version!r}", write=True) as s:
            vid = version_row(s, version).id
            ids = list(dict.fromkeys(p.case_id for p in items))
            known: set[str] = set()
            for chunk in chunks(ids):
                known.update(s.scalars(select(CaseRow.case_id).where(CaseRow.case_id.in_(chunk))))
            missing = [i for i in ids if i not in known]
            if missing:
                raise StoreError(
                    f"predictions for {len(missing)} unknown case(s): {', '.join(missing[:5])}"
                )
            now = utcnow()
            rows = [
                {
                    "version_id": vid,
                    "case_id": p.case_id,
                    "label": p.label,
                    "reason": p.reason,
                    "text": p.text,
                    "confidence": p.confidence,
                    "latency_ms": p.latency_ms,
                    "created_at": now,
                }
                for p in items
            ]
            if rows:
                s.execute(insert(PredictionRow), rows)
            return len(rows)

    def predictions_for_case(self, case_id: str) -> list[Prediction]:
        """The latest prediction of each version for the case, in version registration order."""
        latest = (
            select(func.max(PredictionRow.id))
            .where(PredictionRow.case_id == case_id)
            .group_by(PredictionRow.version_id)
        )
        stmt = (
            select(PredictionRow, ModelVersionRow.name)
            .join(ModelVersionRow, ModelVersionRow.id == PredictionRow.version_id)
            .where(PredictionRow.id.in_(latest))
            .order_by(ModelVersionRow.id)
        )
        with self._db.scope("reading predictions") as s:
            return [convert.prediction(p, name) for p, name in s.execute(stmt)]

    def predictions_by_id(self, ids: Iterable[int]) -> dict[int, Prediction]:
        """The predictions with these ids (those that exist), by id: what a rating was given for,
        even after newer verdicts replaced them in review."""
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return {}
        stmt = (
            select(PredictionRow, ModelVersionRow.name)
            .join(ModelVersionRow, ModelVersionRow.id == PredictionRow.version_id)
            .where(PredictionRow.id.in_(wanted))
        )
        with self._db.scope("reading predictions") as s:
            return {p.id: convert.prediction(p, name) for p, name in s.execute(stmt)}

    def predictions_for_version(
        self, version: str, split: str | None = None
    ) -> dict[str, Prediction]:
        """case_id -> the version's latest prediction (of the cases in ``split`` when given).

        Raises:
            StoreError: unknown version.
        """
        with self._db.scope("reading predictions") as s:
            vid = version_row(s, version).id
            latest = (
                select(func.max(PredictionRow.id))
                .where(PredictionRow.version_id == vid)
                .group_by(PredictionRow.case_id)
            )
            stmt = select(PredictionRow).where(PredictionRow.id.in_(latest))
            if split is not None:
                stmt = stmt.join(CaseRow, CaseRow.case_id == PredictionRow.case_id).where(
                    CaseRow.split == split
                )
            return {p.case_id: convert.prediction(p, version) for p in s.scalars(stmt)}
