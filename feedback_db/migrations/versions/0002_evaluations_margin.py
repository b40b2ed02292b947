"""Evaluations with their promotion decision; a rating's preference margin.

Revision ID: 0002
Revises: 0001

``ratings.margin`` is added with a batch operation (on SQLite: copy the table, move it back), the
reason the environment renders migrations as batches.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False, index=True
        ),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("promoted", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    with op.batch_alter_table("ratings") as batch:
        batch.add_column(sa.Column("margin", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("ratings") as batch:
        batch.drop_column("margin")
    op.drop_table("evaluations")
