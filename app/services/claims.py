"""Claiming the next piece of work from a table, exactly once, on SQLite and PostgreSQL alike.

Both queues that run trainee code (scoring, the pre-flight) work the same way: a Celery message only
wakes a worker; the worker then decides *which* row to take by a fair order computed from the table
(``app.services.scoring_queue``, ``app.services.preflight.lifecycle``) and claims the first row of that
order that still waits, with a conditional UPDATE. The caller holds the transaction:

- **PostgreSQL**: each candidate is read ``FOR UPDATE SKIP LOCKED``, so a row another worker is
  claiming at this very moment is passed over instead of waited for, and the conditional UPDATE
  re-checks that it still waits (a claim committed meanwhile is seen under READ COMMITTED);
- **SQLite**: the caller's transaction holds the write lock from its first statement
  (``app.db.write_lock``), so no other claim runs between the read of the order and the UPDATE;
  ``FOR UPDATE`` is not SQLite syntax and SQLAlchemy leaves it out.

Either way two workers never take the same row, and a claim decided on a slightly stale order still
takes a row that waits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session


def claim_first(
    db: Session, model: Any, candidates: Iterable[int], waiting: ColumnElement[bool], values: Mapping[str, Any]
) -> int | None:
    """Set ``values`` on the first of ``candidates`` (ids, best first) for which ``waiting`` still
    holds, and return its id; None when every candidate was taken by someone else."""
    for candidate in candidates:
        held = db.execute(
            select(model.id).where(model.id == candidate, waiting).with_for_update(skip_locked=True)
        ).first()
        if held is None:
            continue
        changed = db.execute(
            update(model)
            .where(model.id == candidate, waiting)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount:  # type: ignore[attr-defined]
            return candidate
    return None
