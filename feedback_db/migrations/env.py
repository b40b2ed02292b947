"""Alembic environment, run from code only (feedback_db.migrate passes the connection in).

``render_as_batch`` lets ALTER-style migrations work on SQLite (copy-and-move of the table).
"""

from __future__ import annotations

from alembic import context

from feedback_db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - guarded by feedback_db.migrate
    raise RuntimeError("feedback_db migrations run from code: use feedback_db.migrate.upgrade()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
