"""Extra uploads for one trainee on one day, granted by an instructor or an admin.

A grant adds to that day's limit and nothing else: the count of used slots stays what it is, so
the upload page, the result email and the API all see the same "remaining" figure. Grants add up,
so a second grant on the same day gives more, and each one keeps who gave it and why.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import UploadGrant, utcnow

MAX_EXTRA_PER_GRANT = 50


def granted_uploads(session: Session, user_id: int, day: dt.date) -> int:
    """Extra uploads granted to ``user_id`` for ``day`` (0 when none): added to the daily limit."""
    total = session.scalar(
        select(func.coalesce(func.sum(UploadGrant.extra), 0)).where(
            UploadGrant.user_id == user_id, UploadGrant.day == day
        )
    )
    return int(total or 0)


def grant_uploads(
    session: Session,
    *,
    user_id: int,
    day: dt.date,
    extra: int,
    reason: str = "",
    granted_by_id: int | None = None,
    now: dt.datetime | None = None,
) -> UploadGrant:
    if not 1 <= extra <= MAX_EXTRA_PER_GRANT:
        raise ValueError(f"extra must be between 1 and {MAX_EXTRA_PER_GRANT}")
    grant = UploadGrant(
        user_id=user_id, day=day, extra=extra, reason=reason, granted_by_id=granted_by_id, created_at=now or utcnow()
    )
    session.add(grant)
    session.flush()
    return grant
