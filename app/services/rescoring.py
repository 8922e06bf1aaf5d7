"""Rescoring: put finished submissions back in the queue, keeping the result they had.

Used after a new test-set version or a scorer fix. The row's result columns are copied into a
``SubmissionRescore`` row and cleared, the status goes back to ``queued``, and the caller enqueues
the ids after committing. ``quota_day`` and ``counts_toward_limit`` are not touched, so nobody's
daily count changes; the worker's result email is keyed by submission, so none is sent twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Submission, SubmissionRescore, SubmissionStatus, TestSet, utcnow

FINISHED = (SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED)
# Everything the worker writes about a run (claim, heartbeat, result); cleared for the new run.
RESULT_COLUMNS = (
    "error_code", "error_blame", "accuracy", "correct", "total", "macro_accuracy", "loss", "per_class",
    "confusion", "log", "duration_s", "peak_memory_mb", "testset_id", "runtime", "limits", "notices", "result",
    "task_id", "started_at", "finished_at", "heartbeat_at", "worker_hostname",
)  # fmt: skip


class RescoreRefused(Exception):
    """The submission is still queued or running: it will be scored with the active set anyway."""


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def reset_for_rescore(
    db: Session,
    submission: Submission,
    *,
    requested_by_id: int | None,
    now: dt.datetime | None = None,
    flush: bool = True,
) -> SubmissionRescore:
    if submission.status not in FINISHED:
        raise RescoreRefused(submission.status.value)
    history = SubmissionRescore(
        submission_id=submission.id,
        requested_at=now or utcnow(),
        requested_by_id=requested_by_id,
        previous_status=submission.status.value,
        previous_accuracy=submission.accuracy,
        previous_testset_id=submission.testset_id,
        previous={"status": submission.status.value, "attempts": submission.attempts}
        | {name: _jsonable(getattr(submission, name)) for name in RESULT_COLUMNS},
    )
    db.add(history)
    for name in RESULT_COLUMNS:
        setattr(submission, name, None)
    submission.status = SubmissionStatus.QUEUED
    submission.queued_at = now or utcnow()  # it waits from now, in the fair order too
    submission.attempts = 0  # the worker's retry budget starts again for the new run
    if flush:
        db.flush()
    return history


def rescore_cohort(
    db: Session, cohort_id: int, *, requested_by_id: int | None, now: dt.datetime | None = None
) -> list[int]:
    """Reset every finished submission of the cohort; returns their ids (to enqueue after commit)."""
    query = select(Submission).where(Submission.cohort_id == cohort_id, Submission.status.in_(FINISHED))
    if db.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    ids = []
    for submission in db.scalars(query.order_by(Submission.id)).all():
        reset_for_rescore(db, submission, requested_by_id=requested_by_id, now=now, flush=False)
        ids.append(submission.id)
    # One flush for the whole cohort: each trainee's leaderboard summary is recomputed once, not
    # once per submission.
    db.flush()
    return ids


@dataclass(frozen=True)
class EarlierResult:
    """What a submission showed before one of its rescorings, for its result page."""

    rescored_at: dt.datetime
    status: str
    accuracy: float | None
    error_code: str | None
    testset_version: str | None


def earlier_results(db: Session, submission_id: int) -> list[EarlierResult]:
    """The results a submission had before each rescoring, newest first."""
    rows = db.execute(
        select(SubmissionRescore, TestSet.version)
        .outerjoin(TestSet, TestSet.id == SubmissionRescore.previous_testset_id)
        .where(SubmissionRescore.submission_id == submission_id)
        .order_by(SubmissionRescore.requested_at.desc(), SubmissionRescore.id.desc())
    ).all()
    return [
        EarlierResult(
            rescored_at=rescore.requested_at,
            status=rescore.previous_status,
            accuracy=rescore.previous_accuracy,
            error_code=(rescore.previous or {}).get("error_code"),
            testset_version=version,
        )
        for rescore, version in rows
    ]
