"""upload checks: an unconfirmed near-chance check expires

The sweep ends ``needs_confirmation`` checks older than the confirmation window as ``expired``; it
finds them by state and age every minute, so they get an index instead of a scan of every check.

Revision ID: upload_check_confirmation_expiry
Revises: upload_checks_followed_live
Create Date: 2026-11-29 00:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "upload_check_confirmation_expiry"
down_revision: str | None = "upload_checks_followed_live"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_upload_checks_state_updated", "upload_checks", ["state", "updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_upload_checks_state_updated", table_name="upload_checks")
