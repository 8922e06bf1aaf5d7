"""The Celery application: broker, queues, each queue's delivery guarantees and the sweeper's schedule.

Every task is idempotent against the database, so a message delivered twice does no harm; results
are never stored (the database row is the result). What differs per queue — when a message is
acknowledged, and what happens when the worker process or the whole host running it is lost — is
stated once, in :func:`deliveries`, and each task takes its options from there.

A prefork worker has a main process, which takes messages from Redis, and pool processes that run
them. Two ways to lose a task mid-run, told apart by who is left to see it:

- **the pool process is lost** (killed by the OOM killer or a signal, or by Celery's hard time limit)
  while its main process lives: the main process sees it (``WorkerLostError``, ``TimeLimitExceeded``)
  and acts on the task's row itself (worker/lost.py) — the running task's own work killed it;
- **the host is lost** (machine, container or main process gone): nobody sees it; the message,
  unacknowledged, returns to the queue only after the visibility timeout, and the sweeper acts on
  the rows long before (worker/tasks/sweeper.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from app.queue import (
    EMAIL_QUEUE,
    IMPORT_TESTSET_TASK,
    MAINTENANCE_QUEUE,
    PREFLIGHT_QUEUE,
    PREFLIGHT_TASK,
    QUEUES,
    SCORE_TASK,
    SCORING_QUEUE,
    SEND_EMAIL_TASK,
    SWEEP_TASK,
    TESTSETS_QUEUE,
    broker_url,
)
from app.settings import Settings, WorkerSettings, get_settings
from worker.signals import connect as connect_signals

TASK_MODULES = [
    "worker.tasks.scoring",
    "worker.tasks.preflight",
    "worker.tasks.email",
    "worker.tasks.sweeper",
    "worker.tasks.testsets",
]


@dataclass(frozen=True)
class Delivery:
    """Where a task's messages go, and its Celery options (``app.task(**options)``)."""

    queue: str
    options: dict[str, Any]


def deliveries(config: WorkerSettings) -> dict[str, Delivery]:
    """Each task's queue and options, by task name (one task per queue), and what a lost worker means.

    ``acks_late``: the message is acknowledged when the task ends, not when it starts, so one taken
    by a host that is lost returns to the queue. ``reject_on_worker_lost``: a task whose pool process
    is lost is put back on the queue at once; only where that is safe and useful (a task that can
    kill its process must not be handed to the next one).
    """
    return {
        # Scoring a submission. Pool process lost: not redelivered; the main process queues the
        # submission again while attempts remain (KATAKANA_WORKER_MAX_ATTEMPTS, 2: once), and when its
        # last attempt is lost the same way, fails it as the submission's (WORKER_PROCESS_LOST, the
        # slot spent). Host lost: the sweeper queues it again once its heartbeat is stale; when the
        # host is lost on its last attempt, it fails as the server's (the slot given back).
        SCORE_TASK: Delivery(
            SCORING_QUEUE,
            {
                "acks_late": True,
                "reject_on_worker_lost": False,
                "soft_time_limit": config.scoring_soft_time_limit_s,
                "time_limit": config.scoring_time_limit_s,
            },
        ),
        # The pre-flight of an upload. Pool process lost: not redelivered (the zip that killed it
        # must not loop through the queue); the main process refuses the pre-flight as the submission's
        # (WORKER_PROCESS_LOST), nothing spent, nothing cached. Host lost: the message returns after
        # it has expired (KATAKANA_PREFLIGHT_WAIT_S); the pre-flight ends as unanswered, the server's fault,
        # nothing spent.
        PREFLIGHT_TASK: Delivery(
            PREFLIGHT_QUEUE,
            {
                "acks_late": True,
                "reject_on_worker_lost": False,
                "soft_time_limit": config.preflight_soft_time_limit_s,
                "time_limit": config.preflight_time_limit_s,
            },
        ),
        # Sending one email. Pool process lost: delivered again at once; an email nobody had claimed
        # yet goes out, one claimed mid-send is returned to pending by the sweeper and sent again.
        # Host lost: the sweeper re-sends pending emails (KATAKANA_WORKER_EMAIL_PENDING_AFTER_S).
        SEND_EMAIL_TASK: Delivery(
            EMAIL_QUEUE, {"acks_late": True, "reject_on_worker_lost": True, "max_retries": config.email_max_retries}
        ),
        # The periodic sweep. Lost either way: the next scheduled sweep does it all (a message that
        # returns after a lost host has expired by then).
        SWEEP_TASK: Delivery(MAINTENANCE_QUEUE, {"acks_late": True, "reject_on_worker_lost": False}),
        # A test-set import the site waits on. Lost either way: not redelivered (acknowledged at the
        # start); the site stops waiting and the admin imports again.
        IMPORT_TESTSET_TASK: Delivery(TESTSETS_QUEUE, {"acks_late": False, "reject_on_worker_lost": False}),
    }


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
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=MAINTENANCE_QUEUE,
        # Each queue has its own exchange and key, so a message lands in exactly one queue.
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],  # type: ignore[no-untyped-call]
        task_routes={name: {"queue": delivery.queue} for name, delivery in deliveries(config).items()},
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
DELIVERIES = deliveries(get_settings().worker)
connect_signals()
