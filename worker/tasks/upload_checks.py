"""An upload's pre-flight on a worker, and what follows from its verdict.

The site answers the upload at once and follows the check live. The check's message only wakes a
pre-flight worker: it claims the waiting check that comes first in the pre-flight's fair order
(``app.services.upload_checks.claim_next``: the trainee with the least pre-flight time in the last
hour), one claim per message, then runs the pre-flight of ``worker.tasks.preflight`` on it
(through the site's verdict cache) and acts on the verdict itself
(``app.services.upload_checks.settle``): it spends the slot and sends the submission for scoring, or
records the refusal. Nobody needs to be watching, so a trainee who closes the tab is still scored.

``acks_late``: a message whose worker stopped before claiming leaves it for another, so a waiting
check is not forgotten. A check is claimed once (``started_at``): a delivery that comes again, or a
message redelivered after its worker process was killed, claims the next waiting check, never the
claimed one again. So a zip that kills its worker is not handed to the next one; its check ends as
unanswered after ``preflight_wait_s`` (the server's fault: nothing spent, the trainee may upload again).
"""

from __future__ import annotations

import logging
from pathlib import Path

from celery import Task

from app.observability.structured_logs import bound
from app.queue import CHECK_UPLOAD_TASK, PREFLIGHT_QUEUE, enqueue_scoring
from app.services.preflight import PreflightVerdict
from app.services.upload_checks import check_and_settle, claim_next
from app.settings import get_settings
from worker.celery_app import app
from worker.db import sessions, utcnow
from worker.tasks.preflight import next_spec, run_check
from worker.warm import warm_next, warm_slot

log = logging.getLogger(__name__)
_config = get_settings().worker


@app.task(
    bind=True,
    name=CHECK_UPLOAD_TASK,
    queue=PREFLIGHT_QUEUE,
    acks_late=True,
    ignore_result=True,
    soft_time_limit=_config.preflight_soft_time_limit_s,
    time_limit=_config.preflight_time_limit_s,
)
def check_upload(self: Task, check_id: int) -> None:
    settings = get_settings()

    def checker(zip_path: Path) -> PreflightVerdict:
        return PreflightVerdict.from_json(run_check(settings, zip_path))

    claimed = claim_next(sessions(), settings, utcnow(), task_id=self.request.id)
    if claimed is None:  # a duplicate delivery, or every check was taken by a quicker wake-up
        log.info("woken by upload check %s, but no check waits", check_id)
        return
    try:
        with bound(upload_check_id=claimed):
            log.info("pre-flight of upload check %s (woken by %s)", claimed, check_id)
            check_and_settle(sessions(), settings, claimed, checker, lambda sid: enqueue_scoring(sid, settings), utcnow)
    finally:  # the verdict is stored (or the task failed): warm this process's next pre-flight sandbox
        warm_next(warm_slot(settings), lambda: next_spec(settings))
