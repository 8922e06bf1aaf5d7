"""How far a submission has got, for the result page while it waits: its state, how long it has
been at it, and how long recent runs took.

The estimate is the median duration of the most recent finished runs (any trainee's): scoring time
depends on the model far more than on the trainee, and a median is not thrown by one runaway run.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.models import Submission, SubmissionStatus
from app.services.submissions import queue_position

RECENT_RUNS = 20
FINAL = (SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED)


def recent_run_seconds(db: Session, limit: int = RECENT_RUNS) -> float | None:
    """Median wall time of the last ``limit`` finished runs (None before the first one)."""
    rows = db.execute(
        select(Submission.started_at, Submission.finished_at, Submission.duration_s)
        .where(Submission.status.in_(FINAL), Submission.started_at.is_not(None), Submission.finished_at.is_not(None))
        .order_by(Submission.id.desc())  # the primary key: stops after ``limit`` rows, no new index
        .limit(limit)
    ).all()
    # Start to finish, not the sandbox's own duration: the page counts from when the run started.
    durations = [
        max(0.0, (finished - started).total_seconds())
        for started, finished, _ in rows
        if started is not None and finished is not None
    ]
    return statistics.median(durations) if durations else None


@dataclass(frozen=True)
class Progress:
    id: int
    status: str
    queue_position: int | None
    final: bool
    accuracy: float | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    estimate_s: float | None

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
        }


def progress(db: Session, submission: Submission) -> Progress:
    final = submission.status in FINAL
    return Progress(
        id=submission.id,
        status=submission.status.value,
        queue_position=queue_position(db, submission),
        final=final,
        accuracy=submission.accuracy,
        created_at=submission.created_at,
        started_at=submission.started_at,
        estimate_s=None if final else recent_run_seconds(db),
    )


def progress_marks(factory: sessionmaker[Session], ids: list[int]) -> dict[int, Hashable]:
    """For the long-poll watcher (``app.web.long_poll``): per submission, a mark that changes
    whenever its :attr:`Progress.fingerprint` may have. That is its status and, while it is queued,
    the make-up of the queue its position is counted in: how many submissions are queued and
    running, and the sum of their ids (a new upload has a larger id than any before it, so a
    submission leaving and another arriving still change the sum). Two queries for every watched
    submission together, the second only when one of them is queued."""
    with factory() as db:
        rows = db.execute(select(Submission.id, Submission.status).where(Submission.id.in_(ids))).all()
        statuses = {row.id: SubmissionStatus(row.status).value for row in rows}
        queue: tuple[tuple[str, int, int], ...] | None = None
        if SubmissionStatus.QUEUED.value in statuses.values():
            groups = db.execute(
                select(Submission.status, func.count(), func.coalesce(func.sum(Submission.id), 0))
                .where(Submission.status.in_((SubmissionStatus.QUEUED, SubmissionStatus.RUNNING)))
                .group_by(Submission.status)
            ).all()
            queue = tuple(sorted((SubmissionStatus(s).value, int(n), int(total)) for s, n, total in groups))
    return {
        sid: (status, queue if status == SubmissionStatus.QUEUED.value else None) for sid, status in statuses.items()
    }
