"""leaderboard versions: a token per cohort that triggers replace when the board's data changes

Reading every ranked trainee on each leaderboard request cost PostgreSQL most of the 50 ms a page
may take; the web processes now keep each cohort's ranked board in memory and only read this
token per request. The database itself replaces the token, from triggers on every table the board
reads, so no writer can forget to (ORM, Core statements, cascades, other processes).

Tokens are random (a UUID's worth): unlike a counter, a token never comes back after a rollback or
in another database. Existing cohorts get one here; a new cohort gets one from its insert trigger.

Revision ID: leaderboard_versions
Revises: users_search_key
Create Date: 2026-11-29 03:40:00
"""

# The DDL below is built from this file's constants only, and "token" names a column, not a secret.
# ruff: noqa: S105, S608

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "leaderboard_versions"
down_revision: str | None = "users_search_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The board reads these columns of users; other updates (a login, a password) leave the token alone.
_USER_COLUMNS = ("name", "email", "search_key", "is_active")
_SQLITE_TOKEN = "lower(hex(randomblob(16)))"
_PG_TOKEN = "gen_random_uuid()::text"


def _sqlite_triggers() -> list[str]:
    bump = f"UPDATE leaderboard_versions SET token = {_SQLITE_TOKEN} WHERE cohort_id"
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _USER_COLUMNS)
    statements = [
        f"""CREATE TRIGGER leaderboard_cohort_created AFTER INSERT ON cohorts BEGIN
            INSERT OR REPLACE INTO leaderboard_versions (cohort_id, token) VALUES (NEW.id, {_SQLITE_TOKEN});
        END""",
        f"""CREATE TRIGGER leaderboard_user_changed AFTER UPDATE OF {", ".join(_USER_COLUMNS)} ON users
        WHEN {changed} BEGIN
            {bump} IN (SELECT cohort_id FROM enrollments WHERE user_id = NEW.id);
        END""",
        f"""CREATE TRIGGER leaderboard_user_deleted AFTER DELETE ON users BEGIN
            {bump} IN (SELECT cohort_id FROM enrollments WHERE user_id = OLD.id);
        END""",
    ]
    for table in ("enrollments", "trainee_scores"):
        statements += [
            f"CREATE TRIGGER leaderboard_{table}_inserted AFTER INSERT ON {table} BEGIN {bump} = NEW.cohort_id; END",
            f"CREATE TRIGGER leaderboard_{table}_updated AFTER UPDATE ON {table} BEGIN"
            f" {bump} IN (OLD.cohort_id, NEW.cohort_id); END",
            f"CREATE TRIGGER leaderboard_{table}_deleted AFTER DELETE ON {table} BEGIN {bump} = OLD.cohort_id; END",
        ]
    return statements


def _postgresql_triggers() -> list[str]:
    bump = f"UPDATE leaderboard_versions SET token = {_PG_TOKEN} WHERE cohort_id"
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _USER_COLUMNS)
    return [
        f"""CREATE FUNCTION leaderboard_cohort_created() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO leaderboard_versions (cohort_id, token) VALUES (NEW.id, {_PG_TOKEN})
            ON CONFLICT (cohort_id) DO UPDATE SET token = EXCLUDED.token;
            RETURN NULL;
        END $$""",
        f"""CREATE FUNCTION leaderboard_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {bump} IN (SELECT cohort_id FROM enrollments WHERE user_id = OLD.id);
            RETURN NULL;
        END $$""",
        f"""CREATE FUNCTION leaderboard_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {bump} = NEW.cohort_id;
            ELSIF TG_OP = 'DELETE' THEN
                {bump} = OLD.cohort_id;
            ELSE
                {bump} IN (OLD.cohort_id, NEW.cohort_id);
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER leaderboard_cohort_created AFTER INSERT ON cohorts"
        " FOR EACH ROW EXECUTE FUNCTION leaderboard_cohort_created()",
        f"CREATE TRIGGER leaderboard_user_changed AFTER UPDATE OF {', '.join(_USER_COLUMNS)} ON users"
        f" FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION leaderboard_user_changed()",
        "CREATE TRIGGER leaderboard_user_deleted AFTER DELETE ON users"
        " FOR EACH ROW EXECUTE FUNCTION leaderboard_user_changed()",
        "CREATE TRIGGER leaderboard_enrollments_changed AFTER INSERT OR UPDATE OR DELETE ON enrollments"
        " FOR EACH ROW EXECUTE FUNCTION leaderboard_row_changed()",
        "CREATE TRIGGER leaderboard_trainee_scores_changed AFTER INSERT OR UPDATE OR DELETE ON trainee_scores"
        " FOR EACH ROW EXECUTE FUNCTION leaderboard_row_changed()",
    ]


def upgrade() -> None:
    op.create_table(
        "leaderboard_versions",
        sa.Column("cohort_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_leaderboard_versions_cohort_id_cohorts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("cohort_id", name=op.f("pk_leaderboard_versions")),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    token = _PG_TOKEN if postgresql else _SQLITE_TOKEN
    op.execute(f"INSERT INTO leaderboard_versions (cohort_id, token) SELECT id, {token} FROM cohorts")
    for statement in _postgresql_triggers() if postgresql else _sqlite_triggers():
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    triggers = {
        "cohorts": ["leaderboard_cohort_created"],
        "users": ["leaderboard_user_changed", "leaderboard_user_deleted"],
        "enrollments": ["leaderboard_enrollments_changed"] if postgresql else
        [f"leaderboard_enrollments_{op_}" for op_ in ("inserted", "updated", "deleted")],
        "trainee_scores": ["leaderboard_trainee_scores_changed"] if postgresql else
        [f"leaderboard_trainee_scores_{op_}" for op_ in ("inserted", "updated", "deleted")],
    }  # fmt: skip
    for table, names in triggers.items():
        for name in names:
            op.execute(f"DROP TRIGGER {name} ON {table}" if postgresql else f"DROP TRIGGER {name}")
    if postgresql:
        for function in ("leaderboard_cohort_created", "leaderboard_user_changed", "leaderboard_row_changed"):
            op.execute(f"DROP FUNCTION {function}()")
    op.drop_table("leaderboard_versions")
