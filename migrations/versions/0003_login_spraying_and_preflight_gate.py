"""login spraying index and pre-flight gate: one pre-flight at a time per trainee, and an hourly rate

``preflight_leases`` holds the check a trainee has under way (primary key: one each);
``preflight_runs`` counts their checks for the hourly rate. The new login index serves the
per-address limit, which reads the failures of every account tried from one address.

Revision ID: 0003_preflight_gate
Revises: 0002
Create Date: 2026-11-28 18:32:26.279362
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_preflight_gate"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "preflight_leases",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_preflight_leases_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_preflight_leases")),
    )
    op.create_table(
        "preflight_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_preflight_runs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preflight_runs")),
    )
    with op.batch_alter_table("preflight_runs", schema=None) as batch_op:
        batch_op.create_index("ix_preflight_runs_user_time", ["user_id", "created_at"], unique=False)

    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempts_ip_time", ["ip", "created_at"], unique=False)
        # NULL: claimed, password being checked (see app.security.throttle)
        batch_op.alter_column("succeeded", existing_type=sa.Boolean(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE login_attempts SET succeeded = false WHERE succeeded IS NULL")
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.alter_column("succeeded", existing_type=sa.Boolean(), nullable=False)
        batch_op.drop_index("ix_login_attempts_ip_time")

    with op.batch_alter_table("preflight_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_preflight_runs_user_time")

    op.drop_table("preflight_runs")
    op.drop_table("preflight_leases")
