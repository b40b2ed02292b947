"""``Store`` satisfies the Protocols the app is typed against (mypy checks the assignment too)."""

from __future__ import annotations

import inspect

from feedback_db import Store
from feedback_db.protocols import StoreReader, StoreWriter


def _as_reader(store: Store) -> StoreReader:
    return store  # mypy: Store is a StoreReader


def _as_writer(store: Store) -> StoreWriter:
    return store  # mypy: Store is a StoreWriter


def test_store_has_every_protocol_method_with_the_same_parameters() -> None:
    for proto in (StoreReader, StoreWriter):
        for name, member in inspect.getmembers(proto, inspect.isfunction):
            if name.startswith("_"):
                continue
            mine = getattr(Store, name)
            assert list(inspect.signature(mine).parameters) == list(
                inspect.signature(member).parameters
            ), name
