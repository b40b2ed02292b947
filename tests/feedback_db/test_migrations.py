"""Migrations: a new database is created at head, a second run changes nothing, every older
committed database upgrades after a backup, and what is not ours is never touched."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from feedback_db import StoreError, open_store
from feedback_db.migrate import current_revision, head_revision, script_head
from feedback_db.models import Base
from tests.feedback_db.old_stores import DATA, REVISIONS, build


def _revision(path: Path) -> str | None:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        db.close()
    return rows[0][0] if rows else None


def _backups(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.bak-*"))


def test_empty_database_migrates_to_head_and_matches_the_models(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    store = open_store(f"sqlite:///{db}")
    assert store.backup_path is None and _backups(tmp_path) == []
    assert _revision(db) == head_revision()
    with store.sessions.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == [], f"models and migrations disagree: {diffs}"
    store.close()


def test_the_head_constant_is_the_scripts_head_and_the_revision_reads_as_alembic_reads_it(
    tmp_path: Path,
) -> None:
    # Opening a store compares with migrate.HEAD without importing alembic; a new migration
    # script without updating HEAD would make every store look out of date, or worse.
    assert head_revision() == script_head()
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    with store.sessions.engine.connect() as conn:
        assert (
            current_revision(store.sessions.engine)
            == MigrationContext.configure(conn).get_current_revision()
        )
    store.close()


def test_opening_an_up_to_date_store_does_not_import_alembic(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'b.db'}"
    open_store(url).close()
    code = f"import sys; from feedback_db import open_store; open_store({url!r}).close(); print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    open_store(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as conn:
        schema = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    store = open_store(f"sqlite:///{db}")
    assert store.backup_path is None and _backups(tmp_path) == []
    store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema


def test_committed_files_are_what_the_builder_makes(tmp_path: Path) -> None:
    for rev in REVISIONS:
        committed = DATA / f"store_{rev}.db"
        assert committed.is_file(), (
            f"run python -m tests.feedback_db.old_stores to create {committed}"
        )
        assert _revision(committed) == rev
    assert REVISIONS[-1] == head_revision(), (
        "new schema revision: add it to old_stores.REVISIONS and commit its file"
    )


@pytest.mark.parametrize("rev", REVISIONS)
def test_every_committed_revision_upgrades_with_a_backup(tmp_path: Path, rev: str) -> None:
    db = tmp_path / "medreview.db"
    shutil.copy(DATA / f"store_{rev}.db", db)
    store = open_store(f"sqlite:///{db}")
    if rev == head_revision():
        assert store.backup_path is None
    else:
        assert store.backup_path is not None and store.backup_path.is_file()
        assert store.backup_path.parent == tmp_path and rev in store.backup_path.name
        assert _revision(store.backup_path) == rev  # the copy is the database before the upgrade
    assert store.info().up_to_date
    # The data came through: history, the standing rating, its pairs, versions and runs.
    history = store.rating_history("c1")
    assert [(r.id, r.preference, r.supersedes_id, r.margin) for r in history] == [
        (1, "a", None, None),
        (2, "b", 1, None),
    ]
    assert store.current_rating("c1") == history[1]
    assert [(p.chosen, p.rejected) for p in store.pairs_for_rating(2)] == [
        ("ERROR - wrong drug", "CORRECT - fits")
    ]
    assert [v.name for v in store.model_versions()] == ["base", "v2"]
    assert store.training_runs()[0].version == "v2"
    assert store.get_case("c1").severity == "critical"  # type: ignore[union-attr]
    store.close()


def test_upgrade_can_be_refused(tmp_path: Path) -> None:
    db = build(tmp_path / "old.db", "0001")
    with pytest.raises(StoreError, match="medreview db upgrade"):
        open_store(f"sqlite:///{db}", upgrade=False)
    assert _revision(db) == "0001" and _backups(tmp_path) == []


def test_a_failed_upgrade_changes_nothing_and_says_where_the_backup_is(tmp_path: Path) -> None:
    db = build(tmp_path / "old.db", "0001")
    with sqlite3.connect(db) as conn:  # makes 0002's CREATE TABLE evaluations fail
        conn.execute("CREATE TABLE evaluations (x INTEGER)")
    with pytest.raises(StoreError, match="failed.*saved as .*bak-0001"):
        open_store(f"sqlite:///{db}")
    assert _revision(db) == "0001"
    with sqlite3.connect(db) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(ratings)")]
    assert "margin" not in cols  # the migration was rolled back as a whole
    assert len(_backups(tmp_path)) == 1


def test_a_database_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE patients (name TEXT)")
    with pytest.raises(StoreError, match="not a MedGemma Reviewer store"):
        open_store(f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["patients"]


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    db = build(tmp_path / "future.db", head_revision())
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="newer than this program"):
        open_store(f"sqlite:///{db}")
