"""Scaling out as docs/operations.md says: a second scoring worker started as another host would run
it, with its own data folder and only what every worker shares — the PostgreSQL database, Redis, the
submissions' storage and a copy of the test set, verified by its digest.

The first host dies mid-run; the second scores that submission, exactly once, with one email. A
host whose copy of the test set is missing or different refuses the run as the server's fault (the
upload given back) and says which host and what is wrong.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.models import SubmissionStatus
from app.queue import enqueue_scoring
from scorer.errors import ErrorCode
from tests.fixtures.services import SmtpServer, WorkerFactory, enqueue_sweep, wait_for
from tests.worker.conftest import World
from tests.worker.test_scoring import wait_finished
from tests.worker.test_sweeper import SLOW_ZEROS

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def worker_env(worker_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The first host: its own data folder (the shared fixture's), the submissions on shared storage."""
    return {**worker_env, "KATAKANA_STORAGE_DIR": str(tmp_path / "shared-storage")}


def other_host(worker_env: dict[str, str], folder: Path) -> dict[str, str]:
    """Another host's settings: the same database, Redis, SMTP relay and shared storage; everything
    else (data folder, test sets, mail folder, warm sandboxes' work) its own."""
    folder.mkdir(parents=True)
    return {**worker_env, "KATAKANA_DATA_DIR": str(folder)}


def copy_testset(world: World, host: Path) -> Path:
    """What an operator does before activating a version: copy its folder to the host (rsync -a)."""
    assert world.settings.testset_dir is not None
    source = world.settings.testset_dir / "tiny-1"
    target = host / "testsets" / "tiny-1"
    shutil.copytree(source, target)
    return target


@ON_POSTGRESQL
def test_a_second_host_scores_the_submission_of_a_host_that_died_mid_run_exactly_once(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str], smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    first = celery_worker_factory(worker_env, queues="scoring")
    submission_id = world.submit(SLOW_ZEROS, filename="rush.zip")
    assert enqueue_scoring(submission_id, world.settings)
    wait_for(lambda: world.status(submission_id) == SubmissionStatus.RUNNING, "the first host to start it")
    first.wait_for_log("sandbox run")
    first.kill()  # the host is lost mid-run: no result, no ack, no clean-up

    host = tmp_path / "host2"
    second_env = other_host(worker_env, host)
    copy = copy_testset(world, host)
    second = celery_worker_factory(second_env, queues="scoring")
    # Its own mail and maintenance worker (the one beat of the deployment), a third host's.
    celery_worker_factory(other_host(worker_env, tmp_path / "host3"), queues="email,maintenance")

    def heartbeat_stale() -> bool:
        beat = world.submission(submission_id).heartbeat_at
        return beat is not None and dt.datetime.now(dt.UTC) - beat > dt.timedelta(seconds=3)

    wait_for(heartbeat_stale, "the dead host's heartbeat to go stale")
    assert enqueue_sweep(world.settings)
    wait_finished(world, submission_id)

    row = world.submission(submission_id)
    assert (row.status, row.attempts, row.worker_hostname) == (SubmissionStatus.SUCCEEDED, 2, second.name)
    assert row.counts_toward_limit and (row.correct, row.total) == (1, 15)
    assert f"test set tiny-1: this worker's copy at {copy.resolve()} matches its digest" in second.output()
    (message,) = smtp_server.wait_for_messages(1)
    assert "rush.zip" in message["Subject"]
    assert [mail.submission_id for mail in world.outbox()] == [submission_id]  # one email, ever


@ON_POSTGRESQL
@pytest.mark.parametrize("copy", ["missing", "different"])
def test_a_host_without_the_right_copy_of_the_test_set_refuses_the_run_as_the_servers_fault(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str], tmp_path: Path, copy: str
) -> None:
    host = tmp_path / "host2"
    env = other_host(worker_env, host)
    if copy == "different":  # another set of images under the same version's name
        folder = copy_testset(world, host)
        np.save(folder / "test_data.npy", np.ones((15, 1, 28, 28), dtype=np.float32))
    worker = celery_worker_factory(env, queues="scoring")
    submission_id = world.submit(filename="refused.zip")
    assert enqueue_scoring(submission_id, world.settings)
    wait_finished(world, submission_id)

    row = world.submission(submission_id)
    assert (row.status, row.error_code, row.error_blame) == (
        SubmissionStatus.FAILED,
        ErrorCode.INTERNAL_ERROR.value,
        "server",
    )
    assert not row.counts_toward_limit  # the upload is given back
    said = {
        "missing": "test set tiny-1: this worker's copy is missing on host",
        "different": "test set tiny-1 is corrupt or a different copy on host",
    }[copy]
    assert said in str(row.result)  # the operator's clue, kept with the row
    assert f"submission_id={submission_id} msg=submission {submission_id}: {said}" in worker.output()
