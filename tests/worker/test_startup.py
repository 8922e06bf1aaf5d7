"""The sandbox self-test at worker start: pass, and the worker scores; fail, and it refuses to."""

from __future__ import annotations

import pytest

from app.models import SubmissionStatus
from app.queue import EXIT_SELFTEST_FAILED, SWEEP_TASK, enqueue_scoring
from tests.fixtures.services import WorkerFactory, enqueue_sweep
from tests.worker.conftest import World


def test_a_worker_that_passes_the_self_test_says_so(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str]
) -> None:
    worker = celery_worker_factory(worker_env)
    assert "sandbox self-test passed" in worker.output()
    assert "consuming queues: email, maintenance, preflight, scoring, testsets" in worker.output()


def test_a_worker_failing_the_self_test_takes_no_scoring_work_but_still_sweeps(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str], redis_server
) -> None:
    submission_id = world.submit()
    assert enqueue_scoring(submission_id, world.settings)
    worker = celery_worker_factory({**worker_env, "KATAKANA_WORKER_SELFTEST_FORCE_FAIL": "1"})
    assert "REFUSING scoring work" in worker.output()
    assert "consuming queues: email, maintenance, testsets\n" in worker.output()

    # The worker is alive and consuming its other queues: a sweep goes through (and re-sends the
    # queued submission, which lands on the scoring queue nobody here consumes) ...
    assert enqueue_sweep(world.settings)
    worker.wait_task_succeeded(SWEEP_TASK)
    # ... while the submission waits, untouched, for a healthy worker.
    assert world.status(submission_id) == SubmissionStatus.QUEUED
    assert world.submission(submission_id).attempts == 0
    assert redis_server.client().llen("scoring") == 2


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
