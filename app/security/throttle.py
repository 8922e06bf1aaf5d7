"""Login throttling, recorded in the database so every web process agrees.

Two limits, both over the sliding window ``login_window_s``:

- per (email, address): after ``login_max_failures`` failures the pair waits (guessing one account);
- per address: once ``login_max_accounts_per_ip`` different accounts failed from it, the address
  waits (one password tried against many accounts: "spraying").

The attempt is *claimed* before the password is checked: :func:`claim_attempt` decides and records
the attempt in one serialised transaction, and only a claimed attempt is checked; the check then
settles it (:func:`record_failure`, :func:`record_success`). For its account a claim counts as a
failure from the start, so simultaneous guesses at one account cannot outrun the limit. For the
address it counts only once it has failed: a class behind one NAT address signing in at the same
moment is many claims at once, and must not look like spraying. Deciding and recording in
separate steps let 24 simultaneous guesses all pass a "4 failures so far" check; now at most the
limit are ever checked, however many arrive at once. Serialised by SQLite's write lock, and on
PostgreSQL by a transaction-scoped advisory lock (the rows to lock may not exist yet: an unknown
email has none). The lock is held only for these few statements, never while hashing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from app.models import LoginAttempt
from app.settings import Settings

# One advisory lock key for all login bookkeeping: both limits read across rows of several emails.
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"katakana-login-attempts").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Claim:
    """The outcome of :func:`claim_attempt`: an attempt id to check, or a wait in seconds."""

    attempt_id: int | None
    retry_after_s: int = 0
    by_address: bool = False  # the address as a whole is paused (spraying), not just this account


def _serialise(db: Session) -> None:
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})


def _wait(oldest_counted: dt.datetime, settings: Settings, now: dt.datetime) -> int:
    wait = (oldest_counted + dt.timedelta(seconds=settings.login_window_s) - now).total_seconds()
    return max(1, int(wait + 0.999))


def retry_after(db: Session, email: str, ip: str, settings: Settings, now: dt.datetime) -> tuple[int, bool]:
    """Seconds until this (email, address) may try again (0: now), and whether the address is the cause."""
    since = now - dt.timedelta(seconds=settings.login_window_s)
    failures = db.scalars(
        select(LoginAttempt.created_at)
        .where(
            LoginAttempt.email == email,
            LoginAttempt.ip == ip,
            LoginAttempt.succeeded.isnot(True),  # failed, or claimed and still being checked
            LoginAttempt.created_at > since,
        )
        .order_by(LoginAttempt.created_at.desc())
        .limit(settings.login_max_failures)
    ).all()
    pair_wait = _wait(failures[-1], settings, now) if len(failures) >= settings.login_max_failures else 0
    # The latest failure of each account failed from this address; the address is paused while
    # ``login_max_accounts_per_ip`` of them are inside the window.
    latest = func.max(LoginAttempt.created_at)
    accounts = db.scalars(
        select(latest)
        .where(LoginAttempt.ip == ip, LoginAttempt.succeeded.is_(False), LoginAttempt.created_at > since)
        .group_by(LoginAttempt.email)
        .order_by(latest.desc())
        .limit(settings.login_max_accounts_per_ip)
    ).all()
    address_wait = _wait(accounts[-1], settings, now) if len(accounts) >= settings.login_max_accounts_per_ip else 0
    return max(pair_wait, address_wait), address_wait > pair_wait


def claim_attempt(db: Session, email: str, ip: str, settings: Settings, now: dt.datetime) -> Claim:
    """Decide whether this attempt may be checked and, if so, record it as a failure, atomically.

    Call inside a write transaction (``transaction(..., write_lock=True)``) and commit before
    checking the password, so concurrent attempts see this one.
    """
    _serialise(db)
    wait, by_address = retry_after(db, email, ip, settings, now)
    if wait:
        return Claim(None, wait, by_address)
    attempt = LoginAttempt(email=email, ip=ip, succeeded=None, created_at=now)
    db.add(attempt)
    db.flush()
    return Claim(attempt.id)


def record_failure(db: Session, attempt_id: int) -> None:
    """The claimed attempt failed: from now on it counts for the address too."""
    attempt = db.get(LoginAttempt, attempt_id)
    if attempt is not None:
        attempt.succeeded = False


def record_success(db: Session, email: str, ip: str, now: dt.datetime) -> None:
    """The claimed attempt succeeded: the pair's failures (the claim included) no longer count."""
    _serialise(db)
    db.execute(delete(LoginAttempt).where(LoginAttempt.email == email, LoginAttempt.ip == ip))
    db.add(LoginAttempt(email=email, ip=ip, succeeded=True, created_at=now))


def purge_old_attempts(db: Session, settings: Settings, now: dt.datetime) -> int:
    """Delete attempts older than the window (they no longer count); for the worker's periodic sweep."""
    since = now - dt.timedelta(seconds=settings.login_window_s)
    result = db.execute(delete(LoginAttempt).where(LoginAttempt.created_at <= since))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
