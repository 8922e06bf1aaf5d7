"""The daily upload limit: which day an upload counts on, how many are left, when the count resets.

The day is the cohort's local calendar day (00:00 Asia/Tokyo by default), recorded on each
submission as ``quota_day`` so that counting is a plain equality, independent of the server's time
zone. Only submissions with ``counts_toward_limit`` count: the worker clears it when a failure was
the server's fault, which gives the slot back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Cohort, Submission
from app.services.grants import granted_uploads


@dataclass(frozen=True)
class QuotaStatus:
    limit: int
    used: int
    day: dt.date
    resets_at: dt.datetime  # UTC
    timezone: str

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def resets_in(self, now: dt.datetime) -> dt.timedelta:
        return max(dt.timedelta(0), self.resets_at - now)


def quota_day(now: dt.datetime, timezone: str) -> dt.date:
    return now.astimezone(ZoneInfo(timezone)).date()


def next_reset(now: dt.datetime, timezone: str) -> dt.datetime:
    """The next local midnight, in UTC (computed in local time, so DST days are handled)."""
    zone = ZoneInfo(timezone)
    tomorrow = now.astimezone(zone).date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(0), tzinfo=zone).astimezone(dt.UTC)


def used_slots(db: Session, user_id: int, day: dt.date) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(Submission)
            .where(
                Submission.user_id == user_id,
                Submission.quota_day == day,
                Submission.counts_toward_limit.is_(True),
            )
        )
        or 0
    )


def quota_status(db: Session, user_id: int, cohort: Cohort, now: dt.datetime) -> QuotaStatus:
    day = quota_day(now, cohort.timezone)
    return QuotaStatus(
        limit=cohort.daily_limit + granted_uploads(db, user_id, day),
        used=used_slots(db, user_id, day),
        day=day,
        resets_at=next_reset(now, cohort.timezone),
        timezone=cohort.timezone,
    )
