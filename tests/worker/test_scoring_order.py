"""Real scoring workers claim in the fair order: uploads A A A B C are scored A B C A A, by one worker
and by two at once, each exactly once, with one result email promised each (sending is the email
worker's, tested elsewhere)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.models import Enrollment, Language, Role, Submission, User
from app.queue import enqueue_scoring
from tests.fixtures.db import ON_BOTH_DATABASES
from tests.fixtures.services import WorkerFactory
from tests.worker.conftest import World
from tests.worker.test_scoring import wait_finished

SLOW_ZEROS = """import time

import numpy as np


def predict(test_data):
    time.sleep(3)  # long enough that two workers' runs overlap
    return np.zeros(len(test_data), dtype=np.int64)
"""


def _upload_aaabc(world: World) -> dict[int, str]:
    """A (the world's trainee) uploads three times, then B and C once each; which trainee is which."""
    with world.sessions.begin() as db:
        others = {}
        for letter in "BC":
            user = User(email=f"{letter.lower()}@example.test", name=letter, role=Role.TRAINEE, language=Language.JA)
            db.add(user)
            db.flush()
            db.add(Enrollment(user_id=user.id, cohort_id=world.cohort_id, role=Role.TRAINEE))
            others[letter] = user.id
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10)  # all five wait before any run starts
    trainee_of = {}
    for i, letter in enumerate("AAABC"):
        sid = world.submit(SLOW_ZEROS, filename=f"{letter}{i}.zip", created_at=start + dt.timedelta(seconds=i))
        if letter != "A":
            with world.sessions.begin() as db:
                row = db.get(Submission, sid)
                assert row is not None
                row.user_id = others[letter]
        trainee_of[sid] = letter
    return trainee_of


@ON_BOTH_DATABASES
@pytest.mark.parametrize("workers", [1, 2])
def test_uploads_a_a_a_b_c_are_scored_a_b_c_a_a(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str], workers: int
) -> None:
    started = [celery_worker_factory(worker_env, queues="scoring") for _ in range(workers)]
    trainee_of = _upload_aaabc(world)
    for sid in trainee_of:  # one wake-up per upload, in upload order, as the site sends them
        assert enqueue_scoring(sid, world.settings)
    for sid in trainee_of:
        wait_finished(world, sid)
    with world.sessions() as db:
        rows = db.execute(
            select(Submission.id, Submission.started_at, Submission.attempts, Submission.worker_hostname)
        ).all()
    by_start = [trainee_of[row.id] for row in sorted(rows, key=lambda row: row.started_at)]
    if workers == 1:
        assert " ".join(by_start) == "A B C A A"
    else:  # two runs at a time: A's and B's first, then C's first and A's second, then A's third
        assert [sorted(by_start[:2]), sorted(by_start[2:4]), by_start[4:]] == [["A", "B"], ["A", "C"], ["A"]]
    assert {row.attempts for row in rows} == {1}  # each claimed exactly once
    assert {row.worker_hostname for row in rows} == {worker.name for worker in started}  # all took part
    assert sorted(mail.submission_id for mail in world.outbox()) == sorted(trainee_of)  # one email each
