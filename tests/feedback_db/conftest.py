"""Fixtures for store tests: a real SQLite file in a temporary workspace, and the same tests on
PostgreSQL when ``MEDREVIEW_TEST_PG_URL`` names a server (each test gets a fresh database there),
e.g. ``postgresql+psycopg://postgres@/postgres?host=/tmp/pg&port=54329``."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedback_db import Store, open_store
from tests.feedback_db.factory import Seeded, seed

PG_ENV = "MEDREVIEW_TEST_PG_URL"
BACKENDS = ["sqlite", *(["postgresql"] if os.environ.get(PG_ENV) else [])]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


def _pg_database(server_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "medreview_test_" + secrets.token_hex(4)
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, root: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{root / 'medreview.db'}"
    else:
        yield from _pg_database(os.environ[PG_ENV])


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def seeded(store: Store, root: Path) -> Seeded:
    return seed(store, root)


@pytest.fixture
def sqlite_only(store_url: str) -> None:
    """For tests of SQLite itself (pragmas, file locks)."""
    if not store_url.startswith("sqlite"):
        pytest.skip("SQLite-specific")
