"""The feedback store: SQLAlchemy models, sessions, migrations, export/import of JSONL.

Never imports torch or Qt (see the import-linter contracts in pyproject.toml). The public API::

    from feedback_db import open_store, StoreError
    store = open_store("sqlite:////abs/path/medreview.db")   # creates or upgrades (after a backup)
    rev = store.ensure_reviewer("dr-lee", "radiologist")
"""

from typing import TYPE_CHECKING, Any

from feedback_db.errors import StoreBusy, StoreError
from feedback_db.records import (
    CaseIn,
    CaseRecord,
    Evaluation,
    ModelVersion,
    Prediction,
    PredictionIn,
    PreferencePair,
    Rating,
    RatingIn,
    Reviewer,
    StoreInfo,
    TrainingRun,
)

if TYPE_CHECKING:
    from feedback_db.store import Store, inspect_store, open_store

# The store module (SQLAlchemy and the ORM models, about 0.4 s to import) loads on first use of
# these names, so ``feedback_db.records`` and ``feedback_db.quick_reader`` can be imported alone:
# the GUI shows its first case before SQLAlchemy is loaded (feedback_db.quick_reader).
_LAZY = frozenset({"Store", "inspect_store", "open_store"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from feedback_db import store

        return getattr(store, name)
    raise AttributeError(f"module 'feedback_db' has no attribute {name!r}")


__all__ = [
    "CaseIn",
    "CaseRecord",
    "Evaluation",
    "ModelVersion",
    "Prediction",
    "PredictionIn",
    "PreferencePair",
    "Rating",
    "RatingIn",
    "Reviewer",
    "Store",
    "StoreBusy",
    "StoreError",
    "StoreInfo",
    "TrainingRun",
    "inspect_store",
    "open_store",
]
