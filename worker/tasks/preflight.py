"""The pre-flight on a worker: the quick check of an uploaded zip, before it may spend a daily slot.

The site sends the zip's storage key and a reply key; this runs ``check_submission`` (static checks,
then a short sandboxed smoke run on public images) and pushes the whole ``CheckReport`` as JSON to
the reply list the upload request is waiting on. Trainee code therefore runs only here, in the same
sandbox as scoring, never in the web process.

At most once, unlike scoring: the trainee is waiting, so a delivery lost with its worker is better
answered by "try again" (the site's bounded wait) than retried behind their back — and a zip that
kills its worker must not be handed to the next one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.queue import PREFLIGHT_QUEUE, PREFLIGHT_TASK, broker_url, send_reply
from app.scoring_config import scoring_config
from app.services.public_set import public_set
from app.services.storage import path_for
from app.settings import Settings, get_settings
from scorer.errors import ErrorCode, ScoringError
from scorer.pipeline import check_spec, check_submission
from scorer.report import CheckReport, RunFacts
from scorer.warm import HarnessSpec
from worker.celery_app import app
from worker.warm import warm_next, warm_slot

log = logging.getLogger(__name__)
_config = get_settings().worker


def run_check(settings: Settings, zip_path: Path) -> dict[str, Any]:
    """``check_submission`` with the service's engine configuration, as JSON; never raises."""
    try:
        public = public_set(settings)  # None: synthetic smoke images, no accuracy
        report = check_submission(
            zip_path,
            config=scoring_config(settings),
            sample_data=public.data if public else None,
            sample_labels=public.labels if public else None,
            warm=warm_slot(settings),
        )
    except Exception as exc:  # a fault of ours: the site refuses as the server's fault, nothing spent
        log.exception("pre-flight of %s failed internally", zip_path.name)
        error = ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"{type(exc).__name__}: {exc}")
        report = CheckReport(ok=False, stage="static", error=error, facts=RunFacts())
    return report.to_json()


@app.task(
    name=PREFLIGHT_TASK,
    queue=PREFLIGHT_QUEUE,
    acks_late=False,
    ignore_result=True,
    soft_time_limit=_config.preflight_soft_time_limit_s,
    time_limit=_config.preflight_time_limit_s,
)
def check(storage_key: str, reply: str) -> None:
    settings = get_settings()
    assert settings.storage_dir is not None
    report = run_check(settings, path_for(settings.storage_dir, storage_key))
    send_reply(broker_url(settings), reply, report)
    warm_next(warm_slot(settings), lambda: _next_spec(settings))  # the trainee has their answer already


def _next_spec(settings: Settings) -> HarnessSpec:
    public = public_set(settings)
    return check_spec(scoring_config(settings), public.data if public else None, public.labels if public else None)
