"""The contract between the site and the workers: queue and task names, the broker, and sending work.

The layers go one way — ``scorer`` ← ``app`` ← ``worker`` — so everything both sides must agree on
lives here, on the side that is imported: the worker's Celery application (``worker.celery_app``)
routes by these names, and the site sends by name (``send_task``) without importing a task.

Enqueueing happens *after* the row is committed, so the worker can always find what it is told
about. A broker that is down does not fail the caller: the row is already safe in the database, and
the sweeper sends it again once Redis is back (the tasks are idempotent, so a late duplicate is
harmless). That is why the ``enqueue_*`` functions log and return False instead of raising.

Two requests are waited on: the pre-flight (``preflight`` queue) and a test-set import through the
API (``testsets`` queue, served where the test-set volume is). The site blocks (in a thread) on a
Redis list the worker pushes its answer to: a reply list rather than Celery's result backend, whose
Redis consumer is not safe to wait on from many threads at once.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from app.embedded_redis import embedded_url
from app.observability.redis_client import redis_for
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)

SCORING_QUEUE = "scoring"  # slow, CPU-bound: its own workers so nothing else waits behind it
PREFLIGHT_QUEUE = "preflight"  # short smoke runs a web request waits on: never behind a scoring run
EMAIL_QUEUE = "email"
MAINTENANCE_QUEUE = "maintenance"
# Test-set imports: served by the scoring workers, the only ones that mount the test-set folder.
TESTSETS_QUEUE = "testsets"
QUEUES = (SCORING_QUEUE, PREFLIGHT_QUEUE, EMAIL_QUEUE, MAINTENANCE_QUEUE, TESTSETS_QUEUE)
SANDBOXED_QUEUES = frozenset({SCORING_QUEUE, PREFLIGHT_QUEUE})  # their tasks run trainee code

SCORE_TASK = "worker.tasks.scoring.score"
PREFLIGHT_TASK = "worker.tasks.preflight.run"  # pre-flight an upload and act on the verdict
SEND_EMAIL_TASK = "worker.tasks.email.send"
SWEEP_TASK = "worker.tasks.sweeper.sweep"
IMPORT_TESTSET_TASK = "worker.tasks.testsets.import_testset"

# A worker that fails its sandbox self-test and serves nothing else exits with this code; the
# embedded supervisor then stops restarting it (restarting would fail the same way).
EXIT_SELFTEST_FAILED = 3

# Fail fast when the broker is unreachable: a web request must not hang on it.
_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}
# How long a reply waits in Redis for a site that gave up (it is deleted when read).
REPLY_TTL_S = 600


def broker_url(settings: Settings) -> str:
    """KATAKANA_REDIS_URL, or the embedded Redis's socket under data_dir (see app.embedded_redis)."""
    return settings.redis_url or embedded_url(settings.data_dir)


@functools.lru_cache(maxsize=8)
def _client(url: str) -> Celery:
    """A sending-only Celery application per broker: no tasks, no worker, JSON on the wire."""
    client = Celery("katakana-client", broker=url, set_as_current=False)
    client.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=False)
    return client


def send(task: str, args: list[Any], queue: str, settings: Settings | None, **options: Any) -> bool:
    """Send ``task`` by name (the site never imports a task); False, logged, when the broker is down."""
    url = broker_url(settings or get_settings())
    client = _client(url)
    try:
        with client.connection_for_write() as connection:
            client.send_task(
                task, args=args, queue=queue, connection=connection, retry=True, retry_policy=_RETRY_POLICY, **options
            )
    except (OperationalError, KombuError, RedisError, OSError) as exc:
        log.warning("could not enqueue %s%s on %s: %s", task, args, queue, exc)
        return False
    return True


def enqueue_scoring(submission_id: int, settings: Settings | None = None) -> bool:
    """Queue a committed, ``queued`` submission for scoring. True when the broker took the message."""
    return send(SCORE_TASK, [submission_id], SCORING_QUEUE, settings)


def enqueue_email(outbox_id: int, settings: Settings | None = None) -> bool:
    """Queue a committed EmailOutbox row for sending. True when the broker took the message."""
    return send(SEND_EMAIL_TASK, [outbox_id], EMAIL_QUEUE, settings)


def enqueue_preflight(preflight_id: int, settings: Settings) -> bool:
    """Send a committed pre-flight to the pre-flight workers (``app.services.preflight.lifecycle``).

    It expires with ``preflight_wait_s``: by then the site has ended the pre-flight as unanswered, and a
    worker must not start it after that.
    """
    return send(PREFLIGHT_TASK, [preflight_id], PREFLIGHT_QUEUE, settings, expires=settings.preflight_wait_s)


class NoWorkerAnswered(Exception):
    """No worker answered in time, or the broker could not take the request."""


def storage_key_of(storage_dir: Path, zip_path: Path) -> str:
    """The zip's key in the shared store: workers resolve it under their own storage folder."""
    return zip_path.resolve().relative_to(storage_dir.resolve()).as_posix()


def request_reply(settings: Settings, task: str, args: list[Any], queue: str, wait_s: float) -> dict[str, Any]:
    """Send ``task`` with a fresh reply key as its last argument and wait for the JSON a worker
    pushes there (:func:`send_reply`); NoWorkerAnswered after ``wait_s``.

    The message expires with the wait: work nobody started in time is not done for a caller that
    has already given up.
    """
    reply = f"katakana:reply:{uuid.uuid4().hex}"
    if not send(task, [*args, reply], queue, settings, expires=wait_s):
        raise NoWorkerAnswered("the broker did not take the request")
    client = redis_for(broker_url(settings), timeout_s=wait_s + 5)
    try:
        answer = client.blpop([reply], timeout=wait_s)
    except RedisError as exc:
        raise NoWorkerAnswered(f"the broker failed while waiting: {exc}") from exc
    finally:
        client.close()
    if answer is None:
        raise NoWorkerAnswered(f"no worker answered within {wait_s:.0f} s")
    result: dict[str, Any] = json.loads(answer[1])
    return result


def send_reply(url: str, reply: str, report: dict[str, Any]) -> None:
    """The worker's half of :func:`request_reply`."""
    client = redis_for(url, timeout_s=10)
    try:
        with client.pipeline() as pipe:
            pipe.rpush(reply, json.dumps(report))
            pipe.expire(reply, REPLY_TTL_S)
            pipe.execute()
    finally:
        client.close()
