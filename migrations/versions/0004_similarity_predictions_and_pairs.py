"""similarity: kept predictions and file digests per submission, pairs of trainees per cohort

``submissions.predictions`` holds the class ids predicted on the hidden set (one byte each, for the
row's ``testset_id``); ``submissions.file_hashes`` the digests of the zip, its weight files and its
normalised code, also one row each in ``submission_files`` (indexed by cohort and digest, for
finding identical files in one lookup). ``similarity_pairs`` keeps, per cohort and pair of trainees, the strongest
evidence that their work is shared. None of it is shown to trainees.

Revision ID: 0003_similarity
Revises: 0003_preflight_gate
Create Date: 2026-11-28 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_similarity"
down_revision: str | None = "0003_preflight_gate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("predictions", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("file_hashes", sa.JSON(), nullable=True))

    op.create_table(
        "similarity_pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cohort_id", sa.Integer(), nullable=False),
        sa.Column("user_a_id", sa.Integer(), nullable=False),
        sa.Column("user_b_id", sa.Integer(), nullable=False),
        sa.Column("testset_id", sa.Integer(), nullable=True),
        sa.Column("submission_a_id", sa.Integer(), nullable=True),
        sa.Column("submission_b_id", sa.Integer(), nullable=True),
        sa.Column("both_wrong", sa.Integer(), nullable=True),
        sa.Column("same_wrong", sa.Integer(), nullable=True),
        sa.Column("error_agreement", sa.Float(), nullable=True),
        sa.Column("agreement", sa.Float(), nullable=True),
        sa.Column("shared_files", sa.JSON(), nullable=False),
        sa.Column("shared_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_similarity_pairs_cohort_id_cohorts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["submission_a_id"],
            ["submissions.id"],
            name=op.f("fk_similarity_pairs_submission_a_id_submissions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["submission_b_id"],
            ["submissions.id"],
            name=op.f("fk_similarity_pairs_submission_b_id_submissions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["testset_id"], ["test_sets.id"], name=op.f("fk_similarity_pairs_testset_id_test_sets"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_a_id"], ["users.id"], name=op.f("fk_similarity_pairs_user_a_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_b_id"], ["users.id"], name=op.f("fk_similarity_pairs_user_b_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_similarity_pairs")),
        sa.UniqueConstraint("cohort_id", "user_a_id", "user_b_id", name="uq_similarity_pairs_cohort_users"),
    )
    with op.batch_alter_table("similarity_pairs", schema=None) as batch_op:
        batch_op.create_index("ix_similarity_pairs_cohort_rate", ["cohort_id", "error_agreement"], unique=False)
        batch_op.create_index("ix_similarity_pairs_cohort_user_b", ["cohort_id", "user_b_id"], unique=False)

    op.create_table(
        "submission_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("cohort_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_submission_files_cohort_id_cohorts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_files_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_submission_files_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_files")),
    )
    with op.batch_alter_table("submission_files", schema=None) as batch_op:
        batch_op.create_index("ix_submission_files_cohort_sha256", ["cohort_id", "sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_submission_files_submission_id"), ["submission_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("submission_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_files_submission_id"))
        batch_op.drop_index("ix_submission_files_cohort_sha256")
    op.drop_table("submission_files")
    with op.batch_alter_table("similarity_pairs", schema=None) as batch_op:
        batch_op.drop_index("ix_similarity_pairs_cohort_user_b")
        batch_op.drop_index("ix_similarity_pairs_cohort_rate")
    op.drop_table("similarity_pairs")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("file_hashes")
        batch_op.drop_column("predictions")
