"""leaderboard and admin api: API tokens, upload grants, rescore history, leaderboard indexes

The covering index ``ix_submissions_leaderboard`` lets one GROUP BY per cohort page read only the
index (cohort, trainee, status, accuracy, time), which keeps the leaderboard fast at 200,000 rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 15:53:01.177007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column(
            "scope",
            sa.Enum("admin", "instructor", name="token_scope", native_enum=False, create_constraint=True, length=16),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_api_tokens_created_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "upload_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("extra", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("granted_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["granted_by_id"], ["users.id"], name=op.f("fk_upload_grants_granted_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_upload_grants_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_grants")),
    )
    with op.batch_alter_table("upload_grants", schema=None) as batch_op:
        batch_op.create_index("ix_upload_grants_user_day", ["user_id", "day"], unique=False)

    op.create_table(
        "submission_rescores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("previous_status", sa.String(length=16), nullable=False),
        sa.Column("previous_accuracy", sa.Float(), nullable=True),
        sa.Column("previous_testset_id", sa.Integer(), nullable=True),
        sa.Column("previous", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["previous_testset_id"],
            ["test_sets.id"],
            name=op.f("fk_submission_rescores_previous_testset_id_test_sets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_submission_rescores_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_rescores_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_rescores")),
    )
    with op.batch_alter_table("submission_rescores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_submission_rescores_submission_id"), ["submission_id"], unique=False)

    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.create_index("ix_enrollments_cohort_role", ["cohort_id", "role"], unique=False)

    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_submissions_leaderboard", ["cohort_id", "user_id", "status", "accuracy", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_submissions_leaderboard")

    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrollments_cohort_role")

    with op.batch_alter_table("submission_rescores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_rescores_submission_id"))

    op.drop_table("submission_rescores")
    with op.batch_alter_table("upload_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_upload_grants_user_day")

    op.drop_table("upload_grants")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
