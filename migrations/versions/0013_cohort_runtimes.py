"""cohort runtimes: which runtimes a cohort's submissions may run in

A cohort now says which runtimes its trainees may use: "numpy" (the reference, always) and
"tensorflow" (TensorFlow + Keras). New cohorts allow both (the model's default); the cohorts already
here keep what they had, NumPy only, until an admin opts them in (the API, or
``python -m app.cli cohort-runtimes``): a course under way may have told its trainees NumPy only.

Revision ID: cohort_runtimes
Revises: similarity_copy_index
Create Date: 2026-12-01 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cohort_runtimes"
down_revision: str | None = "similarity_copy_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch rebuild, so SQLite keeps the cohorts table's leaderboard trigger.
    op.add_column("cohorts", sa.Column("runtimes", sa.JSON(), nullable=False, server_default=sa.text("'[\"numpy\"]'")))


def downgrade() -> None:
    op.drop_column("cohorts", "runtimes")
