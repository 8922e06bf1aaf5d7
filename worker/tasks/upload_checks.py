"""An upload's pre-flight on a worker, and what follows from its verdict.

The site answers the upload at once and follows the check live; this task runs the pre-flight of
``worker.tasks.preflight`` (through the site's verdict cache) and then acts on the verdict itself
(``app.services.upload_checks.settle``): it spends the slot and sends the submission for scoring, or
records the refusal. Nobody needs to be watching, so a trainee who closes the tab is still scored.

A delivery that comes twice settles once (the row's state is decided under the write lock). What
happens when the process running a check is lost is the pre-flight queue's entry in
worker/celery_app.py: a lost pool process is not redelivered (a zip that kills its worker must not
be handed to the next one); the worker's main process refuses the check as the submission's
(worker/lost.py). A lost host leaves the check to end as unanswered after ``preflight_wait_s``.
"""

from __future__ import annotations

from pathlib import Path

from app.queue import CHECK_UPLOAD_TASK, enqueue_scoring
from app.services.preflight import PreflightVerdict
from app.services.upload_checks import allowed_runtimes, check_and_settle
from app.settings import get_settings
from worker.celery_app import DELIVERIES, app
from worker.db import sessions, utcnow
from worker.tasks.preflight import next_specs, run_check
from worker.warm import warm_next, warm_slot


@app.task(name=CHECK_UPLOAD_TASK, **DELIVERIES[CHECK_UPLOAD_TASK].options)
def check_upload(check_id: int) -> None:
    settings = get_settings()

    runtimes = allowed_runtimes(sessions(), check_id)

    def checker(zip_path: Path) -> PreflightVerdict:
        return PreflightVerdict.from_json(run_check(settings, zip_path, runtimes))

    try:
        check_and_settle(sessions(), settings, check_id, checker, lambda sid: enqueue_scoring(sid, settings), utcnow)
    finally:  # the verdict is stored (or the task failed): warm this process's next pre-flight sandbox
        warm_next(warm_slot(settings), lambda: next_specs(settings))
