"""The pre-flight worker acts on an upload check's verdict itself: Redis, a real Celery worker, the
sandbox. Nobody watches the check here (the trainee closed the tab), and the upload is still scored."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import func, select

from app.models import PreflightLease, Submission, SubmissionStatus, UploadCheck
from app.queue import CHECK_UPLOAD_TASK, enqueue_upload_check
from app.services import preflight_gate, upload_checks
from app.services.storage import key_for, path_for
from app.services.uploads import ReceivedUpload
from tests.fixtures.db import ON_BOTH_DATABASES
from tests.fixtures.services import WorkerProcess, wait_for
from tests.worker.conftest import PREDICT_RAISES, PREDICT_ZEROS, World, zip_with


def _check(world: World, source: str) -> int:
    """What the upload request does before it answers: store the zip, take the turn, record the check."""
    data = zip_with(source)
    sha = hashlib.sha256(data).hexdigest()
    assert world.settings.storage_dir is not None
    path = path_for(world.settings.storage_dir, key_for(sha))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    now = dt.datetime.now(dt.UTC)
    lease = preflight_gate.acquire(world.sessions, world.trainee_id, world.settings, now)
    upload = ReceivedUpload(original_filename="s.zip", sha256=sha, size=len(data), storage_key=key_for(sha))
    return upload_checks.start(
        world.sessions, user_id=world.trainee_id, cohort_id=world.cohort_id, upload=upload,
        validation_accuracy=None, confirmed=False, lease=lease, now=now,
    )  # fmt: skip


def _state(world: World, check_id: int) -> UploadCheck:
    with world.sessions() as db:
        row = db.get(UploadCheck, check_id)
        assert row is not None
        return row


def _count(world: World, model: type) -> int:
    with world.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


@ON_BOTH_DATABASES
def test_the_worker_spends_the_slot_and_scores_an_unwatched_check_once_even_if_delivered_twice(
    world: World, celery_worker: WorkerProcess
) -> None:
    check_id = _check(world, PREDICT_ZEROS)
    assert enqueue_upload_check(check_id, world.settings)
    assert enqueue_upload_check(check_id, world.settings)  # a second delivery of the same check
    wait_for(lambda: celery_worker.tasks_succeeded(CHECK_UPLOAD_TASK) >= 2, "both deliveries to run")
    row = _state(world, check_id)
    assert row.state == "accepted" and row.submission_id is not None
    assert row.verdict is not None and row.verdict["ok"] is True
    assert _count(world, Submission) == 1  # one slot spent, however often the check arrived
    assert _count(world, PreflightLease) == 0  # the trainee may upload again
    submission_id = row.submission_id
    wait_for(lambda: world.status(submission_id) == SubmissionStatus.SUCCEEDED, "the submission to be scored")


def test_the_worker_refuses_a_failing_check_without_spending(world: World, celery_worker: WorkerProcess) -> None:
    check_id = _check(world, PREDICT_RAISES)
    assert enqueue_upload_check(check_id, world.settings)
    wait_for(lambda: _state(world, check_id).state != "checking", "the check to settle")
    row = _state(world, check_id)
    assert row.state == "refused" and row.refusal == {"key": "upload_error_preflight"}
    assert row.verdict is not None and row.verdict["error"]["code"] == "predict_exception"
    assert row.verdict["error"]["blame"] == "submission"
    assert row.verdict["error"]["message_ja"] and row.verdict["error"]["message"]  # both languages kept
    assert _count(world, Submission) == 0 and _count(world, PreflightLease) == 0
