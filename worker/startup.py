"""The sandbox self-test a scoring worker passes before it takes any work.

A worker whose sandbox cannot run (bubblewrap missing or blocked by the container's seccomp or
AppArmor profile, a broken runtime) would otherwise fail every submission it picks up as the
server's fault; one whose sandbox leaks (a host update, a Docker profile or a kernel setting can
silently weaken bubblewrap) would run hostile code in a leaky box. So at ``worker_init`` — after the
queues are chosen, before anything is consumed — it scores a tiny built-in submission end to end,
through the same engine, sandbox and runtime as real work, then runs the hostile probes of
``scorer.sandbox.selftest`` (network, environment, host files, ptrace, daemons, fork bomb); any
probe that gets through fails the self-test. On failure the worker stops consuming the queues that
run trainee code (scoring, pre-flight; it still sends email and sweeps, if it serves those queues
too); a worker that serves nothing else exits, so an orchestrator notices. The queued messages stay
in Redis for a healthy worker.
"""

from __future__ import annotations

import io
import logging
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.queue import EXIT_SELFTEST_FAILED, SANDBOXED_QUEUES, TESTSETS_QUEUE
from app.settings import Settings, get_settings
from scorer.classes import IMAGE_SHAPE, NUM_CLASSES

log = logging.getLogger(__name__)

SELFTEST_SOURCE = b"""import numpy as np


def predict(test_data):
    return np.zeros(len(test_data), dtype=np.int64)
"""


@dataclass(frozen=True)
class SelfTestResult:
    ok: bool
    detail: str


def _selftest_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("submit_katakana.py", SELFTEST_SOURCE)
    return buffer.getvalue()


def run_selftest(settings: Settings) -> SelfTestResult:
    """Score a known submission on one image per class: it must succeed with exactly 1 of 15 right."""
    config = settings.worker
    if config.selftest_force_fail:
        return SelfTestResult(False, "forced to fail by KATAKANA_WORKER_SELFTEST_FORCE_FAIL")
    from app.scoring_config import scoring_config
    from scorer.pipeline import score_submission  # heavy: only where a self-test actually runs

    wall = scoring_config(settings).limits.wall_seconds
    if config.scoring_soft_time_limit_s <= wall:
        # Celery would kill slow submissions as the server's fault instead of the sandbox stopping
        # them with TIME_LIMIT, the trainee's: every slow submission would get its slot back.
        return SelfTestResult(
            False,
            f"KATAKANA_WORKER_SCORING_SOFT_TIME_LIMIT_S ({config.scoring_soft_time_limit_s:.0f} s) "
            f"must exceed the sandbox's wall limit ({wall:.0f} s)",
        )
    with tempfile.TemporaryDirectory(prefix="katakana-selftest-") as tmp:
        root = Path(tmp)
        (root / "selftest.zip").write_bytes(_selftest_zip())
        np.save(root / "data.npy", np.zeros((NUM_CLASSES, *IMAGE_SHAPE), dtype=np.float32))
        np.save(root / "labels.npy", np.eye(NUM_CLASSES, dtype=np.float32))
        try:
            report = score_submission(
                root / "selftest.zip",
                test_data=root / "data.npy",
                test_labels=root / "labels.npy",
                config=scoring_config(settings),
            )
        except Exception as exc:
            return SelfTestResult(False, f"the scoring engine raised {type(exc).__name__}: {exc}")
    if report.status != "succeeded" or report.correct != 1 or report.total != NUM_CLASSES:
        error = report.error.to_json() if report.error else None
        return SelfTestResult(False, f"unexpected result {report.status}: {error}; log: {report.log[-2000:]}")
    probes = run_hostile_probes(settings)
    if probes is not None:
        return probes
    from scorer.sandbox import detect_accounting

    accounting = detect_accounting(scoring_config(settings).sandbox).describe()
    return SelfTestResult(
        True,
        f"isolation={report.facts.isolation}, memory accounting={accounting}, runtime={report.runtime}, "
        "hostile probes blocked",
    )


def run_hostile_probes(settings: Settings) -> SelfTestResult | None:
    """None when every attack failed; else the failed self-test, naming what got through."""
    from app.scoring_config import scoring_config
    from scorer.sandbox.selftest import format_report
    from scorer.sandbox.selftest import run_selftest as run_probes

    config = scoring_config(settings)
    probes = run_probes(config.sandbox, config.runtime)
    if probes.ok:
        return None
    escaped = [p for p in probes.probes if not p.passed]
    if settings.allow_unsandboxed and all(p.name in ("isolation", "attacks") for p in escaped):
        # An admin explicitly allowed the unsandboxed fallback (never in production): the
        # attacks cannot be run against a sandbox that is not there, and the scoring says so.
        log.warning("no sandbox to probe; running unsandboxed as KATAKANA_ALLOW_UNSANDBOXED allows")
        return None
    return SelfTestResult(False, "hostile probes got through:\n" + format_report(probes))


# What worker_init decided, said again at worker_ready: Celery configures logging in between.
_verdict: list[tuple[int, str]] = []


def _say(level: int, message: str) -> None:
    _verdict.append((level, message))


def on_worker_init(sender: Any, **_: Any) -> None:
    """Celery's worker_init handler; ``sender`` is the WorkController, queues chosen, none consumed."""
    _verdict.clear()
    settings = get_settings()
    config = settings.worker
    queues = sender.app.amqp.queues
    consumed = set(queues.consume_from)
    sandboxed = sorted(consumed & SANDBOXED_QUEUES)
    if not sandboxed or not config.selftest:
        return
    result = run_selftest(settings)
    if result.ok:
        _say(logging.INFO, f"sandbox self-test passed ({result.detail}); taking scoring work")
        return
    _say(logging.ERROR, f"sandbox self-test FAILED: {result.detail}")
    if consumed - SANDBOXED_QUEUES - {TESTSETS_QUEUE}:  # imports alone do not keep a scoring worker up
        queues.deselect(sandboxed)
        _say(logging.ERROR, f"REFUSING scoring work: not consuming the {', '.join(map(repr, sandboxed))} queue(s)")
        return
    # Logging is not set up yet, and the worker never gets to worker_ready: say it on stderr.
    for _level, message in [*_verdict, (logging.ERROR, "REFUSING scoring work: the worker exits")]:
        print(f"[katakana worker] {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_SELFTEST_FAILED)


def on_worker_ready(sender: Any, **_: Any) -> None:
    """Report the self-test's verdict and the queues this worker actually serves."""
    for level, message in _verdict:
        log.log(level, message)
    queues = sorted(sender.app.amqp.queues.consume_from)
    log.info("katakana worker ready; consuming queues: %s", ", ".join(queues))
