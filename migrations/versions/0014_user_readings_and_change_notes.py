"""users: a reading (フリガナ) per person; submissions and upload checks: what the trainee changed

Names in kanji sort by code point, which is no order a Japanese reader knows; lists of people now
sort by the reading in 五十音 order, and the search matches it, so it joins the folded search key
(filled again here: the fold now also reads katakana as hiragana). A trainee may write at upload
what they changed since the last submission; the history and its downloads show it.

The board's trigger on ``users`` watches the reading too (the order of names shows it). On SQLite,
adding a column in batch mode may rebuild ``users``, which drops its triggers: both triggers on
``users`` are dropped if still there and created again, on both databases, from this file's copy
of their text (migration ``leaderboard_versions`` has the rest of the scheme).

Revision ID: user_readings_and_change_notes
Revises: similarity_copy_index
Create Date: 2026-12-06 02:30:00
"""

# The DDL below is built from this file's constants only, and "token" names a column, not a secret.
# ruff: noqa: S105, S608

import unicodedata
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "user_readings_and_change_notes"
down_revision: str | None = "cohort_runtimes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("name", "email", "search_key", "is_active")
_AFTER = (*_BEFORE, "reading")
_SQLITE_TOKEN = "lower(hex(randomblob(16)))"
_CHANGED_USERS_MAX = 1000
_KATAKANA_TO_HIRAGANA = {code: code - 0x60 for code in range(0x30A1, 0x30F7)}


def _fold_before(text: str) -> str:
    """``app.folding.fold`` before this revision."""
    return unicodedata.normalize("NFKC", text).lower()


def _fold_after(text: str) -> str:
    """``app.folding.fold`` as of this revision (katakana read as hiragana)."""
    return _fold_before(text).translate(_KATAKANA_TO_HIRAGANA)


def _bump(cohorts: str, who: str) -> str:
    """Migration ``leaderboard_versions``'s ``_bump`` on SQLite, as it was written there."""
    growing = f"{who} IS NOT NULL AND changed_users IS NOT NULL AND length(changed_users) < {_CHANGED_USERS_MAX}"
    return (
        "UPDATE leaderboard_versions SET"
        f" previous = CASE WHEN {growing} THEN previous ELSE token END,"
        f" changed_users = CASE WHEN {who} IS NULL THEN NULL"
        f" WHEN {growing} THEN changed_users || {who} || ',' ELSE ',' || {who} || ',' END,"
        f" token = {_SQLITE_TOKEN}"
        f" WHERE cohort_id {cohorts}"
    )


def _user_triggers(columns: Sequence[str], postgresql: bool) -> list[str]:
    """Drop the triggers on ``users`` (if a rebuild left them) and create them for ``columns``."""
    if postgresql:
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        return [
            "DROP TRIGGER IF EXISTS leaderboard_user_changed ON users",
            "DROP TRIGGER IF EXISTS leaderboard_user_deleted ON users",
            f"CREATE TRIGGER leaderboard_user_changed AFTER UPDATE OF {', '.join(columns)} ON users"
            f" FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION leaderboard_user_changed()",
            "CREATE TRIGGER leaderboard_user_deleted AFTER DELETE ON users"
            " FOR EACH ROW EXECUTE FUNCTION leaderboard_user_changed()",
        ]
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
    return [
        "DROP TRIGGER IF EXISTS leaderboard_user_changed",
        "DROP TRIGGER IF EXISTS leaderboard_user_deleted",
        f"""CREATE TRIGGER leaderboard_user_changed AFTER UPDATE OF {", ".join(columns)} ON users
        WHEN {changed} BEGIN
            {_bump("IN (SELECT cohort_id FROM enrollments WHERE user_id = NEW.id)", "NEW.id")};
        END""",
        f"""CREATE TRIGGER leaderboard_user_deleted AFTER DELETE ON users BEGIN
            {_bump("IN (SELECT cohort_id FROM enrollments WHERE user_id = OLD.id)", "OLD.id")};
        END""",
    ]


def _refill_search_keys(fold: Callable[[str], str], with_reading: bool) -> None:
    names = ["id", "name", "email", "search_key"] + (["reading"] if with_reading else [])
    users = sa.table("users", *(sa.column(name) for name in names))
    conn = op.get_bind()
    rows = conn.execute(sa.select(*(c for c in users.c if c.name != "search_key"))).all()
    keys = []
    for row in rows:
        key = f"{fold(row.name)}\n{fold(row.email)}"
        reading = row.reading if with_reading else ""
        keys.append({"user_id": row.id, "key": f"{key}\n{fold(reading)}" if reading else key})
    if keys:
        conn.execute(users.update().where(users.c.id == sa.bindparam("user_id")).values(search_key=sa.bindparam("key")),
                     keys)  # fmt: skip


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("reading", sa.String(length=200), server_default="", nullable=False))
    for table in ("submissions", "upload_checks"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("change_note", sa.String(length=200), server_default="", nullable=False))
    for statement in _user_triggers(_AFTER, postgresql):
        op.execute(statement)
    _refill_search_keys(_fold_after, with_reading=True)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in ("upload_checks", "submissions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("change_note")
    # The trigger names the column: it goes first (a rebuild of the table would trip on it).
    for statement in _user_triggers(_AFTER, postgresql)[:2]:
        op.execute(statement)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("reading")
    for statement in _user_triggers(_BEFORE, postgresql):
        op.execute(statement)
    _refill_search_keys(_fold_before, with_reading=False)
