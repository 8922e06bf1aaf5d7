"""The gate in front of the free pre-flight: one at a time per trainee, and an hourly rate each.

The pre-flight costs the trainee nothing, but it runs their code in the sandbox for up to its time
limit and the service has only so many slots for it (one per CPU). Without a gate, one trainee's
two 20-second sleeper zips held both slots and another trainee's pre-flight waited 18 s behind them;
a script could keep them busy for good. So:

- **one at a time**: a trainee's second upload while their first is still being checked is
  refused at once (it costs nothing, and the message says to wait for the first result). Each
  trainee therefore holds at most one place among the pre-flights running or waiting, which is what
  keeps them fair: however many uploads one trainee sends, the others' checks are never queued
  behind more than one of theirs.
- **a rate**: at most ``preflight_per_hour`` checks per trainee in any hour (20 by default; a
  trainee has 3 counted uploads a day, so this is generous for honest use). A pre-flight that ran into
  the smoke time limit counts ``preflight_timeout_weight`` times (5): it held a shared pre-flight
  worker for the whole limit, and a trainee whose checks keep timing out is throttled harder.

Which waiting pre-flight a pre-flight worker runs next is decided by the fair order of
``app.services.preflight.lifecycle`` (the least pre-flight time in the last hour first), so even many
accounts keeping the workers busy cannot push another trainee's pre-flight back by more than one pre-flight.

Both live in the database (``preflight_leases``, ``preflight_runs``), so they hold across every web
process and worker. The lease is a row keyed by the trainee: inserting it is the atomic "is one
already running?" test on SQLite (under the write lock) and PostgreSQL (a primary-key conflict)
alike. If the process holding it dies, the lease expires after ``preflight_lease_s``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import anyio
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.models import Preflight, PreflightLease, PreflightRun
from app.settings import Settings
from scorer.errors import ErrorCode

RATE_WINDOW = dt.timedelta(hours=1)


class PreflightRefused(Exception):
    """The trainee may not start a pre-flight now; ``retry_at`` says when they may."""

    def __init__(self, reason: Literal["busy", "rate"], retry_at: dt.datetime, now: dt.datetime, limit: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_at = retry_at
        self.limit = limit
        self.retry_after_s = max(1, int((retry_at - now).total_seconds() + 0.999))


@dataclass(frozen=True)
class Lease:
    user_id: int
    token: str


def _refusal(db: Session, user_id: int, settings: Settings, now: dt.datetime) -> PreflightRefused | None:
    """Why the trainee may not start a pre-flight now; None when they may."""
    held = db.get(PreflightLease, user_id)
    if held is not None and held.expires_at > now:
        return PreflightRefused("busy", min(held.expires_at, now + dt.timedelta(minutes=1)), now, 1)
    retry_at = _rate_reached(db, user_id, settings, now)
    if retry_at is not None:
        return PreflightRefused("rate", retry_at, now, settings.preflight_per_hour)
    return None


def peek(factory: sessionmaker[Session], user_id: int, settings: Settings, now: dt.datetime) -> None:
    """Raise :class:`PreflightRefused` when :func:`acquire` would refuse now. A plain read, taking
    nothing: the upload asks before it reads the body, so a busy or rate-limited trainee's 100 MB is
    never received; only :func:`acquire` decides."""
    with factory() as db:
        refusal = _refusal(db, user_id, settings, now)
    if refusal is not None:
        raise refusal


def acquire(factory: sessionmaker[Session], user_id: int, settings: Settings, now: dt.datetime) -> Lease:
    """Take the trainee's pre-flight turn, or raise :class:`PreflightRefused` (blocking: run in a thread)."""
    token = secrets.token_hex(16)
    try:
        with transaction(factory, write_lock=True) as db:
            expired = (PreflightLease.user_id == user_id, PreflightLease.expires_at <= now)
            db.execute(delete(PreflightLease).where(*expired))
            refusal = _refusal(db, user_id, settings, now)
            if refusal is not None:
                raise refusal
            expires = now + dt.timedelta(seconds=settings.preflight_lease_s)
            db.add(PreflightLease(user_id=user_id, token=token, started_at=now, expires_at=expires))
            db.add(PreflightRun(user_id=user_id, created_at=now))
            db.flush()  # PostgreSQL: a concurrent lease for this trainee conflicts here
    except IntegrityError:
        raise PreflightRefused("busy", now + dt.timedelta(minutes=1), now, 1) from None
    return Lease(user_id, token)


def _rate_reached(db: Session, user_id: int, settings: Settings, now: dt.datetime) -> dt.datetime | None:
    """When the trainee may start a pre-flight again, if their pre-flights in the last hour reach the rate;
    None when they may now. Each pre-flight counts 1, one that timed out ``preflight_timeout_weight``."""
    since = now - RATE_WINDOW
    counted = [
        (at, 1)
        for at in db.scalars(
            select(PreflightRun.created_at).where(PreflightRun.user_id == user_id, PreflightRun.created_at > since)
        )
    ]
    verdicts = db.execute(
        select(Preflight.created_at, Preflight.verdict).where(
            Preflight.user_id == user_id, Preflight.created_at > since, Preflight.verdict.is_not(None)
        )
    ).all()
    extra = settings.preflight_timeout_weight - 1
    counted += [(at, extra) for at, verdict in verdicts if extra and timed_out(verdict)]
    total = sum(weight for _, weight in counted)
    for at, weight in sorted(counted):  # the oldest leave the window first
        if total < settings.preflight_per_hour:
            break
        total -= weight
        if total < settings.preflight_per_hour:
            return at + RATE_WINDOW
    return None


def timed_out(verdict: object) -> bool:
    """A pre-flight verdict (``PreflightVerdict.to_json()``) of a pre-flight stopped by the smoke time limit."""
    error = verdict.get("error") if isinstance(verdict, dict) else None
    return isinstance(error, dict) and error.get("code") == ErrorCode.TIME_LIMIT.value


def release(factory: sessionmaker[Session], lease: Lease) -> None:
    with transaction(factory) as db:
        db.execute(
            delete(PreflightLease).where(PreflightLease.user_id == lease.user_id, PreflightLease.token == lease.token)
        )


@asynccontextmanager
async def turn(
    factory: sessionmaker[Session], user_id: int, settings: Settings, clock: Callable[[], dt.datetime]
) -> AsyncIterator[None]:
    """Hold the trainee's pre-flight turn for the block; raises :class:`PreflightRefused` on entry."""
    now = clock()
    lease = await anyio.to_thread.run_sync(acquire, factory, user_id, settings, now)
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):  # a dropped client must not keep the turn
            await anyio.to_thread.run_sync(release, factory, lease)


def purge_old_runs(db: Session, now: dt.datetime) -> int:
    """Forget runs older than the rate's window and expired leases; for the periodic sweep."""
    runs = db.execute(delete(PreflightRun).where(PreflightRun.created_at <= now - RATE_WINDOW))
    db.execute(delete(PreflightLease).where(PreflightLease.expires_at <= now))
    return int(runs.rowcount or 0)  # type: ignore[attr-defined]
