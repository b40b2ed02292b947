"""The first schema: reviewers, cases, model versions, predictions, ratings, pairs, runs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviewers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(100), primary_key=True),
        sa.Column("modality", sa.String(50), nullable=False, index=True),
        sa.Column("image", sa.Text, nullable=False),
        sa.Column("finding", sa.Text, nullable=False),
        sa.Column("treatment", sa.Text, nullable=False),
        sa.Column("error_type", sa.String(100)),
        sa.Column("severity", sa.String(20)),
        sa.Column("cost_impact", sa.Float),
        sa.Column("split", sa.String(20), index=True),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("backend", sa.String(50), nullable=False),
        sa.Column("base_model", sa.Text, nullable=False),
        sa.Column("parent", sa.String(200), sa.ForeignKey("model_versions.name")),
        sa.Column("path", sa.Text),
        sa.Column("metrics", sa.JSON),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column(
            "case_id", sa.String(100), sa.ForeignKey("cases.case_id"), nullable=False, index=True
        ),
        sa.Column("label", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float),
        sa.Column("latency_ms", sa.Float),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index(
        "ix_predictions_version_case_id", "predictions", ["version_id", "case_id", "id"]
    )
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.String(100), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column(
            "reviewer_id", sa.Integer, sa.ForeignKey("reviewers.id"), nullable=False, index=True
        ),
        sa.Column("prediction_a_id", sa.Integer, sa.ForeignKey("predictions.id"), nullable=False),
        sa.Column("prediction_b_id", sa.Integer, sa.ForeignKey("predictions.id"), nullable=False),
        sa.Column("preference", sa.String(20), nullable=False),
        sa.Column("true_label", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(20)),
        sa.Column("rationale", sa.Text),
        sa.Column("supersedes_id", sa.Integer, sa.ForeignKey("ratings.id"), unique=True),
        sa.Column("retracted", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_ratings_case_reviewer", "ratings", ["case_id", "reviewer_id"])
    op.create_table(
        "preference_pairs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rating_id", sa.Integer, sa.ForeignKey("ratings.id"), nullable=False, index=True),
        sa.Column("case_id", sa.String(100), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("chosen", sa.Text, nullable=False),
        sa.Column("rejected", sa.Text, nullable=False),
    )
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("parent_version", sa.String(200), sa.ForeignKey("model_versions.name")),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("version", sa.String(200), sa.ForeignKey("model_versions.name")),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
    )


def downgrade() -> None:
    for table in (
        "training_runs",
        "preference_pairs",
        "ratings",
        "predictions",
        "model_versions",
        "cases",
        "reviewers",
    ):
        op.drop_table(table)
