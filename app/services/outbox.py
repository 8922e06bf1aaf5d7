"""Mail the site sends (password links) goes through the same outbox as result mail.

The row is written in the request's transaction; the worker sends it (with retries) once the row is
committed, so a down SMTP server never fails a page and a mail is never sent twice.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import EmailOutbox, EmailStatus


def queue_email(db: Session, *, key: str, to: str, subject: str, body_text: str) -> EmailOutbox:
    existing = db.scalar(select(EmailOutbox).where(EmailOutbox.idempotency_key == key))
    if existing is not None:
        return existing
    row = EmailOutbox(
        idempotency_key=key, to_address=to, subject=subject, body_text=body_text, status=EmailStatus.PENDING
    )
    db.add(row)
    db.flush()
    return row
