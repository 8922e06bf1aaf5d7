"""preflight names: the pre-flight's tables named after the stage

The stage has one name, *pre-flight*: ``upload_checks`` (one upload's pre-flight, followed live)
becomes ``preflights``, and ``preflight_checks`` (the verdicts cached by zip) becomes
``preflight_verdict_cache``. Renamed in place: every row stays.

Index names say their table, so they follow it (SQLite has no ``ALTER INDEX … RENAME``: dropped
and created again, in batch mode as the other migrations). On PostgreSQL the primary and foreign
keys and the id sequence are renamed too, so their names match what the models' naming convention
gives the next migration; on SQLite constraint names live only inside the table's DDL, which no
later migration names, and rewriting them would rebuild the table, so they keep their old names.

Revision ID: preflight_names
Revises: fair_queues
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "preflight_names"
down_revision: str | None = "fair_queues"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (("upload_checks", "preflights"), ("preflight_checks", "preflight_verdict_cache"))
# (columns, old suffix, new suffix): ix_<table>_<suffix>
INDEXES = ((["user_id", "created_at"], "user_created"), (["state", "updated_at"], "state_updated"))
FOREIGN_KEYS = ("cohort_id_cohorts", "submission_id_submissions", "user_id_users")


def _rename(old_checks: str, new_checks: str, old_cache: str, new_cache: str) -> None:
    op.rename_table(old_checks, new_checks)
    op.rename_table(old_cache, new_cache)
    with op.batch_alter_table(new_checks) as batch:
        for columns, suffix in INDEXES:
            batch.drop_index(f"ix_{old_checks}_{suffix}")
            batch.create_index(f"ix_{new_checks}_{suffix}", columns)
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, old, new in ((new_checks, old_checks, new_checks), (new_cache, old_cache, new_cache)):
        op.execute(f'ALTER TABLE {table} RENAME CONSTRAINT "pk_{old}" TO "pk_{new}"')
    for fk in FOREIGN_KEYS:
        op.execute(f'ALTER TABLE {new_checks} RENAME CONSTRAINT "fk_{old_checks}_{fk}" TO "fk_{new_checks}_{fk}"')
    op.execute(f'ALTER SEQUENCE "{old_checks}_id_seq" RENAME TO "{new_checks}_id_seq"')


def upgrade() -> None:
    _rename("upload_checks", "preflights", "preflight_checks", "preflight_verdict_cache")


def downgrade() -> None:
    _rename("preflights", "upload_checks", "preflight_verdict_cache", "preflight_checks")
