"""SMTP down: the result is stored at once, and the email goes out once SMTP is back — exactly once."""

from __future__ import annotations

from app.models import EmailStatus, SubmissionStatus
from app.queue import SWEEP_TASK, enqueue_email, enqueue_scoring
from tests.fixtures.services import SmtpServer, WorkerProcess, enqueue_sweep, wait_for
from tests.worker.conftest import World
from tests.worker.test_scoring import wait_finished, wait_sent


def test_email_waits_for_smtp_and_is_delivered_exactly_once(
    world: World, celery_worker: WorkerProcess, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    submission_id = world.submit(filename="during_outage.zip")
    assert enqueue_scoring(submission_id, world.settings)

    wait_finished(world, submission_id)
    assert world.submission(submission_id).status == SubmissionStatus.SUCCEEDED  # on the site already
    (row,) = wait_for(
        lambda: [r for r in world.outbox() if r.attempts >= 2 and r.status == EmailStatus.PENDING],
        "the email to fail twice",
    )
    assert "Connection refused" in (row.last_error or "") or "Errno" in (row.last_error or "")
    assert smtp_server.messages == []

    smtp_server.start()
    (message,) = smtp_server.wait_for_messages(1)
    wait_sent(world, 1)
    assert "during_outage.zip" in message["Subject"]

    # Late duplicates — a re-sent task, a sweep — find the row sent and send nothing.
    assert enqueue_email(row.id, world.settings)
    celery_worker.wait_for_log(f"outbox {row.id} is not pending")
    assert enqueue_sweep(world.settings)
    celery_worker.wait_task_succeeded(SWEEP_TASK)
    (final,) = world.outbox()
    assert final.status == EmailStatus.SENT and final.sent_at is not None
    assert len(smtp_server.messages) == 1
