"""pre-flight cache keyed by the public set too: a verdict holds only for the set it was scored on

The pre-flight's smoke accuracy comes from the imported public set, so a verdict cached before an
import must not answer after it. The table is a cache: it is recreated with the wider key rather
than migrated (verdicts are computed again on the next upload of each zip).

Revision ID: preflight_cache_public_set
Revises: trainee_scores_summary
Create Date: 2026-11-28 21:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "preflight_cache_public_set"
down_revision: str | None = "trainee_scores_summary"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create(*, with_public_set: bool) -> None:
    key = ["zip_sha256", "engine_version", *(["public_set_sha256"] if with_public_set else [])]
    op.create_table(
        "preflight_checks",
        sa.Column("zip_sha256", sa.String(length=64), nullable=False),
        sa.Column("engine_version", sa.String(length=32), nullable=False),
        *([sa.Column("public_set_sha256", sa.String(length=64), nullable=False)] if with_public_set else []),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_preflight_checks")),
    )


def upgrade() -> None:
    op.drop_table("preflight_checks")
    _create(with_public_set=True)


def downgrade() -> None:
    op.drop_table("preflight_checks")
    _create(with_public_set=False)
