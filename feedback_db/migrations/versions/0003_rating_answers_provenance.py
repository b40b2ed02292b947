"""Ratings carry their own answers and provenance; undo is recorded; cases and versions carry
their de-identification and integrity facts.

Revision ID: 0003
Revises: 0002

- ``ratings.answer_a`` / ``answer_b``: the two answers exactly as the clinician saw them. A rating
  made in the app also points at its predictions (``prediction_a_id``/``prediction_b_id``); an
  imported rating has no prediction (those ids are NULL) and keeps the other workstation's text
  here, with ``source`` (the file it came from) and ``imported_at``.
- ``ratings.undo_of``: the rating an undo row withdraws (a retraction, or a restored copy of the
  rating it had superseded). Undo lives in the store, so it survives a restart.
- ``model_versions.card_sha256``: the hash of ``model_card.json`` at registration, checked at load.
- ``cases.burned_in`` (the DICOM declares burned-in annotation) and who cleared it for export.

Existing ratings get their answers from the predictions they point at.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ratings") as batch:
        batch.add_column(sa.Column("answer_a", sa.Text))
        batch.add_column(sa.Column("answer_b", sa.Text))
        batch.add_column(sa.Column("source", sa.Text))
        batch.add_column(sa.Column("imported_at", sa.DateTime))
        batch.add_column(
            sa.Column("undo_of", sa.Integer, sa.ForeignKey("ratings.id", name="fk_ratings_undo_of"))
        )
        batch.alter_column("prediction_a_id", existing_type=sa.Integer, nullable=True)
        batch.alter_column("prediction_b_id", existing_type=sa.Integer, nullable=True)
    answer = (
        "(SELECT CASE WHEN TRIM(p.text) <> '' THEN p.text "
        "ELSE RTRIM(p.label || ' - ' || p.reason, ' -') END FROM predictions p WHERE p.id = ratings.{col})"
    )
    op.execute(
        "UPDATE ratings SET answer_a = "
        + answer.format(col="prediction_a_id")
        + ", answer_b = "
        + answer.format(col="prediction_b_id")
    )
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("card_sha256", sa.String(64)))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(
            sa.Column("burned_in", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("burned_in_cleared_by", sa.String(200)))
        batch.add_column(sa.Column("burned_in_cleared_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("burned_in_cleared_at")
        batch.drop_column("burned_in_cleared_by")
        batch.drop_column("burned_in")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("card_sha256")
    with op.batch_alter_table("ratings") as batch:
        batch.drop_column("undo_of")
        batch.drop_column("imported_at")
        batch.drop_column("source")
        batch.drop_column("answer_b")
        batch.drop_column("answer_a")
