"""The site's only door into the worker: put a submission or an email on its queue.

Call these *after* the row is committed, so the worker can always find what it is told about. A
broker that is down does not fail the caller: the row is already safe in the database, and the
sweeper sends it again once Redis is back (both tasks are idempotent, so a late duplicate is
harmless). That is why these functions log and return False instead of raising.

Each call opens its own broker connection from the settings it is given (or the process's), so a
site or a test holding its own ``Settings`` reaches its own Redis.
"""

from __future__ import annotations

import logging

from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from app.settings import Settings, get_settings
from worker.celery_app import (
    EMAIL_QUEUE,
    MAINTENANCE_QUEUE,
    SCORE_TASK,
    SCORING_QUEUE,
    SEND_EMAIL_TASK,
    SWEEP_TASK,
    app,
    broker_url,
)

log = logging.getLogger(__name__)

# Fail fast when the broker is unreachable: a web request must not hang on it.
_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}


def _send(task: str, args: list[int], queue: str, settings: Settings | None) -> bool:
    url = broker_url(settings or get_settings())
    try:
        with app.connection_for_write(url) as connection:
            app.send_task(task, args=args, queue=queue, connection=connection, retry=True, retry_policy=_RETRY_POLICY)
    except (OperationalError, KombuError, RedisError, OSError) as exc:
        log.warning("could not enqueue %s%s on %s; the sweeper will resend it: %s", task, args, queue, exc)
        return False
    return True


def enqueue_scoring(submission_id: int, settings: Settings | None = None) -> bool:
    """Queue a committed, ``queued`` submission for scoring. True when the broker took the message."""
    return _send(SCORE_TASK, [submission_id], SCORING_QUEUE, settings)


def enqueue_email(outbox_id: int, settings: Settings | None = None) -> bool:
    """Queue a committed EmailOutbox row for sending. True when the broker took the message."""
    return _send(SEND_EMAIL_TASK, [outbox_id], EMAIL_QUEUE, settings)


def enqueue_sweep(settings: Settings | None = None) -> bool:
    """Ask for a sweep now (beat runs one every minute anyway); for admins and tests."""
    return _send(SWEEP_TASK, [], MAINTENANCE_QUEUE, settings)
