"""The pre-flight on a worker: the quick check of an uploaded zip, before it may spend a daily slot.

The site answers the upload at once and follows the pre-flight live. The pre-flight's message only
wakes a pre-flight worker (:func:`run`): it claims the waiting pre-flight that comes first in the
fair order (``app.services.preflight.lifecycle.claim_next``: the trainee with the least pre-flight
time in the last hour), one claim per message, then runs :func:`run_check` on it (through the
site's verdict cache) and acts on the verdict itself (``app.services.preflight.lifecycle.settle``):
it spends the slot and sends the submission for scoring, or records the refusal. Nobody needs to be
watching, so a trainee who closes the tab is still scored.

:func:`run_check` runs ``check_submission`` (static checks, then a short sandboxed run on public
images) with the service's engine configuration and gives the whole ``CheckReport`` as JSON. Trainee
code therefore runs only here, in the same sandbox as scoring, never in the web process.

A pre-flight is claimed once (``started_at``, ``task_id``): a delivery that comes again claims the
next waiting one, never the claimed one. What happens when the process running a pre-flight is lost
is the pre-flight queue's entry in worker/celery_app.py: a lost pool process is not redelivered (a
zip that kills its worker must not be handed to the next one); the worker's main process refuses
the pre-flight that delivery claimed as the submission's (worker/lost.py, which finds it by the
task's id). A lost host leaves the pre-flight to end as unanswered after ``preflight_wait_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from celery import Task

from app.observability.structured_logs import bound
from app.queue import PREFLIGHT_TASK, enqueue_scoring
from app.scoring_config import scoring_config
from app.services.preflight.lifecycle import allowed_runtimes, check_and_settle, claim_next
from app.services.preflight.verdict import PreflightVerdict
from app.services.public_set import public_set
from app.settings import Settings, get_settings
from scorer.errors import ErrorCode, ScoringError
from scorer.pipeline import check_specs, check_submission
from scorer.report import CheckReport, RunFacts
from scorer.runtime import RuntimeName
from scorer.runtime_choice import RuntimeChoice
from scorer.warm import HarnessSpec
from worker.celery_app import DELIVERIES, app
from worker.db import sessions, utcnow
from worker.warm import warm_next, warm_slot

log = logging.getLogger(__name__)


@app.task(bind=True, name=PREFLIGHT_TASK, **DELIVERIES[PREFLIGHT_TASK].options)
def run(self: Task, preflight_id: int) -> None:
    settings = get_settings()

    claimed = claim_next(sessions(), settings, utcnow(), task_id=self.request.id)
    if claimed is None:  # a duplicate delivery, or every pre-flight was taken by a quicker wake-up
        log.info("woken by pre-flight %s, but no pre-flight waits", preflight_id)
        return
    try:
        # The runtimes of the claimed pre-flight's cohort, not of the one that woke this task: they may differ.
        runtimes = allowed_runtimes(sessions(), claimed)

        def checker(zip_path: Path) -> PreflightVerdict:
            return PreflightVerdict.from_json(run_check(settings, zip_path, runtimes))

        with bound(preflight_id=claimed):
            log.info("pre-flight %s (woken by %s)", claimed, preflight_id)
            check_and_settle(sessions(), settings, claimed, checker, lambda sid: enqueue_scoring(sid, settings), utcnow)
    finally:  # the verdict is stored (or the task failed): warm this process's next pre-flight sandbox
        warm_next(warm_slot(settings), lambda: next_specs(settings))


def run_check(settings: Settings, zip_path: Path, runtimes: Sequence[str] | None = None) -> dict[str, Any]:
    """``check_submission`` with the service's engine configuration, as JSON; never raises.

    ``runtimes``: what the upload's cohort allows (None: every installed runtime)."""
    try:
        public = public_set(settings)  # None: synthetic smoke images, no accuracy
        report = check_submission(
            zip_path,
            config=scoring_config(settings),
            sample_data=public.data if public else None,
            sample_labels=public.labels if public else None,
            warm=warm_slot(settings),
            runtime=RuntimeChoice(allowed=_runtime_names(runtimes), refuse_missing=True),
        )
    except Exception as exc:  # a fault of ours: the site refuses as the server's fault, nothing spent
        log.exception("pre-flight of %s failed internally", zip_path.name)
        error = ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"{type(exc).__name__}: {exc}")
        report = CheckReport(ok=False, stage="static", error=error, facts=RunFacts())
    return report.to_json()


def _runtime_names(runtimes: Sequence[str] | None) -> list[RuntimeName] | None:
    """The cohort's runtimes as the engine names them (a name this engine does not know is left out)."""
    return None if runtimes is None else [RuntimeName(r) for r in runtimes if r in set(RuntimeName)]


def next_specs(settings: Settings) -> list[HarnessSpec]:
    """What the next pre-flight's sandboxes are warmed for: the engine's settings and the public set,
    one per installed runtime."""
    public = public_set(settings)
    return check_specs(scoring_config(settings), public.data if public else None, public.labels if public else None)
