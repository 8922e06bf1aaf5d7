"""The pre-flight worker acts on a pre-flight's verdict itself: Redis, a real Celery worker, the
sandbox. Nobody watches the check here (the trainee closed the tab), and the upload is still scored."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from app.models import Preflight, PreflightLease, Submission, SubmissionStatus
from app.queue import PREFLIGHT_TASK, SWEEP_TASK, enqueue_preflight
from app.scoring_config import scoring_config
from app.services.preflight import gate, lifecycle
from app.services.storage import ReceivedUpload, key_for, path_for
from tests.fixtures.db import ON_BOTH_DATABASES
from tests.fixtures.engine import engine_settings, trivial_zip
from tests.fixtures.services import WorkerProcess, enqueue_sweep, wait_for
from tests.worker.conftest import (
    PREDICT_RAISES,
    PREDICT_ZEROS,
    World,
    compile_bomb,
    peak_rss_bytes,
    pool_process,
    zip_with,
)
from worker.tasks.preflight import run_check


def _check(world: World, source: str, name: str = "submit_katakana.py") -> int:
    """What the upload request does before it answers: store the zip, take the turn, record the check."""
    data = zip_with(source, name)
    sha = hashlib.sha256(data).hexdigest()
    assert world.settings.storage_dir is not None
    path = path_for(world.settings.storage_dir, key_for(sha))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    now = dt.datetime.now(dt.UTC)
    lease = gate.acquire(world.sessions, world.trainee_id, world.settings, now)
    upload = ReceivedUpload(original_filename="s.zip", sha256=sha, size=len(data), storage_key=key_for(sha))
    return lifecycle.start(
        world.sessions, user_id=world.trainee_id, cohort_id=world.cohort_id, upload=upload,
        validation_accuracy=None, confirmed=False, lease=lease, now=now,
    )  # fmt: skip


def _state(world: World, preflight_id: int) -> Preflight:
    with world.sessions() as db:
        row = db.get(Preflight, preflight_id)
        assert row is not None
        return row


def _count(world: World, model: type) -> int:
    with world.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


@ON_BOTH_DATABASES
def test_the_worker_spends_the_slot_and_scores_an_unwatched_check_once_even_if_delivered_twice(
    world: World, celery_worker: WorkerProcess
) -> None:
    preflight_id = _check(world, PREDICT_ZEROS)
    assert enqueue_preflight(preflight_id, world.settings)
    assert enqueue_preflight(preflight_id, world.settings)  # a second delivery of the same check
    wait_for(lambda: celery_worker.tasks_succeeded(PREFLIGHT_TASK) >= 2, "both deliveries to run")
    row = _state(world, preflight_id)
    assert row.state == "accepted" and row.submission_id is not None
    assert row.verdict is not None and row.verdict["ok"] is True
    assert _count(world, Submission) == 1  # one slot spent, however often the check arrived
    assert _count(world, PreflightLease) == 0  # the trainee may upload again
    submission_id = row.submission_id
    wait_for(lambda: world.status(submission_id) == SubmissionStatus.SUCCEEDED, "the submission to be scored")


def test_the_worker_refuses_a_failing_check_without_spending(world: World, celery_worker: WorkerProcess) -> None:
    preflight_id = _check(world, PREDICT_RAISES)
    assert enqueue_preflight(preflight_id, world.settings)
    wait_for(lambda: _state(world, preflight_id).state != "checking", "the check to settle")
    row = _state(world, preflight_id)
    assert row.state == "refused" and row.refusal == {"key": "upload_error_preflight"}
    assert row.verdict is not None and row.verdict["error"]["code"] == "predict_exception"
    assert row.verdict["error"]["blame"] == "submission"
    assert row.verdict["error"]["message_ja"] and row.verdict["error"]["message"]  # both languages kept
    assert _count(world, Submission) == 0 and _count(world, PreflightLease) == 0


def _asked_to_confirm(world: World, source: str, name: str, asked_at: dt.datetime) -> tuple[int, Preflight]:
    """A near-chance check that went ``needs_confirmation`` at ``asked_at``, its zip stored then."""
    preflight_id = _check(world, source, name)
    with world.sessions.begin() as db:
        row = db.get(Preflight, preflight_id)
        assert row is not None
        row.state, row.updated_at, row.refusal = "needs_confirmation", asked_at, {"key": "upload_error_near_chance"}
        row.created_at = asked_at
        db.execute(delete(PreflightLease))  # the verdict freed the trainee's turn
    row = _state(world, preflight_id)
    assert world.settings.storage_dir is not None
    written = (asked_at - dt.timedelta(minutes=1)).timestamp()
    os.utime(path_for(world.settings.storage_dir, row.storage_key), (written, written))
    return preflight_id, row


@ON_BOTH_DATABASES
def test_the_sweep_expires_unconfirmed_checks_deletes_their_zips_and_spends_nothing(
    world: World, celery_worker: WorkerProcess
) -> None:
    assert world.settings.storage_dir is not None
    storage = world.settings.storage_dir
    now = dt.datetime.now(dt.UTC)
    window = dt.timedelta(hours=world.settings.preflight_confirm_ttl_h)
    old, old_row = _asked_to_confirm(world, PREDICT_ZEROS, "old.py", now - window - dt.timedelta(hours=1))
    fresh, fresh_row = _asked_to_confirm(world, PREDICT_ZEROS, "fresh.py", now - window + dt.timedelta(hours=1))
    # Unconfirmed too long, but the same bytes were submitted since: the submission still reads the zip.
    shared, _ = _asked_to_confirm(world, PREDICT_RAISES, "shared.py", now - window - dt.timedelta(hours=1))
    submitted = world.submission(world.submit(PREDICT_RAISES, status=SubmissionStatus.SUCCEEDED))
    with world.sessions.begin() as db:
        row = db.get(Preflight, shared)
        assert row is not None
        row.storage_key, row.zip_sha256 = submitted.storage_key, submitted.zip_sha256
    shared_zip = storage / submitted.storage_key
    os.utime(shared_zip, (0, 0))  # stored long ago: only the submission keeps it
    spent_before = _count(world, Submission)

    assert enqueue_sweep(world.settings)
    celery_worker.wait_task_succeeded(SWEEP_TASK)

    expired = _state(world, old)
    assert expired.state == "expired" and expired.refusal == {"key": "upload_error_confirmation_expired"}
    assert expired.submission_id is None
    assert not (storage / old_row.storage_key).exists()
    untouched = _state(world, fresh)
    assert untouched.state == "needs_confirmation" and (storage / fresh_row.storage_key).exists()
    assert _state(world, shared).state == "expired" and shared_zip.exists()
    assert _count(world, Submission) == spent_before  # nothing spent, nothing given back


# The pre-flight worker's process grew by less than this while it refused a compile bomb (before
# the entry was read in a bounded child, 9.9 KB of it zipped took the process to 2.8 GB).
WORKER_GROWTH_BOUND = 128 * 1024 * 1024


@pytest.mark.parametrize("entry", ["submit_katakana.py", "submit_katakana.ipynb"])
def test_a_100_kb_compile_bomb_is_refused_and_the_preflight_worker_stays_small(
    entry: str, world: World, celery_worker: WorkerProcess
) -> None:
    pool = pool_process(celery_worker)
    before = peak_rss_bytes(pool.pid)
    assert len(zip_with(compile_bomb(entry), entry)) <= 120 * 1024
    preflight_id = _check(world, compile_bomb(entry), entry)
    assert enqueue_preflight(preflight_id, world.settings)
    wait_for(lambda: _state(world, preflight_id).state != "checking", "the check to settle")
    row = _state(world, preflight_id)
    assert row.state == "refused" and row.verdict is not None
    assert row.verdict["error"]["code"] == "entry_too_large", row.verdict
    assert row.verdict["error"]["blame"] == "submission"
    assert "重み" in row.verdict["error"]["message_ja"] and "weights" in row.verdict["error"]["message"]
    assert _count(world, Submission) == 0 and _count(world, PreflightLease) == 0
    assert pool_process(celery_worker).pid == pool.pid  # the same process ran it, and lived
    assert peak_rss_bytes(pool.pid) - before < WORKER_GROWTH_BOUND


@pytest.mark.sandbox  # the worker's pre-flight runs the real sandbox
def test_the_workers_preflight_uses_the_settings(tmp_path: Path) -> None:
    report = run_check(engine_settings(tmp_path, sandbox_mode="bwrap"), trivial_zip(tmp_path))
    assert report["ok"], report
    assert report["isolation"] == "bwrap"  # the whole CheckReport comes back, not a summary
    allowed = scoring_config(engine_settings(tmp_path, sandbox_mode="unsandboxed", allow_unsandboxed=True))
    assert allowed.sandbox.mode == "unsandboxed" and allowed.sandbox.allow_unsandboxed
