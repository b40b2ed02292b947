"""Fixtures for store tests: a real SQLite file in a temporary workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from feedback_db import Store, open_store
from tests.feedback_db.factory import Seeded, seed


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def store(root: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{root / 'medreview.db'}")
    yield s
    s.close()


@pytest.fixture
def seeded(store: Store, root: Path) -> Seeded:
    return seed(store, root)
