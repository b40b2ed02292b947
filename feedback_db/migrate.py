"""Schema migrations, run from code: create new databases at head, upgrade old ones after a backup.

The Alembic scripts live in ``feedback_db/migrations`` (shipped in the package). A new, empty
database is created by running every migration, so it is stamped at head by the same code that
upgrades old ones. Before an existing SQLite file is upgraded, a consistent copy is taken with
SQLite's online backup (correct under WAL, unlike a file copy). A database this program does not
recognise (tables but no revision) or one newer than it is refused, never touched.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from feedback_db.errors import StoreError
from feedback_db.revision import HEAD
from feedback_db.session import db_detail, safe_url, sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision this program knows."""
    return HEAD


def script_head() -> str | None:
    """The head as alembic reads it from the migration scripts (tests compare it with HEAD)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for a database never migrated.

    Raises:
        StoreError: the database cannot be read.
    """
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            # What alembic's MigrationContext.get_current_revision reads, without importing it.
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot read the schema revision of {safe_url(str(engine.url))}: {db_detail(exc)}"
        ) from exc
    if len(rows) > 1:
        raise StoreError(
            f"{safe_url(str(engine.url))} records {len(rows)} schema revisions; it is not a "
            "MedGemma Reviewer store"
        )
    return rows[0] if rows else None


def _check_known(engine: Engine, revision: str | None) -> None:
    url = safe_url(str(engine.url))
    if revision is None:
        try:
            tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read {url}: {db_detail(exc)}") from exc
        if tables:
            raise StoreError(
                f"{url} holds tables ({', '.join(sorted(tables))}) but no schema revision: "
                "it is not a MedGemma Reviewer store; refusing to touch it"
            )
    elif revision != HEAD and revision not in known_revisions():
        raise StoreError(
            f"{url} is at schema revision {revision}, newer than this program knows "
            f"(head {head_revision()}); update MedGemma Reviewer"
        )


def backup_sqlite(path: str | Path, revision: str | None) -> Path:
    """A consistent copy of a SQLite file beside it: ``<name>.bak-<revision>-<UTC time>``.

    Raises:
        StoreError: the copy could not be made (the upgrade is then not attempted).
    """
    src_path = Path(path)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dst_path = src_path.with_name(f"{src_path.name}.bak-{revision or 'none'}-{stamp}")
    try:
        src = sqlite3.connect(str(src_path))
        try:
            dst = sqlite3.connect(str(dst_path))
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(
            f"cannot back up {src_path} to {dst_path} before upgrading: {exc}"
        ) from exc
    return dst_path


def upgrade(engine: Engine) -> Path | None:
    """Bring the database to head; return the backup made first (None when none was needed).

    A new database is created at head with no backup; an up-to-date one is left alone.

    Raises:
        StoreError: the database is not ours, is newer than this program, cannot be backed up,
            or a migration failed (on SQLite the failed migration is rolled back as a whole).
    """
    revision = current_revision(engine)
    head = head_revision()
    if revision == head:
        return None
    _check_known(engine, revision)
    from alembic import command
    from alembic.util.exc import CommandError

    backup = None
    path = sqlite_path(str(engine.url))
    if revision is not None and path is not None:
        backup = backup_sqlite(path, revision)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            if sqlite:
                # Batch migrations copy and drop tables; SQLite allows that only with foreign
                # keys off, which must be set outside a transaction. Checked again below.
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    command.upgrade(_config(conn), "head")
                    if sqlite:
                        bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if bad:
                            raise StoreError(f"migration broke {len(bad)} foreign keys: {bad[:5]}")
            finally:
                if sqlite:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    except (SQLAlchemyError, CommandError) as exc:
        where = f"; the database before the upgrade is saved as {backup}" if backup else ""
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StoreError(
            f"upgrading {safe_url(str(engine.url))} to {head} failed: {detail}{where}"
        ) from exc
    return backup
