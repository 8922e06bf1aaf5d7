"""The heartbeat thread: fenced by the attempt, and its log lines name the submission."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from app.models import Submission, SubmissionStatus
from app.observability.structured_logs import bound
from tests.fixtures.db import ON_BOTH_DATABASES
from tests.fixtures.logs import structured_lines
from tests.fixtures.services import wait_for
from tests.worker.conftest import World
from worker.heartbeat import Heartbeat


@pytest.fixture
def heartbeat_log() -> Iterator[io.StringIO]:
    with structured_lines("worker.heartbeat", "worker") as log:
        yield log.stream


@ON_BOTH_DATABASES
def test_the_beat_keeps_its_attempt_alive_and_stops_when_taken_over(world: World, heartbeat_log: io.StringIO) -> None:
    submission_id = world.submit(status=SubmissionStatus.RUNNING, attempts=1)
    beat = Heartbeat(submission_id, attempt=1, interval_s=0.05, session_factory=world.sessions)
    with bound(submission_id=submission_id, task_id="t-1"), beat:
        wait_for(lambda: world.submission(submission_id).heartbeat_at is not None, "the first beat")
        # The sweeper hands the row to a second attempt: the first attempt's beat must stop.
        with world.sessions.begin() as session:
            session.execute(update(Submission).where(Submission.id == submission_id).values(attempts=2))
        wait_for(lambda: "taken over" in heartbeat_log.getvalue(), "the heartbeat to notice the takeover")
    line = heartbeat_log.getvalue().strip()
    # The thread ran in the task's context: the line carries the fields the task bound.
    assert f"submission_id={submission_id} task_id=t-1 " in line
    assert line.endswith(f"msg=submission {submission_id} attempt 1 was taken over; heartbeat stops")
    assert not Heartbeat(submission_id, 1, 0.05, world.sessions).beat()  # fenced: the old attempt cannot beat
    assert Heartbeat(submission_id, 2, 0.05, world.sessions).beat()
