"""fair queues: when a submission entered the scoring queue, and when a pre-flight worker took a check

Workers no longer take the submission or the check their message names: they claim the next one in
a fair order (app.services.scoring_queue, app.services.upload_checks). That order needs

- ``submissions.queued_at``: when the row last entered the queue (its upload, or a rescoring), so a
  rescored submission waits from its rescoring, not from an upload weeks ago; filled here from
  ``created_at``;
- ``ix_submissions_finished_at``: the runs each trainee had while the oldest waiting upload waited
  are those that ended since it was queued (or still run);
- ``upload_checks.started_at`` and ``task_id``: when a pre-flight worker claimed the check (None
  while it waits) and which delivery did, so a check is claimed once, a trainee's pre-flight time in
  the last hour can be counted, and a worker process lost mid-check is matched to its check.

Revision ID: fair_queues
Revises: user_readings_and_change_notes
Create Date: 2026-11-30 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fair_queues"
down_revision: str | None = "user_readings_and_change_notes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added, filled, then made NOT NULL: adding a NOT NULL column needs a default for existing rows,
    # and no constant is right. No triggers live on ``submissions`` (SQLite's batch mode rebuilds it).
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE submissions SET queued_at = created_at")
    with op.batch_alter_table("submissions") as batch:
        batch.alter_column("queued_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_index("ix_submissions_finished_at", ["finished_at"])
    with op.batch_alter_table("upload_checks") as batch:
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("task_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upload_checks") as batch:
        batch.drop_column("task_id")
        batch.drop_column("started_at")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_index("ix_submissions_finished_at")
        batch.drop_column("queued_at")
