"""The sweeper: nothing stays queued without a message, nothing stays running without a worker."""

from __future__ import annotations

import datetime as dt
import os
import re

from sqlalchemy import select

from app.embedded_redis import RedisServer
from app.models import LoginAttempt, SubmissionStatus, UserSession
from app.queue import SCORING_QUEUE, SWEEP_TASK, enqueue_scoring
from scorer.errors import ErrorCode
from tests.fixtures.db import ON_BOTH_DATABASES
from tests.fixtures.services import SmtpServer, WorkerFactory, WorkerProcess, enqueue_sweep, wait_for
from tests.worker.conftest import World
from tests.worker.test_scoring import wait_finished

LONG_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)


@ON_BOTH_DATABASES
def test_sweep_resends_lost_queued_rows_and_reclaims_stale_running_ones(
    world: World, celery_worker: WorkerProcess, smtp_server: SmtpServer
) -> None:
    running = SubmissionStatus.RUNNING
    # Committed, but the broker never got (or lost) its message.
    lost = world.submit(filename="lost_message.zip", created_at=LONG_AGO)
    # Its worker died during the first attempt: the heartbeat stopped an hour ago.
    orphan = world.submit(filename="orphan.zip", status=running, attempts=1, started_at=LONG_AGO, heartbeat_at=LONG_AGO)
    # Its host was lost on its last attempt (no main process settled it): given up on, as the server's fault.
    hopeless = world.submit(
        filename="hopeless.zip", status=running, attempts=3, started_at=LONG_AGO, heartbeat_at=LONG_AGO
    )
    # A healthy run elsewhere, heartbeat fresh: must be left alone.
    alive_beat = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    alive = world.submit(filename="alive.zip", status=running, attempts=1, started_at=LONG_AGO, heartbeat_at=alive_beat)

    assert enqueue_sweep(world.settings)
    for submission_id in (lost, orphan, hopeless):
        wait_finished(world, submission_id)

    assert world.submission(lost).status == SubmissionStatus.SUCCEEDED
    assert world.submission(lost).attempts == 1

    reclaimed = world.submission(orphan)
    assert reclaimed.status == SubmissionStatus.SUCCEEDED
    assert reclaimed.attempts == 2
    assert reclaimed.counts_toward_limit

    given_up = world.submission(hopeless)
    assert given_up.status == SubmissionStatus.FAILED
    assert (given_up.error_code, given_up.error_blame) == (ErrorCode.INTERNAL_ERROR.value, "server")
    assert not given_up.counts_toward_limit  # the slot is given back
    assert given_up.attempts == 3

    untouched = world.submission(alive)
    assert (untouched.status, untouched.attempts) == (running, 1)

    # Every sweeper line about a row names it as a field, not only in the text.
    log = celery_worker.output()
    assert re.search(rf"submission_id={hopeless} [^\n]*msg=submission {hopeless} failed after 3 attempts", log)
    assert re.search(rf"submission_id={orphan} [^\n]*msg=submission {orphan}: worker lost during attempt 1", log)

    subjects = sorted(m["Subject"] for m in smtp_server.wait_for_messages(3))
    assert len(subjects) == 3
    assert any("hopeless.zip" in s and "採点できませんでした" in s for s in subjects)
    assert not any("alive.zip" in s for s in subjects)


SLOW_ZEROS = """import time

import numpy as np


def predict(test_data):
    print("thinking", flush=True)
    time.sleep(10)  # long enough for the test to kill the worker mid-run, even on a loaded machine
    return np.zeros(len(test_data), dtype=np.int64)
"""


def test_a_submission_whose_worker_crashes_is_scored_by_another(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str], smtp_server: SmtpServer
) -> None:
    first = celery_worker_factory(worker_env)
    submission_id = world.submit(SLOW_ZEROS, filename="crash.zip")
    assert enqueue_scoring(submission_id, world.settings)
    wait_for(lambda: world.status(submission_id) == SubmissionStatus.RUNNING, "the first worker to start it")
    first.wait_for_log("sandbox run")
    first.kill()  # the machine died mid-run: no result, no ack, no clean-up

    def heartbeat_stale() -> bool:
        beat = world.submission(submission_id).heartbeat_at
        return beat is not None and dt.datetime.now(dt.UTC) - beat > dt.timedelta(seconds=3)

    wait_for(heartbeat_stale, "the dead worker's heartbeat to go stale")
    assert world.status(submission_id) == SubmissionStatus.RUNNING  # stuck, until swept

    second = celery_worker_factory(worker_env)
    assert enqueue_sweep(world.settings)
    wait_finished(world, submission_id)
    row = world.submission(submission_id)
    assert (row.status, row.attempts) == (SubmissionStatus.SUCCEEDED, 2)
    assert row.worker_hostname == second.name
    assert row.counts_toward_limit
    (message,) = smtp_server.wait_for_messages(1)
    assert "crash.zip" in message["Subject"]


def test_the_sweep_purges_expired_sessions_old_login_attempts_and_stale_uploads(
    world: World, celery_worker: WorkerProcess
) -> None:
    now = dt.datetime.now(dt.UTC)
    with world.sessions.begin() as session:
        session.add_all(
            [
                UserSession(token_hash="a" * 64, user_id=world.trainee_id, expires_at=now - dt.timedelta(minutes=1)),
                UserSession(token_hash="b" * 64, user_id=world.trainee_id, expires_at=now + dt.timedelta(days=1)),
                LoginAttempt(email="x@example.test", ip="192.0.2.1", succeeded=False, created_at=LONG_AGO),
                LoginAttempt(email="x@example.test", ip="192.0.2.1", succeeded=False, created_at=now),
            ]
        )
    storage = world.settings.storage_dir
    assert storage is not None
    month_ago = (now - dt.timedelta(days=30)).timestamp()
    # A submission's zip, however old, stays: scoring, rescoring and downloads read it.
    used = world.submit(status=SubmissionStatus.SUCCEEDED)
    used_zip = storage / world.submission(used).storage_key
    # A zip the pre-flight refused a month ago (no row names it), and a fresh one (a retry may reuse it).
    refused, fresh = storage / "zips" / "ab" / ("ab" * 32 + ".zip"), storage / "zips" / "cd" / ("cd" * 32 + ".zip")
    # The part file of an upload whose web process died mid-body, and one being received now.
    dead_part, live_part = storage / "incoming" / "dead.part", storage / "incoming" / "live.part"
    for path in (refused, fresh, dead_part, live_part):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"zip")
    for path in (used_zip, refused, dead_part):
        os.utime(path, (month_ago, month_ago))

    assert enqueue_sweep(world.settings)
    celery_worker.wait_task_succeeded(SWEEP_TASK)

    with world.sessions() as session:
        assert session.scalars(select(UserSession.token_hash)).all() == ["b" * 64]
        assert len(session.scalars(select(LoginAttempt.id)).all()) == 1  # the recent one still counts
    assert used_zip.exists() and fresh.exists() and live_part.exists()
    assert not refused.exists() and not dead_part.exists()


def test_the_sweep_tops_the_wake_ups_up_to_the_rows_waiting_instead_of_one_more_each(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str], redis_server: RedisServer
) -> None:
    """Three uploads wait long, two messages still wait in Redis (one was lost): one more is sent,
    not three — a message wakes a worker for the fair order's first row, whichever it names."""
    waiting = [world.submit(filename=f"w{i}.zip", created_at=LONG_AGO) for i in range(3)]
    for submission_id in waiting[:2]:
        assert enqueue_scoring(submission_id, world.settings)
    sweeper = celery_worker_factory(worker_env, queues="maintenance")  # nobody scores meanwhile
    assert enqueue_sweep(world.settings)
    sweeper.wait_task_succeeded(SWEEP_TASK)
    assert redis_server.client().llen(SCORING_QUEUE) == 3
    assert {world.status(submission_id) for submission_id in waiting} == {SubmissionStatus.QUEUED}
