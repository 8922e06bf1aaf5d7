"""Recording how a submission ended, exactly once, together with the promise to email about it.

Every final write is a conditional UPDATE fenced by status ``running`` and the attempt number the
writer claimed: if the sweeper meanwhile handed the submission to another attempt (it thought this
worker dead), the late writer changes nothing. The outbox row is added in the same transaction, so
a stored result always has its email coming, and an unstored one never does.

A run's outcome that cannot be recorded is still the submission's (:func:`store_report`): the
scorer hands over only storable text (scorer/disclosure.py), so a result the database refuses
anyway ends as RESULT_NOT_STORED, the slot spent, rather than staying ``running`` to be run again
and finally given back as the server's fault — a free run on the hidden set.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import Update, update
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from app.models import Submission, SubmissionStatus
from app.services import trainee_scores
from app.settings import Settings
from scorer.disclosure import cap_params, cap_visible
from scorer.errors import Blame, ErrorCode, ScoringError
from scorer.report import ScoreReport
from worker.db import sessions
from worker.mail.outbox import add_result_email
from worker.testset import ActiveTestSet

log = logging.getLogger(__name__)
SERVER_DETAIL_BYTES = 4096  # the service's own diagnosis of a fault (for admins), not trainee output


def report_values(
    report: ScoreReport, testset: ActiveTestSet | None, now: dt.datetime, settings: Settings | None = None
) -> dict[str, Any]:
    """The row's columns for a finished scoring run.

    The report arrives with its output already bounded (scorer/disclosure.py); the bounds are
    applied again here, at the storage boundary, so no path into the database can store more. A
    run the server is blamed for stores no trainee output at all.
    """
    error = report.error
    server_fault = error is not None and error.code.blame == Blame.SERVER
    excerpt_bytes = settings.hidden_run_excerpt_bytes if settings else 2048
    stored_bytes = settings.hidden_run_stored_log_bytes if settings else 64 * 1024
    visible_log = "" if server_fault else cap_visible(report.log, excerpt_bytes)
    staff_log = "" if server_fault else cap_visible(report.staff_log, stored_bytes)
    result = report.to_json()
    result["log"] = visible_log
    result["staff_log"] = staff_log
    if error is not None:  # rebuilt, so the rendered messages carry only the bounded parameters
        params = {} if server_fault else cap_params(error.params)
        detail = cap_visible(error.detail, SERVER_DETAIL_BYTES if server_fault else excerpt_bytes)
        result["error"] = ScoringError(error.code, params, detail).to_json()
    if testset is not None:
        result["testset"] = {"id": testset.id, "version": testset.version, "sha256": testset.sha256}
    values: dict[str, Any] = {
        "status": SubmissionStatus.SUCCEEDED if report.status == "succeeded" else SubmissionStatus.FAILED,
        "finished_at": now,
        "error_code": error.code.value if error else None,
        "error_blame": error.code.blame.value if error else None,
        "accuracy": report.accuracy,
        "correct": report.correct,
        "total": report.total,
        "macro_accuracy": report.macro_accuracy,
        "loss": report.loss,
        "per_class": report.per_class,
        "confusion": report.confusion,
        "log": visible_log,
        "duration_s": report.duration_s,
        "peak_memory_mb": report.peak_memory_mb,
        "testset_id": testset.id if testset else None,
        "runtime": report.runtime,
        "limits": report.limits,
        "notices": [n.to_json() for n in report.notices],
        "result": result,
        "predictions": report.prediction_bytes,  # kept for instructors; not in ``result``, which trainees see
        "file_hashes": [h.to_json() for h in report.file_hashes] or None,
    }
    if server_fault:
        values["counts_toward_limit"] = False  # not the trainee's fault: the slot is given back
    return values


def submission_failure_values(code: ErrorCode, now: dt.datetime) -> dict[str, Any]:
    """The row's columns when a run's outcome, the submission's, could not be recorded as it was:
    its failure ``code``, in our words only (none of the trainee's output), the slot spent."""
    assert code.blame == Blame.SUBMISSION
    error = ScoringError(code)
    return {
        "status": SubmissionStatus.FAILED,
        "finished_at": now,
        "error_code": code.value,
        "error_blame": code.blame.value,
        "log": None,
        "result": {"status": "failed", "error": error.to_json()},
    }


def server_failure_values(code: ErrorCode, detail: str, now: dt.datetime) -> dict[str, Any]:
    """The row's columns when the service itself failed before or around the scoring run.

    No log: a run whose upload is given back shows and stores none of the trainee's output.
    """
    assert code.blame == Blame.SERVER
    error = ScoringError(code, detail=detail)
    return {
        "status": SubmissionStatus.FAILED,
        "finished_at": now,
        "error_code": code.value,
        "error_blame": code.blame.value,
        "counts_toward_limit": False,
        "log": None,
        "result": {"status": "failed", "error": error.to_json()},
    }


def finish(
    session: Session,
    submission_id: int,
    values: dict[str, Any],
    settings: Settings,
    now: dt.datetime,
    *,
    attempt: int,
    extra_conditions: tuple[Any, ...] = (),
) -> int | None:
    """Store ``values`` if the row is still ``running`` under ``attempt``; returns the new outbox id.

    None means nothing was stored (another attempt owns the row) or the email was already promised.
    The caller commits, then enqueues the email.
    """
    changed = session.execute(
        _still_running(submission_id, attempt, *extra_conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        log.info("submission %s attempt %s no longer ours; result not stored", submission_id, attempt)
        return None
    submission = session.get(Submission, submission_id, populate_existing=True)
    assert submission is not None
    # A Core UPDATE bypasses the flush listener: the leaderboard's summary is refreshed here, in the
    # same transaction as the result, so the two can never disagree.
    trainee_scores.refresh(session.connection(), submission.user_id, submission.cohort_id)
    outbox = add_result_email(session, submission, settings, now)
    return outbox.id if outbox else None


def _still_running(submission_id: int, attempt: int, *conditions: Any) -> Update:
    """An update of the submission only while it is ``running`` under ``attempt`` (and ``conditions``
    hold): what makes storing a result or putting it back exactly-once between attempts."""
    return update(Submission).where(
        Submission.id == submission_id,
        Submission.status == SubmissionStatus.RUNNING,
        Submission.attempts == attempt,
        *conditions,
    )


def requeue(session: Session, submission_id: int, attempt: int, *conditions: Any) -> bool:
    """Put a ``running`` submission back to ``queued`` if ``attempt`` (and ``conditions``) still hold;
    True when this call did. The caller commits, then sends it for scoring."""
    changed = session.execute(
        _still_running(submission_id, attempt, *conditions)
        .values(status=SubmissionStatus.QUEUED, heartbeat_at=None, worker_hostname=None)
        .execution_options(synchronize_session=False)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def finish_and_commit(
    submission_id: int,
    values: dict[str, Any],
    settings: Settings,
    now: dt.datetime,
    *,
    attempt: int,
    factory: sessionmaker[Session] | None = None,
) -> int | None:
    with (factory or sessions())() as session, session.begin():
        return finish(session, submission_id, values, settings, now, attempt=attempt)


def refused_for_content(exc: BaseException) -> bool:
    """Whether storing failed because of what was stored (a value no column takes, values that
    cannot be built) rather than because the database could not be reached or was busy.

    A driver error is the database's own verdict: DataError for a value the column refuses
    (PostgreSQL's NUL in text), any other (connection lost, lock timeout) an outage. An error raised
    while binding the values (SQLite's driver encoding a lone surrogate) or building them is about
    the content.
    """
    if isinstance(exc, DataError):
        return True
    if isinstance(exc, DBAPIError):
        return False
    return isinstance(exc, StatementError | ValueError | TypeError)


def store_report(
    submission_id: int,
    report: ScoreReport,
    testset: ActiveTestSet | None,
    settings: Settings,
    now: dt.datetime,
    *,
    attempt: int,
    factory: sessionmaker[Session] | None = None,
) -> tuple[dict[str, Any], int | None]:
    """Store a scoring run's report (the columns stored, and the new outbox id, as ``finish``).

    When the report is the submission's outcome (scored, or failed by its own fault) and turning it
    into columns or storing them fails because of what it holds, its failure RESULT_NOT_STORED is
    stored instead, the slot spent. Anything else (an outage, a report blamed on the server, which
    holds none of the trainee's output) raises: the row stays ``running`` and the sweeper re-runs it.
    """
    try:
        values = report_values(report, testset, now, settings)
        return values, finish_and_commit(submission_id, values, settings, now, attempt=attempt, factory=factory)
    except Exception as exc:
        server_fault = report.error is not None and report.error.code.blame == Blame.SERVER
        if server_fault or not refused_for_content(exc):
            raise
        log.exception("submission %s: the run's result could not be stored; stored as its failure", submission_id)
        values = submission_failure_values(ErrorCode.RESULT_NOT_STORED, now)
        if testset is not None:
            values["testset_id"] = testset.id
        return values, finish_and_commit(submission_id, values, settings, now, attempt=attempt, factory=factory)
