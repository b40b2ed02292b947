"""Databases at each schema revision, as an older MedGemma Reviewer left them.

``python -m tests.feedback_db.old_stores`` (re)writes the committed files in ``data/``
(``store_<revision>.db``); the migration tests upgrade each one. Rows are written with plain SQL in
the shape of their revision, so the files stay what that revision wrote whatever the models say now.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from feedback_db.migrate import _config

DATA = Path(__file__).resolve().parent / "data"
REVISIONS = ("0001", "0002", "0003")
T = "2025-01-02 03:04:05.000000"


def build(path: Path, revision: str) -> Path:
    """Create ``path`` at ``revision`` with one of everything, including a superseded rating."""
    path.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)
    engine.dispose()
    db = sqlite3.connect(path)
    case_extra = (
        ", 0, NULL, NULL" if revision >= "0003" else ""
    )  # burned_in, cleared by, cleared at
    version_extra = ", NULL" if revision >= "0003" else ""  # card_sha256
    with db:
        db.execute("INSERT INTO reviewers VALUES (1, 'dr-lee', 'radiologist', ?)", (T,))
        db.execute(
            "INSERT INTO cases VALUES ('c1', 'mri', 'images/c1.png', 'Glioblastoma', 'Aspirin', "
            "'treatment_mismatch', 'critical', 5000.0, 'test', '{}', ?" + case_extra + ")",
            (T,),
        )
        db.execute(
            "INSERT INTO model_versions VALUES (1, 'base', 'heuristic', 'table', NULL, NULL, NULL, 1, NULL, ?"
            + version_extra
            + ")",
            (T,),
        )
        db.execute(
            "INSERT INTO model_versions VALUES (2, 'v2', 'clip-llm', 'tiny', 'base', NULL, NULL, 0, NULL, ?"
            + version_extra
            + ")",
            (T,),
        )
        db.execute(
            "INSERT INTO predictions VALUES (1, 1, 'c1', 'CORRECT', 'fits', 'CORRECT - fits', 0.6, 2.0, ?)",
            (T,),
        )
        db.execute(
            "INSERT INTO predictions VALUES (2, 2, 'c1', 'ERROR', 'wrong drug', 'ERROR - wrong drug', 0.7, 5.0, ?)",
            (T,),
        )
        margin = ", NULL" if revision >= "0002" else ""
        cols = "id, case_id, reviewer_id, prediction_a_id, prediction_b_id, preference, true_label, severity, rationale, supersedes_id, retracted, created_at"
        cols += ", margin" if revision >= "0002" else ""
        if revision >= "0003":
            margin += ", 'CORRECT - fits', 'ERROR - wrong drug'"
            cols += ", answer_a, answer_b"
        db.execute(
            f"INSERT INTO ratings ({cols}) VALUES (1, 'c1', 1, 1, 2, 'a', 'CORRECT', NULL, NULL, NULL, 0, ?{margin})",
            (T,),
        )
        db.execute(
            f"INSERT INTO ratings ({cols}) VALUES (2, 'c1', 1, 1, 2, 'b', 'ERROR', 'critical', NULL, 1, 0, ?{margin})",
            (T,),
        )
        db.execute(
            "INSERT INTO preference_pairs VALUES (1, 1, 'c1', 'CORRECT - fits', 'ERROR - wrong drug')"
        )
        db.execute(
            "INSERT INTO preference_pairs VALUES (2, 2, 'c1', 'ERROR - wrong drug', 'CORRECT - fits')"
        )
        db.execute(
            "INSERT INTO training_runs VALUES (1, 'reward', '{\"lr\": 0.0001}', 'base', 'succeeded', 'ok', 'v2', ?, ?)",
            (T, T),
        )
    db.execute("VACUUM")
    db.close()
    return path


if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    for rev in REVISIONS:
        print(build(DATA / f"store_{rev}.db", rev))
