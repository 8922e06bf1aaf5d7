"""The per-trainee summary the leaderboard reads (``trainee_scores``), kept exact on every write.

Aggregating a cohort's 200,000 submissions on each leaderboard request cost 130–180 ms; reading one
row per trainee costs a few. The row is never incremented: each refresh recomputes it from that
trainee's submissions in the cohort (about a hundred rows, through ``ix_submissions_leaderboard``),
so a refresh is idempotent, repairs any drift and gives the same answer as the migration's backfill.

When a refresh happens:

- every ORM flush that inserts, deletes or changes a submission's status, accuracy, time, trainee
  or cohort refreshes the affected (trainee, cohort) pairs once, in the same transaction
  (:func:`refresh_after_flush`, registered on every :class:`~sqlalchemy.orm.Session`): uploads,
  rescoring, deletions and tests' fixtures are covered without each remembering to call it;
- writers that use Core ``UPDATE`` statements on results call :func:`refresh` themselves (the
  worker when it stores a result). Claims, heartbeats and requeues change none of the summarised
  columns (every status counts as a submission; only ``succeeded`` gives an accuracy).

Concurrency: on PostgreSQL the summary row is created if missing and locked (``FOR UPDATE``)
before the submissions are read, so two transactions refreshing the same trainee run one after
the other and the second sees the first's committed rows (READ COMMITTED takes a new snapshot per
statement). On SQLite, a refresh runs after the transaction's own write, i.e. while it holds the
database's single write lock, so its reads are current.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, event, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, UOWTransaction, attributes

from app.models import Submission, SubmissionStatus, TraineeScore

SUMMARISED = ("status", "accuracy", "created_at", "user_id", "cohort_id")
TABLE = cast(Table, TraineeScore.__table__)


def _insert(conn: Connection) -> Any:
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(TABLE)


def summary_values(conn: Connection, user_id: int, cohort_id: int) -> dict[str, Any] | None:
    """The summary as computed from the submissions; None when the trainee has none in the cohort."""
    mine = (Submission.user_id == user_id, Submission.cohort_id == cohort_id)
    count, last_at = conn.execute(select(func.count(), func.max(Submission.created_at)).where(*mine)).one()
    if not count:
        return None
    scored = (*mine, Submission.status == SubmissionStatus.SUCCEEDED, Submission.accuracy.is_not(None))
    pick = select(Submission.id, Submission.accuracy, Submission.created_at).where(*scored).limit(1)
    # Ties on the best rank the earlier submission (it reached the score first); the latest is the
    # last created, and among runs created at the same instant the higher accuracy.
    best = conn.execute(pick.order_by(Submission.accuracy.desc(), Submission.created_at, Submission.id)).first()
    latest = conn.execute(
        pick.order_by(Submission.created_at.desc(), Submission.accuracy.desc(), Submission.id.desc())
    ).first()
    return {
        "submissions": int(count),
        "last_submission_at": last_at,
        "best_accuracy": best.accuracy if best else None,
        "best_reached_at": best.created_at if best else None,
        "best_submission_id": best.id if best else None,
        "latest_accuracy": latest.accuracy if latest else None,
        "latest_submission_id": latest.id if latest else None,
    }


def refresh(conn: Connection, user_id: int, cohort_id: int) -> None:
    """Recompute one trainee's summary in the current transaction."""
    key = {"cohort_id": cohort_id, "user_id": user_id}
    if conn.dialect.name == "postgresql":
        conn.execute(_insert(conn).values(**key, submissions=0).on_conflict_do_nothing())
        conn.execute(
            select(TABLE.c.user_id).where(TABLE.c.cohort_id == cohort_id, TABLE.c.user_id == user_id).with_for_update()
        )
    values = summary_values(conn, user_id, cohort_id)
    if values is None:
        conn.execute(delete(TABLE).where(TABLE.c.cohort_id == cohort_id, TABLE.c.user_id == user_id))
        return
    statement = _insert(conn).values(**key, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["cohort_id", "user_id"], set_=values))


def refresh_many(conn: Connection, pairs: Iterable[tuple[int, int]]) -> None:
    for user_id, cohort_id in sorted(set(pairs)):  # a fixed order: two refreshers never deadlock
        refresh(conn, user_id, cohort_id)


def rebuild_cohort(conn: Connection, cohort_id: int) -> None:
    """Recompute every summary of a cohort (the bench's bulk-seeded data; a manual repair)."""
    users = conn.scalars(select(Submission.user_id).where(Submission.cohort_id == cohort_id).distinct()).all()
    conn.execute(delete(TABLE).where(TABLE.c.cohort_id == cohort_id))
    refresh_many(conn, ((user_id, cohort_id) for user_id in users))


def _pairs(submission: Submission, *, changed_only: bool) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    state = attributes.instance_state(submission)
    if changed_only:
        histories = [attributes.get_state_history(state, name) for name in SUMMARISED]
        if not any(h.has_changes() for h in histories):
            return pairs
        # A submission moved to another trainee or cohort leaves the old pair to refresh as well.
        old_user = attributes.get_state_history(state, "user_id").deleted or [submission.user_id]
        old_cohort = attributes.get_state_history(state, "cohort_id").deleted or [submission.cohort_id]
        pairs.add((old_user[0], old_cohort[0]))
    if submission.user_id is not None and submission.cohort_id is not None:
        pairs.add((submission.user_id, submission.cohort_id))
    return pairs


@event.listens_for(Session, "after_flush")
def refresh_after_flush(session: Session, _flush: UOWTransaction) -> None:
    """Refresh the summaries of the submissions this flush wrote (``new``/``dirty``/``deleted``
    still hold the flush's objects at this point)."""
    pairs: set[tuple[int, int]] = set()
    for obj in session.new:
        if isinstance(obj, Submission):
            pairs |= _pairs(obj, changed_only=False)
    for obj in session.deleted:
        if isinstance(obj, Submission):
            pairs |= _pairs(obj, changed_only=False)
    for obj in session.dirty:
        if isinstance(obj, Submission):
            pairs |= _pairs(obj, changed_only=True)
    if pairs:
        refresh_many(session.connection(), pairs)
