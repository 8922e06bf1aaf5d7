"""leaderboard versions: a token per cohort that triggers replace when the board's data changes

Reading every ranked trainee on each leaderboard request cost PostgreSQL most of the 50 ms a page
may take; the web processes now keep each cohort's ranked board in memory and only read this
token per request. The database itself replaces the token, from triggers on every table the board
reads, so no writer can forget to (ORM, Core statements, cascades, other processes).

Tokens are random (a UUID's worth): unlike a counter, a token never comes back after a rollback or
in another database. Existing cohorts get one here; a new cohort gets one from its insert trigger.
Beside the token, the row says which token the changes started from and whose rows changed since:
a process holding the board from then re-reads those trainees only, so the page after a few
results costs about what a page costs.

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
_CHANGED_USERS_MAX = 1000  # about 150 users: more than that, and reading the whole board is as quick


def _bump(token: str, cohorts: str, who: str) -> str:
    """A new token for ``cohorts`` (an ``= x`` or ``IN (...)`` condition) after a change to the rows
    of user ``who`` (NULL: not known).

    ``previous`` stays the token the changes started from and ``changed_users`` lists, as
    ``,12,57,``, every user whose rows changed since: a reader holding the board of ``previous``
    re-reads those users' rows only, however many results came in between its pages. A change whose
    user is not known, or a list grown past ``_CHANGED_USERS_MAX`` characters, starts again from the
    token before it. ``SET`` reads the row as it was, on both databases."""
    growing = f"{who} IS NOT NULL AND changed_users IS NOT NULL AND length(changed_users) < {_CHANGED_USERS_MAX}"
    return (
        "UPDATE leaderboard_versions SET"
        f" previous = CASE WHEN {growing} THEN previous ELSE token END,"
        f" changed_users = CASE WHEN {who} IS NULL THEN NULL"
        f" WHEN {growing} THEN changed_users || {who} || ',' ELSE ',' || {who} || ',' END,"
        f" token = {token}"
        f" WHERE cohort_id {cohorts}"
    )


def _sqlite_triggers() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _USER_COLUMNS)
    statements = [
        f"""CREATE TRIGGER leaderboard_cohort_created AFTER INSERT ON cohorts BEGIN
            INSERT OR REPLACE INTO leaderboard_versions (cohort_id, token) VALUES (NEW.id, {_SQLITE_TOKEN});
        END""",
        f"""CREATE TRIGGER leaderboard_user_changed AFTER UPDATE OF {", ".join(_USER_COLUMNS)} ON users
        WHEN {changed} BEGIN
            {_bump(_SQLITE_TOKEN, "IN (SELECT cohort_id FROM enrollments WHERE user_id = NEW.id)", "NEW.id")};
        END""",
        f"""CREATE TRIGGER leaderboard_user_deleted AFTER DELETE ON users BEGIN
            {_bump(_SQLITE_TOKEN, "IN (SELECT cohort_id FROM enrollments WHERE user_id = OLD.id)", "OLD.id")};
        END""",
    ]
    same_user = "CASE WHEN OLD.user_id = NEW.user_id THEN NEW.user_id END"
    for table in ("enrollments", "trainee_scores"):
        statements += [
            f"CREATE TRIGGER leaderboard_{table}_inserted AFTER INSERT ON {table} BEGIN"
            f" {_bump(_SQLITE_TOKEN, '= NEW.cohort_id', 'NEW.user_id')}; END",
            f"CREATE TRIGGER leaderboard_{table}_updated AFTER UPDATE ON {table} BEGIN"
            f" {_bump(_SQLITE_TOKEN, 'IN (OLD.cohort_id, NEW.cohort_id)', same_user)}; END",
            f"CREATE TRIGGER leaderboard_{table}_deleted AFTER DELETE ON {table} BEGIN"
            f" {_bump(_SQLITE_TOKEN, '= OLD.cohort_id', 'OLD.user_id')}; END",
        ]
    return statements


def _postgresql_triggers() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _USER_COLUMNS)
    return [
        f"""CREATE FUNCTION leaderboard_bump(cohort integer, who integer) RETURNS void LANGUAGE sql AS $$
            {_bump(_PG_TOKEN, "= cohort", "who")}
        $$""",
        f"""CREATE FUNCTION leaderboard_cohort_created() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO leaderboard_versions (cohort_id, token) VALUES (NEW.id, {_PG_TOKEN})
            ON CONFLICT (cohort_id) DO UPDATE SET token = EXCLUDED.token, previous = NULL, changed_users = NULL;
            RETURN NULL;
        END $$""",
        """CREATE FUNCTION leaderboard_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM leaderboard_bump(cohort_id, OLD.id) FROM enrollments WHERE user_id = OLD.id ORDER BY cohort_id;
            RETURN NULL;
        END $$""",
        """CREATE FUNCTION leaderboard_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                PERFORM leaderboard_bump(NEW.cohort_id, NEW.user_id);
            ELSIF TG_OP = 'DELETE' THEN
                PERFORM leaderboard_bump(OLD.cohort_id, OLD.user_id);
            ELSE
                PERFORM leaderboard_bump(OLD.cohort_id, CASE WHEN OLD.user_id = NEW.user_id THEN NEW.user_id END);
                IF NEW.cohort_id <> OLD.cohort_id THEN
                    PERFORM leaderboard_bump(NEW.cohort_id, CASE WHEN OLD.user_id = NEW.user_id THEN NEW.user_id END);
                END IF;
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
        sa.Column("previous", sa.String(length=36), nullable=True),
        sa.Column("changed_users", sa.Text(), nullable=True),
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
        for function in ("leaderboard_cohort_created()", "leaderboard_user_changed()", "leaderboard_row_changed()",
                         "leaderboard_bump(integer, integer)"):  # fmt: skip
            op.execute(f"DROP FUNCTION {function}")
    op.drop_table("leaderboard_versions")
