"""Login throttling by (email, IP address), recorded in the database so every web process agrees."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import LoginAttempt
from app.settings import Settings


def retry_after(db: Session, email: str, ip: str, settings: Settings, now: dt.datetime) -> int:
    """Seconds until this (email, IP) may try again; 0 when it may try now.

    Failures count within a sliding window: after ``login_max_failures`` of them the pair waits
    until the oldest counted failure leaves the window. A success clears the pair's failures.
    """
    since = now - dt.timedelta(seconds=settings.login_window_s)
    failures = db.scalars(
        select(LoginAttempt.created_at)
        .where(
            LoginAttempt.email == email,
            LoginAttempt.ip == ip,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.created_at > since,
        )
        .order_by(LoginAttempt.created_at.desc())
        .limit(settings.login_max_failures)
    ).all()
    if len(failures) < settings.login_max_failures:
        return 0
    oldest_counted = failures[-1]
    wait = (oldest_counted + dt.timedelta(seconds=settings.login_window_s) - now).total_seconds()
    return max(1, int(wait + 0.999))


def record_attempt(db: Session, email: str, ip: str, succeeded: bool, now: dt.datetime) -> None:
    if succeeded:
        db.execute(delete(LoginAttempt).where(LoginAttempt.email == email, LoginAttempt.ip == ip))
    db.add(LoginAttempt(email=email, ip=ip, succeeded=succeeded, created_at=now))


def purge_old_attempts(db: Session, settings: Settings, now: dt.datetime) -> int:
    """Delete attempts older than the window (they no longer count); for the worker's periodic sweep."""
    since = now - dt.timedelta(seconds=settings.login_window_s)
    result = db.execute(delete(LoginAttempt).where(LoginAttempt.created_at <= since))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
