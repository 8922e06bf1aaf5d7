"""smoke confirmations: a trainee's "upload anyway" for a zip that scored near chance in the pre-flight

Revision ID: 0003_smoke_confirmations
Revises: 0003_similarity
Create Date: 2026-11-28 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_smoke_confirmations"
down_revision: str | None = "0003_similarity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "smoke_confirmations",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("zip_sha256", sa.String(length=64), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_smoke_confirmations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "zip_sha256", name=op.f("pk_smoke_confirmations")),
    )


def downgrade() -> None:
    op.drop_table("smoke_confirmations")
