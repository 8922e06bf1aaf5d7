"""How far a submission has got, for the result page and its live feed while it waits: its state,
its place in the fair order, how long it has been at it, and how long it will likely wait.

The figures come from :mod:`app.services.scoring_queue`: the place is the submission's in the order
the workers claim, the typical run is the median of recent runs, and the wait lays the runs ahead
on the live scoring workers (runs ahead × typical run ÷ workers, in a steady queue).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import Submission, SubmissionStatus
from app.services.scoring_queue import (
    QueueSnapshot,
    QueueWatch,
    RunTimes,
    queue_state,
    read_snapshot,
    runtime_name,
    typical_run_seconds,
)

FINAL = (SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED)


@dataclass(frozen=True)
class Progress:
    id: int
    status: str
    queue_position: int | None
    final: bool
    accuracy: float | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    estimate_s: float | None  # what a run takes these days (the median of recent runs)
    runs_ahead: int | None = None  # runs before this one: waiting ahead of it in the fair order, and running
    wait_s: float | None = None  # seconds until its result is expected, from when it was read
    scoring_workers: int | None = None  # live scoring workers' slots (None: Redis could not say)

    @property
    def fingerprint(self) -> str:
        """What the page shows that can change: a waiting client compares it with what it shows."""
        return f"{self.status}:{self.queue_position or ''}"

    def to_json(self, now: dt.datetime) -> dict[str, Any]:
        since = self.started_at if self.status == SubmissionStatus.RUNNING.value else self.created_at
        return {
            "id": self.id,
            "status": self.status,
            "queue_position": self.queue_position,
            "final": self.final,
            "accuracy": self.accuracy,
            "fingerprint": self.fingerprint,
            # Seconds, measured on the server's clock, so a client with a wrong clock still counts right.
            "elapsed_s": None if self.final or since is None else max(0.0, (now - since).total_seconds()),
            "estimate_s": self.estimate_s,
            "runs_ahead": self.runs_ahead,
            "wait_s": self.wait_s,
            "scoring_workers": self.scoring_workers,
        }


def progress(
    db: Session,
    submission: Submission,
    queue: QueueWatch | None = None,
    now: dt.datetime | None = None,
    *,
    refreshed: bool = False,
) -> Progress:
    """Where ``submission`` stands. ``queue`` is the process's :class:`QueueWatch` (without one, the
    queue is read afresh and the live workers are not known)."""
    final = submission.status in FINAL
    base = Progress(
        id=submission.id,
        status=submission.status.value,
        queue_position=None,
        final=final,
        accuracy=submission.accuracy,
        created_at=submission.created_at,
        started_at=submission.started_at,
        estimate_s=None,
    )
    if final:
        return base
    times = typical_run_seconds(db)
    run_s = times.of(runtime_name(submission.runtime))
    slots = queue.slots() if queue is not None else None
    if submission.status != SubmissionStatus.QUEUED:
        return replace(base, estimate_s=run_s, scoring_workers=slots)
    snapshot: QueueSnapshot = queue.snapshot(db, fresh=refreshed) if queue is not None else read_snapshot(db)
    if snapshot.position(submission.id) is None and not refreshed:
        # Claimed (or scored) between reading the row and reading the queue, or queued after the
        # watcher last saw the queue: read the row, and the queue, again.
        db.refresh(submission)
        return progress(db, submission, queue, now, refreshed=True)
    return replace(
        base,
        queue_position=snapshot.position(submission.id),
        estimate_s=run_s,
        runs_ahead=snapshot.runs_ahead(submission.id),
        wait_s=expected_wait(snapshot, submission.id, times, slots, now or dt.datetime.now(dt.UTC)),
        scoring_workers=slots,
    )


def expected_wait(
    snapshot: QueueSnapshot, submission_id: int, times: RunTimes, slots: int | None, now: dt.datetime
) -> float | None:
    """Seconds until a waiting submission's result: until its run starts, plus a typical run of its
    runtime; whole seconds, rounded up. None before any run has finished, or with no live scoring
    worker (nobody would score it; it waits, safe, until one is back). Workers not known (Redis
    unreadable): one assumed."""
    place = snapshot.position(submission_id)
    if place is None or slots == 0:
        return None
    start = snapshot.starts_in(times, slots or 1, now).get(submission_id)
    run_s = times.of(snapshot.order[place - 1].runtime)
    return None if start is None or run_s is None else float(math.ceil(start + run_s))


def progress_marks(
    factory: sessionmaker[Session], ids: list[int], queue: QueueWatch | None = None
) -> dict[int, Hashable]:
    """For the long-poll watcher (``app.web.long_poll``): per submission, a mark that changes
    whenever its :attr:`Progress.fingerprint` may have. That is its status and, while it is queued,
    the make-up of the queue (:func:`~app.services.scoring_queue.queue_state`), which moves with
    every upload, claim, result and rescoring, and so with everything the fair order is computed
    from. Two queries for every watched submission together, the second only when one of them is
    queued.

    The make-up read here is handed to ``queue`` (the process's :class:`QueueWatch`): the waiting
    pages this read wakes are given their place and wait from the order computed for it, once in
    this process, instead of each reading the queue again."""
    with factory() as db:
        rows = db.execute(select(Submission.id, Submission.status).where(Submission.id.in_(ids))).all()
        statuses = {row.id: SubmissionStatus(row.status).value for row in rows}
        made_up: tuple[tuple[str, int, int], ...] | None = None
        if SubmissionStatus.QUEUED.value in statuses.values():
            made_up = queue_state(db)
            if queue is not None:
                queue.saw(db, made_up)
    return {
        sid: (status, made_up if status == SubmissionStatus.QUEUED.value else None) for sid, status in statuses.items()
    }
