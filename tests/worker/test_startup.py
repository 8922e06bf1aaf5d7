"""The sandbox self-test at worker start: pass, and the worker scores; fail, and it refuses to."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.models import SubmissionStatus
from app.queue import EXIT_SELFTEST_FAILED, SWEEP_TASK, enqueue_scoring
from app.settings import Settings
from tests.fixtures.services import WorkerFactory, enqueue_sweep
from tests.worker.conftest import World
from worker.startup import run_hostile_probes


def test_a_worker_that_passes_the_self_test_says_so(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str]
) -> None:
    worker = celery_worker_factory(worker_env)
    assert "sandbox self-test passed" in worker.output()
    assert "hostile probes blocked" in worker.output()  # network, host files, ptrace, fork bomb, ...
    assert "consuming queues: email, maintenance, preflight, scoring, testsets" in worker.output()
    # How a run's memory and processes are limited as a whole on this host, said at start.
    assert any(f"memory accounting={mode}" in worker.output() for mode in ("cgroup-v2", "cgroup-v1", "supervisor"))


def test_a_worker_failing_the_self_test_takes_no_scoring_work_but_still_sweeps(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str], redis_server
) -> None:
    submission_id = world.submit()
    assert enqueue_scoring(submission_id, world.settings)
    worker = celery_worker_factory({**worker_env, "KATAKANA_WORKER_SELFTEST_FORCE_FAIL": "1"})
    assert "REFUSING scoring work" in worker.output()
    assert "consuming queues: email, maintenance, testsets\n" in worker.output()

    # The worker is alive and consuming its other queues: a sweep goes through (and sees the queued
    # submission's wake-up still waiting on the scoring queue nobody here consumes: none is added) ...
    assert enqueue_sweep(world.settings)
    worker.wait_task_succeeded(SWEEP_TASK)
    # ... while the submission waits, untouched, for a healthy worker.
    assert world.status(submission_id) == SubmissionStatus.QUEUED
    assert world.submission(submission_id).attempts == 0
    assert redis_server.client().llen("scoring") == 1


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"KATAKANA_WORKER_SELFTEST_FORCE_FAIL": "1"}, "forced to fail"),
        (  # Celery's limit below the sandbox's: slow code would be the server's fault
            {"KATAKANA_WORKER_SCORING_SOFT_TIME_LIMIT_S": "60", "KATAKANA_WORKER_SCORING_TIME_LIMIT_S": "90"},
            "must exceed the sandbox's wall limit",
        ),
    ],
)
def test_a_scoring_only_worker_failing_the_self_test_exits(
    world: World,
    celery_worker_factory: WorkerFactory,
    worker_env: dict[str, str],
    settings: dict[str, str],
    reason: str,
) -> None:
    worker = celery_worker_factory({**worker_env, **settings}, queues="scoring", wait=False)
    assert worker.wait_exit() == EXIT_SELFTEST_FAILED
    assert reason in worker.output()
    assert "REFUSING scoring work: the worker exits" in worker.output()
    assert " ready." not in worker.output()


def test_a_sandbox_therun_hostile_probes_get_through_fails_the_self_test(tmp_path: Path) -> None:
    """No isolation (and the fallback not allowed): the probes report it, the self-test fails."""
    settings = Settings(
        environment="test", data_dir=tmp_path, sandbox_mode="unsandboxed", allow_unsandboxed=False,
        _env_file=None,  # type: ignore[call-arg]
    )  # fmt: skip
    result = run_hostile_probes(settings)
    assert result is not None and not result.ok
    assert "[FAIL] isolation" in result.detail and "do not score submissions" in result.detail
