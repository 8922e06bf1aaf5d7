"""The worker's handlers of Celery's signals, connected in one place (``worker.celery_app`` calls
:func:`connect`).

- Start-up: ``worker_init`` runs the sandbox self-test before any queue is consumed, and
  ``worker_ready`` reports its verdict (:mod:`worker.startup`).
- Logging: Celery configures its own handlers after the app is imported; ``after_setup_logger`` and
  ``after_setup_task_logger`` give them the structured format and the context filter, so Celery's own
  lines ("Task … succeeded") and ours read the same way.
- Context: ``task_prerun`` binds ``outbox_id`` (email) for the whole task, so every line logged
  while the task runs — ours, the scorer's, the sandbox's — carries it. A scoring or pre-flight
  message only wakes a worker (the fair order decides which submission or check it runs): its id is
  bound as ``woken_by``, and the task binds ``submission_id`` or ``preflight_id`` itself once it has
  claimed one. Binding in a signal rather than inside each task keeps the tasks free of logging
  plumbing.
- Presence: ``worker_ready`` starts the thread that keeps this worker's key alive in Redis
  (see :mod:`app.observability.worker_presence`); ``worker_shutdown`` withdraws it.
- A lost pool process: ``task_failure`` in the main process settles the task's row
  (:mod:`worker.lost`); ``worker_process_shutdown`` ends a pool process's warm sandbox
  (:mod:`worker.warm`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Any

from app.observability.redis_client import redis_for
from app.observability.structured_logs import bind, restyle, unbind
from app.observability.worker_presence import PresenceThread
from app.queue import PREFLIGHT_TASK, SCORE_TASK, SEND_EMAIL_TASK
from app.settings import get_settings
from worker.lost import on_task_failure
from worker.startup import on_worker_init
from worker.startup import on_worker_ready as report_selftest
from worker.warm import close_slot

log = logging.getLogger(__name__)

_ID_FIELD = {SCORE_TASK: "woken_by", PREFLIGHT_TASK: "woken_by", SEND_EMAIL_TASK: "outbox_id"}

_tokens: dict[str, contextvars.Token[dict[str, Any] | None]] = {}
_presence: list[PresenceThread] = []


def on_after_setup_logger(logger: logging.Logger, **_: Any) -> None:
    for handler in logger.handlers:
        restyle(handler, "worker", get_settings().log_format)


def on_task_prerun(task_id: str, task: Any, args: tuple[Any, ...] | list[Any] | None = None, **_: Any) -> None:
    field = _ID_FIELD.get(getattr(task, "name", ""))
    fields: dict[str, Any] = {"task_id": task_id}
    if field and args:
        fields[field] = args[0]
    _tokens[task_id] = bind(**fields)


def on_task_postrun(task_id: str, **_: Any) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        with contextlib.suppress(ValueError):  # bound in another context (should not happen)
            unbind(token)


def on_worker_ready(sender: Any, **_: Any) -> None:
    hostname = str(getattr(sender, "hostname", "") or "worker")
    queues = sorted(sender.app.amqp.queues.consume_from)
    # The pool's size: a worker started with -c 4 scores four submissions at once.
    slots = int(getattr(getattr(sender, "controller", None), "concurrency", None) or 1)
    thread = PresenceThread(
        redis_for(str(sender.app.conf.broker_url)), hostname, queues, get_settings().worker.presence_ttl_s, slots
    )
    thread.start()
    _presence.append(thread)
    log.info("announcing worker %s in Redis (queues %s)", hostname, ", ".join(queues))


def on_worker_shutdown(**_: Any) -> None:
    while _presence:
        _presence.pop().stop()


def connect() -> None:
    from celery.signals import (
        after_setup_logger,
        after_setup_task_logger,
        task_failure,
        task_postrun,
        task_prerun,
        worker_init,
        worker_process_shutdown,
        worker_ready,
        worker_shutdown,
    )

    worker_init.connect(on_worker_init, weak=False)
    worker_ready.connect(report_selftest, weak=False)
    after_setup_logger.connect(on_after_setup_logger, weak=False)
    after_setup_task_logger.connect(on_after_setup_logger, weak=False)
    task_prerun.connect(on_task_prerun, weak=False)
    task_postrun.connect(on_task_postrun, weak=False)
    worker_ready.connect(on_worker_ready, weak=False)
    worker_shutdown.connect(on_worker_shutdown, weak=False)
    task_failure.connect(on_task_failure, weak=False)
    worker_process_shutdown.connect(close_slot, weak=False)
