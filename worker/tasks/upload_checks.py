"""An upload's pre-flight on a worker, and what follows from its verdict.

The site answers the upload at once and follows the check live. The check's message only wakes a
pre-flight worker: it claims the waiting check that comes first in the pre-flight's fair order
(``app.services.upload_checks.claim_next``: the trainee with the least pre-flight time in the last
hour), one claim per message, then runs the pre-flight of ``worker.tasks.preflight`` on it
(through the site's verdict cache) and acts on the verdict itself
(``app.services.upload_checks.settle``): it spends the slot and sends the submission for scoring, or
records the refusal. Nobody needs to be watching, so a trainee who closes the tab is still scored.

A check is claimed once (``started_at``, ``task_id``): a delivery that comes again claims the next
waiting check, never the claimed one. What happens when the process running a check is lost is the
pre-flight queue's entry in worker/celery_app.py: a lost pool process is not redelivered (a zip that
kills its worker must not be handed to the next one); the worker's main process refuses the check
that delivery claimed as the submission's (worker/lost.py, which finds it by the task's id). A lost
host leaves the check to end as unanswered after ``preflight_wait_s``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from celery import Task

from app.observability.structured_logs import bound
from app.queue import CHECK_UPLOAD_TASK, enqueue_scoring
from app.services.preflight import PreflightVerdict
from app.services.upload_checks import allowed_runtimes, check_and_settle, claim_next
from app.settings import get_settings
from worker.celery_app import DELIVERIES, app
from worker.db import sessions, utcnow
from worker.tasks.preflight import next_specs, run_check
from worker.warm import warm_next, warm_slot

log = logging.getLogger(__name__)


@app.task(bind=True, name=CHECK_UPLOAD_TASK, **DELIVERIES[CHECK_UPLOAD_TASK].options)
def check_upload(self: Task, check_id: int) -> None:
    settings = get_settings()

    claimed = claim_next(sessions(), settings, utcnow(), task_id=self.request.id)
    if claimed is None:  # a duplicate delivery, or every check was taken by a quicker wake-up
        log.info("woken by upload check %s, but no check waits", check_id)
        return
    try:
        # The runtimes of the claimed check's cohort, not of the one that woke this task: they may differ.
        runtimes = allowed_runtimes(sessions(), claimed)

        def checker(zip_path: Path) -> PreflightVerdict:
            return PreflightVerdict.from_json(run_check(settings, zip_path, runtimes))

        with bound(check_id=claimed):
            log.info("pre-flight of upload check %s (woken by %s)", claimed, check_id)
            check_and_settle(sessions(), settings, claimed, checker, lambda sid: enqueue_scoring(sid, settings), utcnow)
    finally:  # the verdict is stored (or the task failed): warm this process's next pre-flight sandbox
        warm_next(warm_slot(settings), lambda: next_specs(settings))
