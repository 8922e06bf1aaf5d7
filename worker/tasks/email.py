"""Send one outbox email, with retries and exponential backoff, marking it sent exactly once.

The row is claimed ``pending`` → ``sending`` by a conditional UPDATE, so of two deliveries of the
task (a retry racing the sweeper's re-send) only one talks to the SMTP server. A transient failure
puts the row back to ``pending`` and retries later; once SMTP is back the email goes out, once.

While a row is ``sending``, ``sent_at`` holds the time of the claim (the schema has no separate
column for it): the sweeper uses it to find a claim whose worker died mid-send. On success it is
overwritten with the time the server accepted the message.
"""

from __future__ import annotations

import logging
import smtplib

from celery import Task
from sqlalchemy import update

from app.models import EmailOutbox, EmailStatus
from app.observability.structured_logs import bound
from app.queue import SEND_EMAIL_TASK
from app.settings import get_settings
from worker.celery_app import DELIVERIES, app
from worker.db import sessions, utcnow
from worker.mail.transport import TRANSIENT_ERRORS, OutgoingMail, deliver

log = logging.getLogger(__name__)
_config = get_settings().worker

# Refusals that trying again cannot fix: the address itself was rejected.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPRecipientsRefused,)


def _claim(outbox_id: int) -> tuple[OutgoingMail, int | None] | None:
    """The mail to send and the submission it reports on, if this call won the row."""
    with sessions()() as session, session.begin():
        won = session.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id == outbox_id, EmailOutbox.status == EmailStatus.PENDING)
            .values(status=EmailStatus.SENDING, attempts=EmailOutbox.attempts + 1, sent_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not won:
            return None
        row = session.get(EmailOutbox, outbox_id)
        assert row is not None
        mail = OutgoingMail(row.idempotency_key, row.to_address, row.subject, row.body_text, row.body_html)
        return mail, row.submission_id


def _release(outbox_id: int, status: EmailStatus, error: str | None) -> None:
    with sessions()() as session, session.begin():
        session.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id == outbox_id, EmailOutbox.status == EmailStatus.SENDING)
            .values(
                status=status,
                last_error=error,
                sent_at=utcnow() if status == EmailStatus.SENT else None,
            )
            .execution_options(synchronize_session=False)
        )


def send_outbox(outbox_id: int) -> bool:
    """Send the row if it is pending; True if this call sent it. Raises TRANSIENT_ERRORS to retry."""
    claimed = _claim(outbox_id)
    if claimed is None:
        log.info("outbox %s is not pending (sent, being sent, or gone); nothing to do", outbox_id)
        return False
    mail, submission_id = claimed
    # A result email is "about" its submission: its lines carry the id like the scoring lines do.
    with bound(**({} if submission_id is None else {"submission_id": submission_id})):
        return _send_claimed(outbox_id, mail)


def _send_claimed(outbox_id: int, mail: OutgoingMail) -> bool:
    try:
        deliver(mail, get_settings(), timeout=_config.smtp_timeout_s)
    except PERMANENT_ERRORS as exc:
        log.error("outbox %s refused permanently: %s", outbox_id, exc)
        _release(outbox_id, EmailStatus.FAILED, f"{type(exc).__name__}: {exc}")
        return False
    except TRANSIENT_ERRORS as exc:
        log.warning("outbox %s not sent yet: %s", outbox_id, exc)
        _release(outbox_id, EmailStatus.PENDING, f"{type(exc).__name__}: {exc}")
        raise
    _release(outbox_id, EmailStatus.SENT, None)
    log.info("outbox %s sent to %s", outbox_id, mail.to_address)
    return True


def backoff_s(retries: int) -> float:
    return float(min(_config.email_retry_base_s * 2**retries, _config.email_retry_max_s))


@app.task(bind=True, name=SEND_EMAIL_TASK, **DELIVERIES[SEND_EMAIL_TASK].options)
def send(self: Task, outbox_id: int) -> None:
    try:
        send_outbox(outbox_id)
    except TRANSIENT_ERRORS as exc:
        # After the last retry the row stays pending; the sweeper sends it again later.
        raise self.retry(exc=exc, countdown=backoff_s(self.request.retries)) from exc
