"""users: a folded search key beside the name and e-mail

The leaderboard's search compares NFKC + lower case, so full-width Latin typed with a Japanese IME
finds plain Latin and back. Folding every row inside each search cost PostgreSQL's ``normalize()``
several times the rest of the query; the key is folded once, when a user is written, and filled
here for the users already there.

Revision ID: users_search_key
Revises: upload_check_confirmation_expiry
Create Date: 2026-11-29 01:20:00
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "users_search_key"
down_revision: str | None = "upload_check_confirmation_expiry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _search_key(name: str, email: str) -> str:
    """``app.folding.search_key`` as it was when this ran (a migration keeps its own copy)."""
    return "\n".join(unicodedata.normalize("NFKC", text).lower() for text in (name, email))


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("search_key", sa.Text(), server_default="", nullable=False))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("email", sa.String),
                     sa.column("search_key", sa.Text))  # fmt: skip
    conn = op.get_bind()
    rows = conn.execute(sa.select(users.c.id, users.c.name, users.c.email)).all()
    if rows:
        conn.execute(
            users.update().where(users.c.id == sa.bindparam("user_id")).values(search_key=sa.bindparam("key")),
            [{"user_id": user_id, "key": _search_key(name, email)} for user_id, name, email in rows],
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("search_key")
