"""trainee scores summary: one row per trainee and cohort for the leaderboard, backfilled

The leaderboard used to aggregate every submission of a cohort on each request (130–180 ms at
2,000 trainees × 100 submissions); it now reads ``trainee_scores``, which the application refreshes
whenever a submission is written (``app.services.trainee_scores``). The backfill below computes the
same values as that refresh, in SQL that runs unchanged on SQLite and PostgreSQL.

Revision ID: trainee_scores_summary
Revises: 0003_smoke_confirmations
Create Date: 2026-11-28 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "trainee_scores_summary"
down_revision: str | None = "0003_smoke_confirmations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SCORED = (
    "FROM submissions s WHERE s.cohort_id = g.cohort_id AND s.user_id = g.user_id "
    "AND s.status = 'succeeded' AND s.accuracy IS NOT NULL"
)
_BEST = f"{_SCORED} ORDER BY s.accuracy DESC, s.created_at, s.id LIMIT 1"
_LATEST = f"{_SCORED} ORDER BY s.created_at DESC, s.accuracy DESC, s.id DESC LIMIT 1"
# Built from the constants above only: no outside value reaches this text.
BACKFILL = f"""
INSERT INTO trainee_scores (cohort_id, user_id, submissions, last_submission_at, best_accuracy,
                            best_reached_at, best_submission_id, latest_accuracy, latest_submission_id)
SELECT g.cohort_id, g.user_id, g.n, g.last_at,
       (SELECT s.accuracy {_BEST}), (SELECT s.created_at {_BEST}), (SELECT s.id {_BEST}),
       (SELECT s.accuracy {_LATEST}), (SELECT s.id {_LATEST})
FROM (SELECT cohort_id, user_id, count(*) AS n, max(created_at) AS last_at
      FROM submissions GROUP BY cohort_id, user_id) g
"""  # noqa: S608


def upgrade() -> None:
    op.create_table(
        "trainee_scores",
        sa.Column("cohort_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("submissions", sa.Integer(), nullable=False),
        sa.Column("last_submission_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("best_accuracy", sa.Float(), nullable=True),
        sa.Column("best_reached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("best_submission_id", sa.Integer(), nullable=True),
        sa.Column("latest_accuracy", sa.Float(), nullable=True),
        sa.Column("latest_submission_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_trainee_scores_cohort_id_cohorts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_trainee_scores_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("cohort_id", "user_id", name=op.f("pk_trainee_scores")),
    )
    op.create_index(op.f("ix_trainee_scores_user_id"), "trainee_scores", ["user_id"], unique=False)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index(op.f("ix_trainee_scores_user_id"), table_name="trainee_scores")
    op.drop_table("trainee_scores")
