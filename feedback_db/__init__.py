"""The feedback store: SQLAlchemy models, sessions, migrations, export/import of JSONL.

Never imports torch or Qt (see the import-linter contracts in pyproject.toml). The public API::

    from feedback_db import open_store, StoreError
    store = open_store("sqlite:////abs/path/medreview.db")   # creates or upgrades (after a backup)
    rev = store.ensure_reviewer("dr-lee", "radiologist")
"""

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
from feedback_db.store import Store, inspect_store, open_store

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
