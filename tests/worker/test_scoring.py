"""Scoring through the real worker: Redis, a Celery worker process, the sandbox, SQLite, SMTP."""

from __future__ import annotations

import email
import email.policy

import pytest

from app.models import EmailStatus, SubmissionStatus
from app.queue import enqueue_email, enqueue_scoring
from scorer.errors import ErrorCode
from tests.fixtures.db import ON_BOTH_DATABASES
from tests.fixtures.services import SmtpServer, WorkerFactory, WorkerProcess, wait_for
from tests.worker.conftest import PREDICT_RAISES, World, compile_bomb, peak_rss_bytes, pool_process, zip_with

FINISHED = (SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED)


def wait_finished(world: World, submission_id: int) -> None:
    wait_for(lambda: world.status(submission_id) in FINISHED, f"submission {submission_id} to finish")


def wait_sent(world: World, count: int) -> None:
    wait_for(
        lambda: sum(row.status == EmailStatus.SENT for row in world.outbox()) >= count,
        f"{count} sent email(s)",
    )


@ON_BOTH_DATABASES
def test_queued_submission_is_scored_stored_and_emailed_once(
    world: World, celery_worker: WorkerProcess, smtp_server: SmtpServer
) -> None:
    submission_id = world.submit(filename="katakana_v1.zip")
    assert enqueue_scoring(submission_id, world.settings)

    wait_finished(world, submission_id)
    row = world.submission(submission_id)
    assert row.status == SubmissionStatus.SUCCEEDED, row.result
    assert (row.correct, row.total) == (1, 15)  # predicts ア for every image: one right per class set
    assert abs(row.accuracy - 1 / 15) < 1e-9
    assert row.testset_id == world.testset_id
    assert row.result["testset"]["version"] == "tiny-1"
    assert row.result["zip_sha256"] == row.zip_sha256
    assert row.runtime["python"] and row.runtime["numpy"]
    assert row.limits["wall_seconds"] > 0
    assert row.per_class[0]["label"] == "ア" and row.per_class[0]["accuracy"] == 1.0
    assert "predicting 15 images" in row.log
    assert row.attempts == 1 and row.counts_toward_limit
    assert row.started_at is not None and row.finished_at is not None and row.heartbeat_at is not None

    (message,) = smtp_server.wait_for_messages(1)
    wait_sent(world, 1)
    assert message["To"] == "hanako@example.test"
    assert "katakana_v1.zip" in message["Subject"] and "6.67%" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "DL 東京 2 期" in body  # cohort
    assert "katakana_v1.zip" in body  # file name
    assert " JST" in body and "(Asia/Tokyo)" not in body  # submission time in the cohort's zone
    assert "テスト正解率: 6.67%" in body and "Test accuracy" not in body  # Japanese only
    assert "ア  100.00%" in body and "ソ  0.00%" in body  # per-class table
    assert "合格です" in body  # threshold 5 %
    assert world.uploads_left_line(submission_id, spent=1) in body  # "2 / 3", unless it is a new day
    assert f"http://scorer.example.test/submissions/{submission_id}" in body
    html = message.get_body(("html",)).get_content()
    assert '<td align="center">ア</td>' in html

    # A second delivery of the same task: no rescoring, no second email.
    assert enqueue_scoring(submission_id, world.settings)
    celery_worker.wait_for_log(f"submission {submission_id} is succeeded; this delivery leaves it alone")
    again = world.submission(submission_id)
    assert (again.attempts, again.finished_at) == (row.attempts, row.finished_at)
    assert len(world.outbox()) == 1
    assert len(smtp_server.messages) == 1


def test_failures_blamed_on_the_server_give_the_slot_back_and_the_trainees_own_do_not(
    world: World, celery_worker: WorkerProcess, smtp_server: SmtpServer
) -> None:
    broken = world.submit(PREDICT_RAISES, filename="broken.zip")
    lost = world.submit(filename="lost.zip")
    zip_path = world.settings.storage_dir / world.submission(lost).storage_key
    zip_path.unlink()  # the store lost the file: not the trainee's fault
    for submission_id in (broken, lost):
        assert enqueue_scoring(submission_id, world.settings)
    for submission_id in (broken, lost):
        wait_finished(world, submission_id)

    own = world.submission(broken)
    assert own.status == SubmissionStatus.FAILED
    assert (own.error_code, own.error_blame) == (ErrorCode.PREDICT_EXCEPTION.value, "submission")
    assert own.counts_toward_limit  # the trainee's own bug keeps the slot spent

    server = world.submission(lost)
    assert server.status == SubmissionStatus.FAILED
    assert (server.error_code, server.error_blame) == (ErrorCode.INTERNAL_ERROR.value, "server")
    assert not server.counts_toward_limit  # given back

    messages = {m["Subject"]: m for m in smtp_server.wait_for_messages(2)}
    assert len(messages) == 2
    own_mail = next(m for s, m in messages.items() if "broken.zip" in s).get_body(("plain",)).get_content()
    assert "my model is not trained yet" in own_mail  # the log tail
    assert "predict の実行中にエラーが起きました" in own_mail
    server_mail = next(m for s, m in messages.items() if "lost.zip" in s).get_body(("plain",)).get_content()
    assert "サーバー側のエラー" in server_mail
    assert "この提出は今日の提出回数に数えていません。" in server_mail
    assert world.uploads_left_line(lost, spent=1) in server_mail  # only the trainee's own failure counts


def test_without_smtp_the_email_lands_once_in_the_mail_folder(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str]
) -> None:
    env = {**worker_env, "KATAKANA_SMTP_HOST": ""}  # the embedded default
    worker = celery_worker_factory(env)
    submission_id = world.submit(filename="embedded.zip")
    assert enqueue_scoring(submission_id, world.settings)
    wait_sent(world, 1)
    (row,) = world.outbox()
    assert enqueue_email(row.id, world.settings)  # a duplicate delivery
    worker.wait_for_log(f"outbox {row.id} is not pending")
    assert world.settings.mail_dir is not None
    (eml,) = world.settings.mail_dir.glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert "embedded.zip" in str(message["Subject"])
    assert message["To"] == "hanako@example.test"


def test_the_worker_runs_its_next_submission_in_a_sandbox_warmed_after_the_previous(
    world: World, celery_worker: WorkerProcess
) -> None:
    """The first task of a worker process runs cold; it then warms a sandbox, which the second
    task is handed (scorer/warm.py). Both are scored alike."""
    first = world.submit(filename="first.zip")
    assert enqueue_scoring(first, world.settings)
    wait_finished(world, first)
    celery_worker.wait_for_log("(cold)")
    second = world.submit(filename="second.zip")
    assert enqueue_scoring(second, world.settings)
    wait_finished(world, second)
    celery_worker.wait_for_log("(warm)")
    rows = [world.submission(first), world.submission(second)]
    assert [row.status for row in rows] == [SubmissionStatus.SUCCEEDED] * 2, [row.result for row in rows]
    assert rows[0].correct == rows[1].correct == 1


# The scoring worker's process grew by less than this while it refused a compile bomb (the
# scoring worker compiled accepted zips again, outside any bound, before the entry was read in a
# bounded child).
WORKER_GROWTH_BOUND = 128 * 1024 * 1024


@pytest.mark.parametrize("entry", ["submit_katakana.py", "submit_katakana.ipynb"])
def test_a_100_kb_compile_bomb_fails_as_the_submissions_and_the_scoring_worker_stays_small(
    entry: str, world: World, celery_worker: WorkerProcess, smtp_server: SmtpServer
) -> None:
    assert len(zip_with(compile_bomb(entry), entry)) <= 120 * 1024
    pool = pool_process(celery_worker)
    before = peak_rss_bytes(pool.pid)
    submission_id = world.submit(compile_bomb(entry), entry=entry, filename="bomb.zip")
    assert enqueue_scoring(submission_id, world.settings)
    wait_finished(world, submission_id)
    row = world.submission(submission_id)
    assert row.status == SubmissionStatus.FAILED, row.result
    assert (row.error_code, row.error_blame) == (ErrorCode.ENTRY_TOO_LARGE.value, "submission")
    assert row.counts_toward_limit and row.attempts == 1  # one attempt, the slot spent
    assert pool_process(celery_worker).pid == pool.pid  # the same process ran it, and lived
    assert peak_rss_bytes(pool.pid) - before < WORKER_GROWTH_BOUND
