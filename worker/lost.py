"""A task whose pool process was lost mid-run, settled by the worker's main process.

When a pool process dies in the middle of a task — killed by the kernel's OOM killer or a signal, or
by Celery's hard time limit — the worker's main process sees it (``task_failure`` with
``WorkerLostError`` or ``TimeLimitExceeded``) and lives on: its host is fine, and what was running in
that process is the one thing known to have been running when it died. That is a fact the parent
observes itself, so the main process settles the task's row here instead of leaving it to be
delivered again (the queues' options are in worker/celery_app.py):

- **scoring**: the attempt is run again (the submission queued anew) while attempts remain
  (``KATAKANA_WORKER_MAX_ATTEMPTS``); when its last attempt is lost the same way, it fails as the
  submission's (WORKER_PROCESS_LOST), its slot spent. A submission that kills its worker process on
  every attempt thus never gets its upload back, and runs at most that many times.
- **pre-flight**: the pre-flight is refused as the submission's (WORKER_PROCESS_LOST), nothing spent; not
  retried, and not cached either (a process can also die of the host's own memory pressure, and an
  honest zip must not stay refused for it).

A lost *host* leaves no main process to see anything: the sweeper handles those (its last-attempt
rule, worker/tasks/sweeper.py). The main process forks the pool's processes, so it talks to the
database through a short-lived engine whose connections are closed before anything can be forked.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery.exceptions import TimeLimitExceeded, WorkerLostError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.db import make_engine, make_sessionmaker
from app.models import Preflight, PreflightState, Submission, SubmissionStatus
from app.observability.structured_logs import bound
from app.queue import PREFLIGHT_TASK, SCORE_TASK, enqueue_email, enqueue_scoring
from app.services.preflight import lifecycle
from app.services.preflight.verdict import PreflightVerdict
from app.settings import Settings, get_settings
from scorer.errors import ErrorCode, ScoringError
from scorer.report import CheckReport, RunFacts
from worker.db import utcnow
from worker.results import finish, requeue, submission_failure_values

log = logging.getLogger(__name__)


def on_task_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: list[Any] | tuple[Any, ...] | None = None,
    **_: Any,
) -> None:
    """Celery's ``task_failure``: acts only on a lost pool process, and never fails the main process."""
    if not isinstance(exception, WorkerLostError | TimeLimitExceeded) or not args or task_id is None:
        return
    name = getattr(sender, "name", "")
    if name not in (SCORE_TASK, PREFLIGHT_TASK):
        return
    settings = get_settings()
    engine = make_engine(settings.database_url, poolclass=NullPool)
    try:
        factory = make_sessionmaker(engine)
        # The message only woke the process (its argument names the row that sent it): the row the
        # process was running is the one its delivery claimed, found by the task's id.
        if name == SCORE_TASK:
            submission_id = claimed_submission(factory, task_id)
            if submission_id is not None:
                with bound(submission_id=submission_id):
                    scoring_process_lost(factory, submission_id, task_id, settings, utcnow(), reason=str(exception))
        else:
            preflight_id = claimed_preflight(factory, task_id)
            if preflight_id is not None:
                with bound(preflight_id=preflight_id):
                    preflight_process_lost(factory, preflight_id, settings, utcnow(), reason=str(exception))
    except Exception:  # the row stays as it is: the sweeper, or the pre-flight's own deadline, ends it
        log.exception("could not settle %s[%s] after its worker process was lost", name, task_id)
    finally:
        engine.dispose()


def claimed_submission(factory: sessionmaker[Session], task_id: str) -> int | None:
    """The submission this delivery claimed and is still running; None if it claimed none."""
    with factory() as session:
        return session.scalar(
            select(Submission.id).where(Submission.task_id == task_id, Submission.status == SubmissionStatus.RUNNING)
        )


def claimed_preflight(factory: sessionmaker[Session], task_id: str) -> int | None:
    """The pre-flight this delivery claimed and has not settled; None if it claimed none."""
    with factory() as session:
        return session.scalar(
            select(Preflight.id).where(Preflight.task_id == task_id, Preflight.state == PreflightState.CHECKING)
        )


def scoring_process_lost(
    factory: sessionmaker[Session],
    submission_id: int,
    task_id: str,
    settings: Settings,
    now: dt.datetime,
    *,
    reason: str,
) -> SubmissionStatus | None:
    """Run the lost attempt again, or fail its submission on the last one; the row's new status, or
    None when the row is no longer this task's (finished, or taken over by another attempt)."""
    ours = Submission.task_id == task_id
    outbox_id: int | None = None
    with factory() as session, session.begin():
        attempt = session.scalar(
            select(Submission.attempts).where(
                Submission.id == submission_id, Submission.status == SubmissionStatus.RUNNING, ours
            )
        )
        if attempt is None:
            return None
        if attempt < settings.worker.max_attempts:
            if not requeue(session, submission_id, attempt, ours):
                return None
            status = SubmissionStatus.QUEUED
        else:
            values = submission_failure_values(ErrorCode.WORKER_PROCESS_LOST, now)
            outbox_id = finish(session, submission_id, values, settings, now, attempt=attempt, extra_conditions=(ours,))
            status = SubmissionStatus.FAILED
    if status is SubmissionStatus.QUEUED:
        log.warning("submission %s: its worker process was lost during attempt %s (%s); queued again",
                    submission_id, attempt, reason)  # fmt: skip
        enqueue_scoring(submission_id, settings)
    else:
        log.warning("submission %s failed: its worker process was lost on each of %s attempts (%s)",
                    submission_id, attempt, reason)  # fmt: skip
        if outbox_id is not None:
            enqueue_email(outbox_id, settings)
    return status


def preflight_process_lost(
    factory: sessionmaker[Session], preflight_id: int, settings: Settings, now: dt.datetime, *, reason: str
) -> None:
    """Refuse the pre-flight as the submission's (a pre-flight already settled is left as it is)."""
    error = ScoringError(ErrorCode.WORKER_PROCESS_LOST)
    verdict = PreflightVerdict.from_json(CheckReport(ok=False, stage="static", error=error, facts=RunFacts()).to_json())
    log.warning("pre-flight %s: its worker process was lost (%s); refused unless already settled", preflight_id, reason)
    lifecycle.settle(factory, preflight_id, verdict, near_chance_below=settings.preflight_near_chance_below, now=now)
