"""Score the next submission in the fair order: claim it, run the engine under a heartbeat, store
the result, queue the email.

The Celery message only wakes a worker: each upload sends one, naming its submission, but the
worker takes whichever waiting submission comes first in the fair order
(``app.services.scoring_queue``): the trainee with the fewest runs ahead of theirs, so a trainee who
uploads three times does not hold the next trainee back by three runs. One message, one claim: as
many claims as uploads, whichever order they are served in; a message that finds nothing waiting
(a duplicate, a sweep's resend) does nothing.

The claim is a conditional UPDATE (``queued`` → ``running``) of the first waiting row of the order
(``app.services.claims``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), so two
workers never take the same submission; it records the delivery's task id. A pool process lost
mid-run is settled by the worker's main process (worker/lost.py, which finds the submission by that
task id); a lost host leaves the row ``running`` with a stale heartbeat, which the sweeper puts back
in the queue (its ``queued_at`` kept: it is first again). worker/celery_app.py has both, per queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Task
from sqlalchemy import select

from app.db import write_lock
from app.models import Submission, SubmissionStatus
from app.observability.structured_logs import bound
from app.queue import SCORE_TASK, enqueue_email
from app.scoring_config import scoring_config
from app.services.scoring_queue import claim_next
from app.services.storage import path_for
from app.settings import get_settings
from scorer.errors import ErrorCode
from scorer.pipeline import score_submission, scoring_specs
from scorer.report import ScoreReport
from scorer.warm import WarmSlot
from worker.celery_app import DELIVERIES, app
from worker.db import sessions, utcnow
from worker.heartbeat import Heartbeat
from worker.results import finish_and_commit, server_failure_values, store_report
from worker.similarity import refresh_after_result
from worker.testset import ActiveTestSet, TestSetProblem, active_testset
from worker.warm import warm_next, warm_slot

log = logging.getLogger(__name__)
_config = get_settings().worker


def claim(*, task_id: str | None, hostname: str | None) -> tuple[int, int, str] | None:
    """Take the first waiting submission of the fair order: (id, attempt number, storage key), or
    None when nothing waits."""
    with write_lock(sessions()) as session:
        now = utcnow()  # under the lock: claims' start times come in the order they were made
        won = claim_next(
            session,
            {
                "status": SubmissionStatus.RUNNING,
                "attempts": Submission.attempts + 1,
                "started_at": now,
                "heartbeat_at": now,
                "finished_at": None,
                "task_id": task_id,
                "worker_hostname": hostname,
            },
        )
        if won is None:
            return None
        row = session.execute(select(Submission.attempts, Submission.storage_key).where(Submission.id == won)).one()
    return won, row.attempts, row.storage_key


def run_scoring(woken_by: int, *, task_id: str | None = None, hostname: str | None = None) -> None:
    """Score the next submission in the fair order; ``woken_by`` is the submission whose message
    woke this worker (often, not always, the one it scores)."""
    claimed = claim(task_id=task_id, hostname=hostname)
    if claimed is None:
        with sessions()() as session:
            status = session.scalar(select(Submission.status).where(Submission.id == woken_by))
        if status is None:
            log.warning("submission %s does not exist (deleted?) and nothing waits; nothing to score", woken_by)
        else:
            log.info("submission %s is %s; this delivery leaves it alone (nothing waits)", woken_by, status.value)
        return
    submission_id, attempt, storage_key = claimed
    with bound(submission_id=submission_id):  # every line of this run names the run's submission
        _run(submission_id, attempt, storage_key)


def _run(submission_id: int, attempt: int, storage_key: str) -> None:
    settings = get_settings()
    log.info("scoring submission %s (attempt %s)", submission_id, attempt)
    slot = warm_slot(settings)
    with Heartbeat(submission_id, attempt, _config.heartbeat_interval_s):
        scored = _score(submission_id, storage_key, slot)
    if isinstance(scored.outcome, ScoreReport):
        values, outbox_id = store_report(
            submission_id, scored.outcome, scored.testset, settings, utcnow(), attempt=attempt
        )
    else:
        values = scored.outcome
        outbox_id = finish_and_commit(submission_id, values, settings, utcnow(), attempt=attempt)
    log.info("submission %s finished: %s", submission_id, values["status"].value)
    if outbox_id is not None:
        enqueue_email(outbox_id)
    if values["status"] == SubmissionStatus.SUCCEEDED:
        refresh_after_result(submission_id, settings)  # after the email: instructors' view, never the trainee's
    if scored.testset is not None:  # off the trainee's clock: the result is stored and the email queued
        data_path = scored.testset.data_path
        warm_next(slot, lambda: scoring_specs(scoring_config(settings), data_path))


@dataclass(frozen=True)
class _Scored:
    """What a delivery ran: the engine's report, or the row's columns when the service failed around
    it; and the test set it used, if it got that far."""

    outcome: ScoreReport | dict[str, Any]
    testset: ActiveTestSet | None


def _score(submission_id: int, storage_key: str, slot: WarmSlot | None) -> _Scored:
    """Run the engine; failures of the service around it become server-blamed INTERNAL_ERRORs."""
    settings = get_settings()
    assert settings.storage_dir is not None  # derived by Settings
    zip_path: Path | None
    try:
        zip_path = path_for(settings.storage_dir, storage_key)
    except ValueError:  # a key escaping the store: treated as missing
        zip_path = None
    if zip_path is None or not zip_path.is_file():
        log.error("submission %s: zip missing from storage (%s)", submission_id, storage_key)
        detail = "the uploaded zip is missing from storage"
        return _Scored(server_failure_values(ErrorCode.INTERNAL_ERROR, detail, utcnow()), None)
    try:
        with sessions()() as session:
            assert settings.testset_dir is not None  # derived by Settings
            testset: ActiveTestSet = active_testset(session, settings.testset_dir)
            expected_sha = session.scalar(select(Submission.zip_sha256).where(Submission.id == submission_id))
    except TestSetProblem as exc:
        log.error("submission %s: %s", submission_id, exc)
        return _Scored(server_failure_values(ErrorCode.INTERNAL_ERROR, str(exc), utcnow()), None)
    try:
        report = score_submission(
            zip_path,
            test_data=testset.data_path,
            test_labels=testset.labels_path,
            config=scoring_config(settings),
            warm=slot,
        )
    except Exception as exc:  # the engine promises not to raise; if it does, it is our bug
        log.exception("submission %s: the scoring engine raised", submission_id)
        detail = f"{type(exc).__name__}: {exc}"
        return _Scored(server_failure_values(ErrorCode.INTERNAL_ERROR, detail, utcnow()), testset)
    if report.zip_sha256 and expected_sha and report.zip_sha256 != expected_sha:
        detail = f"stored zip's sha256 {report.zip_sha256} differs from the uploaded {expected_sha}"
        log.error("submission %s: %s", submission_id, detail)
        return _Scored(server_failure_values(ErrorCode.INTERNAL_ERROR, detail, utcnow()), testset)
    return _Scored(report, testset)


@app.task(bind=True, name=SCORE_TASK, **DELIVERIES[SCORE_TASK].options)
def score(self: Task, submission_id: int) -> None:
    run_scoring(submission_id, task_id=self.request.id, hostname=self.request.hostname)
