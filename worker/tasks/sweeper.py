"""The periodic sweep (celery beat) that guarantees nothing stays stuck.

- ``queued`` rows older than ``requeue_after_s``: the broker may have lost their message (Redis
  restarted without its data, the site could not reach it after committing). A message only wakes a
  worker, so as many are sent again as such rows outnumber the scoring messages waiting in Redis — a
  message that was not lost just makes a harmless extra wake-up.
- ``running`` rows whose heartbeat is older than ``stale_after_s``: the host running them was lost
  (a machine, container or worker main process gone; a pool process lost while its main process
  lives is settled at once by that main process, worker/lost.py, and never reaches the sweeper).
  Queue them again while attempts remain. The last-attempt rule: when the host is lost on a
  submission's ``max_attempts``-th attempt, it fails as INTERNAL_ERROR with the slot given back —
  a lost host is a fault the service proves its own — and it does not loop; a run that keeps
  killing its *worker process* is failed by the main process instead, as the submission's
  (WORKER_PROCESS_LOST, the slot spent).
- Housekeeping: expired sessions and login attempts that no longer count are deleted, and so are
  interrupted upload parts and stored zips no submission names (see ``storage.purge_stale_uploads``).
- Near-chance pre-flights nobody confirmed within ``preflight_confirm_ttl_h`` end as
  ``expired`` and their zips are deleted (nothing was spent for them, so nothing is given back).
- Outbox rows ``pending`` for a while (never tried because the message was lost, or a chain of
  retries exhausted) are sent again; rows stuck in ``sending`` (worker died mid-send) go back to
  ``pending``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, or_, select, update

from app.models import EmailOutbox, EmailStatus, Submission, SubmissionStatus
from app.observability.metrics import queue_length
from app.observability.redis_client import redis_for
from app.observability.structured_logs import bound
from app.queue import SCORING_QUEUE, SWEEP_TASK, broker_url, enqueue_email, enqueue_scoring
from app.security.sessions import purge_expired_sessions
from app.security.throttle import purge_old_attempts
from app.services.preflight import lifecycle
from app.services.preflight.gate import purge_old_runs
from app.services.storage import purge_stale_uploads
from app.settings import WorkerSettings, get_settings
from scorer.errors import ErrorCode
from worker.celery_app import DELIVERIES, app
from worker.db import sessions, utcnow
from worker.results import finish, requeue, server_failure_values

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    resent: list[int] = field(default_factory=list)  # queued submissions sent again
    requeued: list[int] = field(default_factory=list)  # stale running submissions queued again
    failed: list[int] = field(default_factory=list)  # stale running submissions given up on
    emails: list[int] = field(default_factory=list)  # outbox rows sent again
    expired_preflights: list[int] = field(default_factory=list)  # near-chance pre-flights nobody confirmed in time
    purged: dict[str, int] = field(default_factory=dict)  # housekeeping: what was deleted, by kind


_last_store_purge = [float("-inf")]  # monotonic time of this process's last walk of the store


def _housekeeping(now: dt.datetime, config: WorkerSettings, report: SweepReport) -> None:
    settings = get_settings()
    with sessions()() as session, session.begin():
        report.purged["sessions"] = purge_expired_sessions(session, now)
        report.purged["login_attempts"] = purge_old_attempts(session, settings, now)
        report.purged["preflight_runs"] = purge_old_runs(session, now)
    if time.monotonic() - _last_store_purge[0] < config.store_purge_interval_s:
        return
    _last_store_purge[0] = time.monotonic()

    assert settings.storage_dir is not None
    report.purged["uploads"] = purge_stale_uploads(
        settings.storage_dir,
        referenced=lambda keys: lifecycle.referenced_keys(sessions(), keys),
        incoming_ttl_s=config.incoming_ttl_s,
        orphan_ttl_s=settings.refused_upload_retention_s,  # refused zips: kept a day for support
        now=now.timestamp(),
    )


def _resend_lost_queued(now: dt.datetime, config: WorkerSettings, report: SweepReport) -> None:
    cutoff = now - dt.timedelta(seconds=config.requeue_after_s)
    with sessions()() as session:
        ids = session.scalars(
            select(Submission.id)
            .where(Submission.status == SubmissionStatus.QUEUED, Submission.created_at <= cutoff)
            .order_by(Submission.id)
        ).all()
    # A message only wakes a worker, which claims the fair order's first row: the queue needs as many
    # messages as rows waiting, not each row's own. During a long rush every old row would otherwise
    # get another message each sweep, for workers to wade through once the queue is empty.
    ids = ids[: max(0, len(ids) - _wake_ups_waiting())]
    for submission_id in ids:
        with bound(submission_id=submission_id):
            if enqueue_scoring(submission_id):
                report.resent.append(submission_id)


def _wake_ups_waiting() -> int:
    """Scoring messages waiting in Redis (0 when Redis cannot say: then every old row is sent again)."""
    client = redis_for(broker_url(get_settings()))
    try:
        return queue_length(client, SCORING_QUEUE)
    except (RedisError, OSError):
        return 0
    finally:
        client.close()


def _reclaim_stale_running(now: dt.datetime, config: WorkerSettings, report: SweepReport) -> None:
    cutoff = now - dt.timedelta(seconds=config.stale_after_s)
    stale = (
        Submission.status == SubmissionStatus.RUNNING,
        or_(
            Submission.heartbeat_at < cutoff,
            Submission.heartbeat_at.is_(None) & (Submission.started_at < cutoff),
        ),
    )
    with sessions()() as session:
        rows = session.execute(select(Submission.id, Submission.attempts).where(*stale)).all()
    for submission_id, attempts in rows:
        with bound(submission_id=submission_id):
            _reclaim_one(submission_id, attempts, stale, now, config, report)


def _reclaim_one(
    submission_id: int,
    attempts: int,
    stale: tuple[ColumnElement[bool], ...],
    now: dt.datetime,
    config: WorkerSettings,
    report: SweepReport,
) -> None:
    if attempts >= config.max_attempts:  # the last-attempt rule (module docstring): the host's fault
        detail = f"the host scoring this submission was lost ({attempts} attempts)"
        values = server_failure_values(ErrorCode.INTERNAL_ERROR, detail, now)
        with sessions()() as session, session.begin():
            outbox_id = finish(
                session, submission_id, values, get_settings(), now, attempt=attempts, extra_conditions=stale
            )
        log.error("submission %s failed after %s attempts: worker host lost", submission_id, attempts)
        report.failed.append(submission_id)
        if outbox_id is not None:
            enqueue_email(outbox_id)
        return
    with sessions()() as session, session.begin():
        won = requeue(session, submission_id, attempts, *stale)
    if won:
        log.warning("submission %s: worker lost during attempt %s; queued again", submission_id, attempts)
        report.requeued.append(submission_id)
        enqueue_scoring(submission_id)


def _resend_emails(now: dt.datetime, config: WorkerSettings, report: SweepReport) -> None:
    pending_cutoff = now - dt.timedelta(seconds=config.email_pending_after_s)
    # A claim older than a few SMTP timeouts belongs to a worker that died mid-send.
    sending_cutoff = now - dt.timedelta(seconds=config.smtp_timeout_s * 4)
    with sessions()() as session, session.begin():
        session.execute(
            update(EmailOutbox)
            .where(EmailOutbox.status == EmailStatus.SENDING, EmailOutbox.sent_at < sending_cutoff)
            .values(status=EmailStatus.PENDING, sent_at=None, last_error="worker lost while sending")
            .execution_options(synchronize_session=False)
        )
        # Each email task makes up to email_max_retries + 1 attempts; while such a chain of
        # retries is alive, ``attempts`` is not a multiple of that, and the row is left to it.
        # Starting a second chain would not send twice (the claim sees to that), but during a long
        # SMTP outage every sweep would add one.
        chain = config.email_max_retries + 1
        ids = session.scalars(
            select(EmailOutbox.id)
            .where(
                EmailOutbox.status == EmailStatus.PENDING,
                EmailOutbox.created_at <= pending_cutoff,
                EmailOutbox.attempts % chain == 0,
            )
            .order_by(EmailOutbox.id)
        ).all()
    for outbox_id in ids:
        if enqueue_email(outbox_id):
            report.emails.append(outbox_id)


def run_sweep(now: dt.datetime | None = None, config: WorkerSettings | None = None) -> SweepReport:
    now = now or utcnow()
    config = config or get_settings().worker
    report = SweepReport()
    _resend_lost_queued(now, config, report)  # first, so rows reclaimed below are not sent twice
    _reclaim_stale_running(now, config, report)
    _resend_emails(now, config, report)
    report.expired_preflights = lifecycle.expire_unconfirmed(sessions(), get_settings(), now)
    _housekeeping(now, config, report)
    busy = report.resent or report.requeued or report.failed or report.emails or report.expired_preflights
    if busy or any(report.purged.values()):
        log.info("sweep: %s", report)
    return report


@app.task(name=SWEEP_TASK, **DELIVERIES[SWEEP_TASK].options)
def sweep() -> None:
    run_sweep()
