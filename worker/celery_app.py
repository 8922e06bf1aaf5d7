"""The Celery application: broker, queues, delivery guarantees and the sweeper's schedule.

Delivery is "at least once" by design — late acks, requeue when a worker process dies, one message
prefetched at a time — and every task is idempotent against the database, so a message delivered
twice does no harm while a message never lost is what keeps an upload from being stuck. Results
are never stored: the database row is the result.
"""

from __future__ import annotations

from celery import Celery
from kombu.entity import Exchange, Queue

from app.queue import (
    EMAIL_QUEUE,
    IMPORT_TESTSET_TASK,
    MAINTENANCE_QUEUE,
    QUEUES,
    SCORE_TASK,
    SCORING_QUEUE,
    SEND_EMAIL_TASK,
    SWEEP_TASK,
    TESTSETS_QUEUE,
    broker_url,
)
from app.settings import Settings, get_settings

TASK_MODULES = [
    "worker.tasks.scoring",
    "worker.tasks.upload_checks",
    "worker.tasks.email",
    "worker.tasks.sweeper",
    "worker.tasks.testsets",
]


def make_celery(settings: Settings) -> Celery:
    config = settings.worker
    celery = Celery("katakana_scorer", include=TASK_MODULES)
    celery.conf.update(
        broker_url=broker_url(settings),
        broker_connection_retry_on_startup=True,
        # An unacknowledged message returns to the queue after this long; it must outlast the
        # longest task and the longest retry countdown, or Redis would hand it out a second time
        # while the first delivery is still running (harmless, but wasteful).
        broker_transport_options={"visibility_timeout": int(config.scoring_time_limit_s) + 3600},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=MAINTENANCE_QUEUE,
        # Each queue has its own exchange and key, so a message lands in exactly one queue.
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],  # type: ignore[no-untyped-call]
        task_routes={
            SCORE_TASK: {"queue": SCORING_QUEUE},
            IMPORT_TESTSET_TASK: {"queue": TESTSETS_QUEUE},
            SEND_EMAIL_TASK: {"queue": EMAIL_QUEUE},
            SWEEP_TASK: {"queue": MAINTENANCE_QUEUE},
        },
        beat_schedule={
            "sweep": {
                "task": SWEEP_TASK,
                "schedule": config.sweep_interval_s,
                # A sweep nobody ran in time is replaced by the next one, not piled up behind it.
                "options": {"expires": config.sweep_interval_s},
            },
        },
        worker_send_task_events=False,
        timezone="UTC",
    )
    return celery


app = make_celery(get_settings())

# Connect the start-up self-test to the worker's signals (import for its side effect).
import worker.startup  # noqa: E402, F401

# Structured logs with the submission id, and this worker's presence key in Redis.
from app.observability import worker_signals as _observability  # noqa: E402, F401
