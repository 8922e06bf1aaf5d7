"""Each trainee's storage budget: what their zips may hold in the store before a submission names them.

A zip enters the store when its pre-flight starts, and until a submission names it, it is held
for the trainee who sent it:

- **pending**: a pre-flight under way, or a near-chance question waiting for "upload it anyway" (up to
  ``preflight_confirm_ttl_h``): the zip will be read again, so it stays;
- **support copies**: zips the pre-flight refused (or whose check failed), kept
  ``refused_upload_retention_s`` for support, then purged.

Unbounded, one trainee at the hourly pre-flight rate with 100 MB zips would hold 48 GB a day. So,
before a new zip enters the store, :func:`make_room` weighs it against
``upload_storage_budget_bytes``: the trainee's own support copies go first, oldest first (they are a
convenience for support, not the trainee's); if the pending zips alone leave no room, the upload is
refused (:class:`OverBudget`) with the time it would fit. :func:`peek` asks the same question from
the declared length before the body is read. Sizes are the zips' own; the same bytes count once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.models import Preflight, PreflightState, Submission
from app.services import storage
from app.services.preflight.lifecycle import PENDING, referenced_keys
from app.settings import Settings

SUPPORT_KEPT = (PreflightState.REFUSED, PreflightState.FAILED)  # zips kept for support a while


class OverBudget(Exception):
    """The trainee's pending zips leave no room for this one; ``retry_at`` is when they would."""

    def __init__(self, held: int, limit: int, retry_at: dt.datetime, now: dt.datetime) -> None:
        super().__init__("storage_budget")
        self.held, self.limit, self.retry_at = held, limit, retry_at
        self.retry_after_s = max(1, int((retry_at - now).total_seconds() + 0.999))


@dataclass(frozen=True)
class Held:
    """One stored zip held for the trainee."""

    key: str
    size: int
    pending: bool
    frees_at: dt.datetime  # when it stops being held if the trainee does nothing


def held_zips(db: Session, user_id: int, settings: Settings, now: dt.datetime) -> list[Held]:
    """The zips held for ``user_id`` now, each key once (pending if any of its pre-flights is)."""
    support_since = now - dt.timedelta(seconds=settings.refused_upload_retention_s)
    rows = db.execute(
        select(
            Preflight.storage_key, Preflight.zip_size, Preflight.state, Preflight.created_at,
            Preflight.updated_at,
        ).where(
            Preflight.user_id == user_id,
            or_(
                Preflight.state.in_(PENDING),
                and_(Preflight.state.in_(SUPPORT_KEPT), Preflight.created_at > support_since),
            ),
        ).order_by(Preflight.id)  # oldest first among equal times
    ).all()  # fmt: skip
    keys = {row.storage_key for row in rows}
    named = set(db.scalars(select(Submission.storage_key).where(Submission.storage_key.in_(keys)))) if keys else set()
    by_key: dict[str, Held] = {}
    for row in rows:
        if row.storage_key in named:  # kept for its submission whatever happens here
            continue
        frees_at = _frees_at(row.state, row.created_at, row.updated_at, settings)
        held = Held(row.storage_key, row.zip_size, row.state in PENDING, frees_at)
        known = by_key.get(held.key)
        if known is not None:
            held = Held(held.key, held.size, held.pending or known.pending, max(held.frees_at, known.frees_at))
        by_key[held.key] = held
    return list(by_key.values())


def _frees_at(state: str, created: dt.datetime, updated: dt.datetime, settings: Settings) -> dt.datetime:
    if state == PreflightState.CHECKING:  # settled within the wait, or given up then
        return created + dt.timedelta(seconds=settings.preflight_wait_s)
    if state == PreflightState.NEEDS_CONFIRMATION:
        return updated + dt.timedelta(hours=settings.preflight_confirm_ttl_h)
    return created + dt.timedelta(seconds=settings.refused_upload_retention_s)


def _refuse_unless_room(held: Iterable[Held], size: int, limit: int, now: dt.datetime) -> None:
    """Raise :class:`OverBudget` when the pending zips and ``size`` exceed ``limit``."""
    pending = sorted((h for h in held if h.pending), key=lambda h: h.frees_at)
    total = sum(h.size for h in pending)
    if total + size <= limit:
        return
    left = total
    for item in pending:  # the moment enough of them will have gone
        left -= item.size
        if left + size <= limit:
            raise OverBudget(total, limit, item.frees_at, now)
    raise AssertionError("a budget below the upload size is refused at start")  # pragma: no cover


def peek(factory: sessionmaker[Session], user_id: int, size: int, settings: Settings, now: dt.datetime) -> None:
    """Raise :class:`OverBudget` when a zip of ``size`` bytes could not fit even with every support
    copy gone: asked from the declared length, before the body is read."""
    with factory() as db:
        held = held_zips(db, user_id, settings, now)
    _refuse_unless_room(held, min(size, settings.upload_max_bytes), settings.upload_storage_budget_bytes, now)


def make_room(
    factory: sessionmaker[Session],
    user_id: int,
    key: str,
    size: int,
    settings: Settings,
    now: dt.datetime,
    *,
    written_before: float,
) -> int:
    """Make room for the zip ``key`` of ``size`` bytes in the trainee's budget, deleting their
    oldest support copies as needed, or raise :class:`OverBudget`; returns how many files went.

    A support copy is deleted only if nothing names it (``lifecycle.referenced_keys``) and it
    was not stored again at or after ``written_before`` (a concurrent upload of the same bytes).
    """
    with factory() as db:
        held = [h for h in held_zips(db, user_id, settings, now) if h.key != key]  # the same bytes: no more room
    limit = settings.upload_storage_budget_bytes
    _refuse_unless_room(held, size, limit, now)
    room = limit - size - sum(h.size for h in held if h.pending)
    support = sorted((h for h in held if not h.pending), key=lambda h: h.frees_at)
    total = sum(h.size for h in support)
    going: list[str] = []
    for item in support:
        if total <= room:
            break
        going.append(item.key)
        total -= item.size
    if not going:
        return 0
    assert settings.storage_dir is not None
    return storage.discard(
        settings.storage_dir, going, lambda batch: referenced_keys(factory, batch), written_before=written_before
    )
