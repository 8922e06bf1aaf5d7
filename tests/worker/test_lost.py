"""A pool process lost in the middle of a task, settled by the worker's main process (worker/lost.py).

A real Celery worker runs the task; the test kills its pool process from outside (SIGKILL, as the
kernel's OOM killer would) once the process has started the sandboxed run. The worker's main process lives
on, sees the loss, and settles the row: a scoring run is run again once and then fails as the
submission's; a pre-flight is refused as the submission's, and its message is not delivered again.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.models import EmailStatus, PreflightLease, PreflightVerdictCache, Submission, SubmissionStatus
from app.queue import PREFLIGHT_TASK, SCORE_TASK, enqueue_preflight, enqueue_scoring
from scorer.errors import ErrorCode
from tests.fixtures.db import ON_BOTH_DATABASES
from tests.fixtures.services import SmtpServer, WorkerProcess, wait_for
from tests.worker.conftest import PREDICT_ZEROS, World, pool_process
from tests.worker.test_preflight import _check, _count, _state
from tests.worker.test_scoring import wait_finished

# Still running when the test kills its process, however loaded the machine (the sandbox's own
# limits are far longer: the kill, not a limit, ends every run here).
SLOW = """import time

import numpy as np


def predict(test_data):
    time.sleep(300)
    return np.zeros(len(test_data), dtype=np.int64)
"""


def kill_pool_process(worker: WorkerProcess) -> None:
    """SIGKILL the worker's one pool process (concurrency 1), the one running the task."""
    process = pool_process(worker)
    process.kill()
    process.wait(timeout=60)


def runs_started(worker: WorkerProcess) -> int:
    """Sandboxed runs the worker has started (the pipeline logs each one's start and end)."""
    return len(re.findall(r"msg=sandbox run \w+: ", worker.output()))


def received(worker: WorkerProcess, task: str) -> int:
    """How many messages of ``task`` the worker took from the queue."""
    return len(re.findall(rf"Task {re.escape(task)}\[[^\]]+\] received", worker.output()))


@ON_BOTH_DATABASES
def test_a_run_that_kills_its_worker_process_on_every_attempt_fails_as_the_submissions(
    world: World, celery_worker: WorkerProcess, smtp_server: SmtpServer
) -> None:
    submission_id = world.submit(SLOW, filename="killer.zip")
    assert enqueue_scoring(submission_id, world.settings)
    for attempt in (1, 2):  # KATAKANA_WORKER_MAX_ATTEMPTS: 2 by default
        wait_for(lambda: world.submission(submission_id).attempts == attempt, f"attempt {attempt} to start")  # noqa: B023
        wait_for(lambda: runs_started(celery_worker) == attempt, f"attempt {attempt}'s sandbox run")  # noqa: B023
        kill_pool_process(celery_worker)
    wait_finished(world, submission_id)

    row = world.submission(submission_id)
    assert (row.status, row.attempts) == (SubmissionStatus.FAILED, 2)
    assert (row.error_code, row.error_blame) == (ErrorCode.WORKER_PROCESS_LOST.value, "submission")
    assert row.counts_toward_limit  # the slot stays spent
    log = celery_worker.output()
    assert log.count("WorkerLostError") >= 2  # the main process saw both losses
    assert f"submission {submission_id}: its worker process was lost during attempt 1" in log
    assert f"submission {submission_id} failed: its worker process was lost on each of 2 attempts" in log
    (message,) = smtp_server.wait_for_messages(1)
    assert "killer.zip" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "採点を担当するプロセスそのものが止まりました" in body
    assert "数えていません" not in body  # not given back
    wait_for(lambda: any(m.status == EmailStatus.SENT for m in world.outbox()), "the email to be marked sent")

    # The worker goes on: the next submission is scored in a new pool process.
    after = world.submit(PREDICT_ZEROS, filename="after.zip")
    assert enqueue_scoring(after, world.settings)
    wait_finished(world, after)
    assert world.status(after) == SubmissionStatus.SUCCEEDED
    # The killer's message twice (sent, then queued again once by the main process), the next one
    # once: a lost delivery is never handed out again by Celery itself.
    assert received(celery_worker, SCORE_TASK) == 3


@ON_BOTH_DATABASES
def test_a_check_that_kills_its_worker_process_is_refused_and_not_delivered_again(
    world: World, celery_worker: WorkerProcess
) -> None:
    preflight_id = _check(world, SLOW)
    assert enqueue_preflight(preflight_id, world.settings)
    wait_for(lambda: runs_started(celery_worker) == 1, "the check's sandbox run")
    kill_pool_process(celery_worker)
    wait_for(lambda: _state(world, preflight_id).state != "checking", "the check to settle")

    row = _state(world, preflight_id)
    assert row.state == "refused" and row.refusal == {"key": "upload_error_preflight"}
    assert row.verdict is not None
    assert (row.verdict["error"]["code"], row.verdict["error"]["blame"]) == ("worker_process_lost", "submission")
    assert row.verdict["error"]["message_ja"] and row.verdict["error"]["message"]
    assert _count(world, Submission) == 0 and _count(world, PreflightLease) == 0  # nothing spent, turn freed
    assert _count(world, PreflightVerdictCache) == 0  # not cached: an honest zip may try again

    # A good zip after it is checked once; the killer's message was never handed out again.
    good = _check(world, PREDICT_ZEROS)
    assert enqueue_preflight(good, world.settings)
    wait_for(lambda: _state(world, good).state == "accepted", "the good check to be accepted")
    celery_worker.wait_task_succeeded(PREFLIGHT_TASK)
    # The same worker then scores the accepted upload: its run may start before the count is read,
    # so the count waits for it (2 failed here on a loaded machine, reading 3).
    accepted = _state(world, good).submission_id
    assert accepted is not None
    wait_for(lambda: world.status(accepted) == SubmissionStatus.SUCCEEDED, "the accepted upload to be scored")
    assert runs_started(celery_worker) == 3  # the killer's check, the good one and its scoring: nothing ran again
    assert received(celery_worker, PREFLIGHT_TASK) == 2  # each check once
    with world.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Submission)) == 1


def test_the_lost_run_settled_is_the_one_its_delivery_claimed_not_the_one_its_message_named(
    world: World, celery_worker: WorkerProcess
) -> None:
    """A message only wakes a worker: woken by the later upload's message, the worker claims the
    earlier one (first in the fair order). When that run kills its process, the main process settles
    the submission the delivery claimed, found by its task id, and leaves the named one waiting."""
    killer = world.submit(SLOW, filename="killer.zip")
    named = world.submit(PREDICT_ZEROS, filename="named.zip")
    assert enqueue_scoring(named, world.settings)
    for attempt in (1, 2):  # the main process queues the killer again once, with a wake-up of its own
        wait_for(lambda: world.submission(killer).attempts == attempt, f"the killer's attempt {attempt}")  # noqa: B023
        wait_for(lambda: runs_started(celery_worker) == attempt, f"attempt {attempt}'s sandbox run")  # noqa: B023
        kill_pool_process(celery_worker)
    wait_finished(world, killer)
    log = celery_worker.output()
    assert f"submission {killer}: its worker process was lost during attempt 1" in log
    assert f"submission {killer} failed: its worker process was lost on each of 2 attempts" in log
    assert world.submission(killer).error_code == ErrorCode.WORKER_PROCESS_LOST.value
    untouched = world.submission(named)
    assert (untouched.status, untouched.attempts) == (SubmissionStatus.QUEUED, 0)  # its wake-up is the next one
