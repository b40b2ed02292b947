"""Engines and the session context: commit on success, roll back on error, raise StoreError.

SQLite gets WAL (readers never wait for the writer), foreign keys on and a busy timeout (a second
process, such as a training child, waits instead of failing), set by a listener on every new
connection. Durability is ``synchronous=NORMAL`` by default, SQLite's advice for WAL: a committed
rating survives a crash of the app and is never corrupted, and only a power cut or OS crash in the
moment after can undo the last commits (the case then reads unrated, visibly). ``FULL`` also
survives that, at the price of an fsync per commit (about 3-7 ms on this machine's disk, over the
5 ms budget for saving a rating; benchmarks/bench_store.py measures both).

SQLite transactions are begun by us, not by the sqlite3 module (SQLAlchemy's documented recipe):
the module's own handling leaves DDL outside transactions, so a failed migration would be half
applied. Writing sessions begin ``IMMEDIATE`` (they take the write lock up front, so two writing
processes queue on the busy timeout instead of deadlocking); reading sessions begin ``DEFERRED``,
so a long export never holds up a clinician's next rating.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from feedback_db.errors import StoreBusy, StoreError

# SQLite's own wait for a lock, per attempt. A writing transaction that meets another program's
# write lock (an import, a training child, a second window) retries its BEGIN IMMEDIATE with
# backoff for up to the store's ``write_patience`` (see _sqlite_begin), so a long lock elsewhere
# delays a clinician's rating, never loses it, and no fixed timeout decides.
BUSY_TIMEOUT_MS = 250
DEFAULT_WRITE_PATIENCE_S = 600.0
SQLITE_BEGIN = "medreview_sqlite_begin"  # execution option: DEFERRED | IMMEDIATE


SYNCHRONOUS: tuple[str, ...] = ("NORMAL", "FULL")


def _sqlite_pragmas(synchronous: str, read_only: bool = False) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see _sqlite_begin
        cur = dbapi_connection.cursor()
        try:
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if not read_only:  # setting it writes the file; a read-only one keeps its mode
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
        finally:
            cur.close()

    return on_connect


def make_engine(
    url: str, *, synchronous: str = "NORMAL", write_patience: float = DEFAULT_WRITE_PATIENCE_S
) -> Engine:
    """An engine for any SQLAlchemy URL; SQLite files get the pragmas above.

    Raises:
        ValueError: ``synchronous`` is not NORMAL or FULL.
        StoreError: the URL is malformed or its driver is not installed.
    """
    if synchronous not in SYNCHRONOUS:
        raise ValueError(
            f"synchronous must be one of {', '.join(SYNCHRONOUS)}; got {synchronous!r}"
        )
    try:
        parsed = make_url(url)
        engine = create_engine(parsed)
    except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot open database URL {safe_url(url)}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        read_only = parsed.query.get("mode") == "ro"
        event.listen(engine, "connect", _sqlite_pragmas(synchronous, read_only))
        event.listen(engine, "begin", _sqlite_begin(write_patience))
    return engine


def _sqlite_begin(patience: float) -> Callable[[Connection], None]:
    """BEGIN (DEFERRED for reads, IMMEDIATE for writes); a write that finds the database locked
    tries again for up to ``patience`` seconds in all. Each attempt is SQLite's own busy wait
    (``BUSY_TIMEOUT_MS``, polling with its backoff of 1 to 100 ms); between attempts we back off
    from 10 to 100 ms, short enough that a writer committing in batches (an import) cannot
    starve a clinician's rating. Only the BEGIN ever waits: with WAL and the write lock taken
    up front, nothing later in the transaction does."""

    def begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        start, delay = time.monotonic(), 0.01
        while True:
            try:
                conn.exec_driver_sql(f"BEGIN {mode}")
                return
            except OperationalError as exc:
                waited = time.monotonic() - start
                if (
                    mode != "IMMEDIATE"
                    or not is_lock_error(str(exc.orig))
                    or waited + delay > patience
                ):
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    return begin


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and ``StoreInfo``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<malformed URL>"


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    db = parsed.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return db


def db_detail(exc: BaseException) -> str:
    """The first line of a database error's own message, without SQLAlchemy's SQL echo and its
    "Background on this error" link (for one-sentence messages)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_lock_error(detail: str) -> bool:
    """True for SQLite's "database is locked" / "busy" and PostgreSQL's lock timeouts."""
    text = detail.lower()
    return "database is locked" in text or "database is busy" in text or "lock timeout" in text


class SessionFactory:
    """Makes sessions on one engine; ``scope()`` is the only way the store touches the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        writer = engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        self._write = sessionmaker(writer, expire_on_commit=False)

    @contextmanager
    def scope(self, what: str = "database operation", *, write: bool = False) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back if it raises.

        ``write=True`` for blocks that change the database (see the module docstring).

        Raises:
            StoreError: any database error, with ``what`` in the message; StoreErrors raised in
                the block pass through unchanged (after the rollback).
        """
        session = (self._write if write else self._read)()
        try:
            yield session
            session.commit()
        except StoreError:
            session.rollback()
            raise
        except SQLAlchemyError as exc:
            session.rollback()
            detail = db_detail(exc)
            if is_lock_error(detail):
                raise StoreBusy(
                    f"{what} waited for another program writing to the database: {detail}"
                ) from exc
            raise StoreError(f"{what} failed: {detail}") from exc
        finally:
            session.close()
