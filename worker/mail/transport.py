"""How an email leaves: over SMTP when ``smtp_host`` is set, else into the embedded mail folder.

The mail folder (``settings.mail_dir``) holds one ``.eml`` file per message, named after the
outbox row's idempotency key and created with a hard link, which fails if the name exists: writing
the same message twice — a retried task, a redelivered message — leaves exactly one file.

Over SMTP the message carries a Message-ID derived from the same key, so in the one window no
protocol can close (the server accepted the message, then the worker died before recording it)
the receiving side sees the same Message-ID twice and can fold the copies.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import smtplib
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path

from app.settings import Settings

# What the email task retries on: the server is unreachable, busy, or refused for now.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPException, OSError)


@dataclass(frozen=True)
class OutgoingMail:
    idempotency_key: str
    to_address: str
    subject: str
    body_text: str
    body_html: str | None = None


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", key)


def message_id(key: str, mail_from: str) -> str:
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "katakana-scorer.invalid"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"<{_safe_name(key)}.{digest}@{domain}>"


def build_message(mail: OutgoingMail, settings: Settings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(mail.idempotency_key, settings.mail_from)
    message["X-Katakana-Key"] = mail.idempotency_key
    message.set_content(mail.body_text)
    if mail.body_html:
        message.add_alternative(mail.body_html, subtype="html")
    return message


def deliver(mail: OutgoingMail, settings: Settings, *, timeout: float) -> None:
    """Send ``mail``; raises one of TRANSIENT_ERRORS when it should be tried again later."""
    message = build_message(mail, settings)
    if settings.smtp_host:
        _send_smtp(message, settings, timeout)
    else:
        assert settings.mail_dir is not None  # derived by Settings
        write_to_folder(message, settings.mail_dir, mail.idempotency_key)


def _send_smtp(message: EmailMessage, settings: Settings, timeout: float) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        smtp.send_message(message)


def write_to_folder(message: EmailMessage, folder: Path, key: str) -> Path:
    """Create ``<key>.eml`` atomically; if it already exists the message was delivered before."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{_safe_name(key)}.eml"
    if final.exists():
        return final
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(message.as_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # someone else delivered it meanwhile
            os.link(tmp, final)  # atomic, and refuses to replace: exactly one file per key
    finally:
        os.unlink(tmp)
    return final
