"""The pre-flight on a worker: the quick check of an uploaded zip, before it may spend a daily slot.

``run_check`` runs ``check_submission`` (static checks, then a short sandboxed smoke run on public
images) with the service's engine configuration and gives the whole ``CheckReport`` as JSON; the
upload-check task (``worker.tasks.upload_checks``) calls it and acts on the verdict. Trainee code
therefore runs only here, in the same sandbox as scoring, never in the web process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.scoring_config import scoring_config
from app.services.public_set import public_set
from app.settings import Settings
from scorer.errors import ErrorCode, ScoringError
from scorer.pipeline import check_specs, check_submission
from scorer.report import CheckReport, RunFacts
from scorer.runtime import RuntimeName
from scorer.runtime_choice import RuntimeChoice
from scorer.warm import HarnessSpec
from worker.warm import warm_slot

log = logging.getLogger(__name__)


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
