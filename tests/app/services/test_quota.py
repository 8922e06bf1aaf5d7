"""The daily limit, through the real service function on real databases.

The concurrency test runs 20 transactions at once from threads released together by a barrier:
on SQLite they serialise on ``BEGIN IMMEDIATE``, on PostgreSQL on the user's row lock. Exactly three
must be queued either way.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import make_engine, make_sessionmaker
from app.models import Submission
from app.services.quota import next_reset, quota_day
from app.services.storage import ReceivedUpload
from app.services.submissions import SubmissionRefused, create_queued
from app.settings import Settings
from tests.app.conftest import People

TOKYO = ZoneInfo("Asia/Tokyo")


def _upload(i: int = 0) -> ReceivedUpload:
    sha = f"{i:064x}"
    return ReceivedUpload(original_filename=f"s{i}.zip", sha256=sha, size=10, storage_key=f"zips/{sha[:2]}/{sha}.zip")


def _tokyo(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=TOKYO).astimezone(dt.UTC)


def test_twenty_simultaneous_uploads_queue_exactly_three(settings: Settings, people: People) -> None:
    engine = (
        make_engine(settings.database_url, pool_size=25, max_overflow=0)
        if not settings.is_sqlite
        else make_engine(settings.database_url)
    )
    factory = make_sessionmaker(engine)
    barrier = threading.Barrier(20)
    now = _tokyo("2026-11-24T12:00:00")

    def attempt(i: int) -> str:
        barrier.wait()
        try:
            _spend(factory, people, now, i)
        except SubmissionRefused as exc:
            return exc.reason
        return "queued"

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    with factory() as db:
        queued = db.scalar(select(func.count()).select_from(Submission).where(Submission.user_id == people.trainee.id))
    engine.dispose()
    assert outcomes.count("queued") == 3
    assert outcomes.count("quota") == 17
    assert queued == 3


def _spend(factory: object, people: People, now: dt.datetime, i: int = 0) -> Submission:
    return create_queued(
        factory,
        user_id=people.trainee.id,
        cohort_id=people.cohort.id,
        upload=_upload(i),
        validation_accuracy=None,
        now=now,
    )  # type: ignore[arg-type]


@pytest.fixture
def factory(settings: Settings):  # type: ignore[no-untyped-def]
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_the_day_starts_at_midnight_in_tokyo(factory, people: People) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        _spend(factory, people, _tokyo("2026-11-24T23:58:00"), i)
    with pytest.raises(SubmissionRefused) as refused:
        _spend(factory, people, _tokyo("2026-11-24T23:59:59"), 3)
    assert refused.value.quota is not None
    assert refused.value.quota.resets_at == _tokyo("2026-11-25T00:00:00")
    # One second later it is a new day in Tokyo (still the 24th, 15:00, in UTC).
    after = _tokyo("2026-11-25T00:00:00")
    assert after.date() == dt.date(2026, 11, 24)
    row = _spend(factory, people, after, 4)
    assert row.quota_day == dt.date(2026, 11, 25)


def test_a_cohort_timezone_and_limit_are_its_own(factory, people: People, db: Session) -> None:  # type: ignore[no-untyped-def]
    people.cohort.timezone = "Europe/Berlin"
    people.cohort.daily_limit = 1
    db.commit()
    _spend(factory, people, dt.datetime(2026, 11, 24, 22, 30, tzinfo=dt.UTC), 0)  # 23:30 in Berlin
    with pytest.raises(SubmissionRefused):
        _spend(factory, people, dt.datetime(2026, 11, 24, 22, 50, tzinfo=dt.UTC), 1)
    _spend(factory, people, dt.datetime(2026, 11, 24, 23, 1, tzinfo=dt.UTC), 2)  # 00:01 in Berlin


def test_a_returned_slot_can_be_spent_again(factory, people: People) -> None:  # type: ignore[no-untyped-def]
    now = _tokyo("2026-11-24T10:00:00")
    rows = [_spend(factory, people, now, i) for i in range(3)]
    with pytest.raises(SubmissionRefused):
        _spend(factory, people, now, 3)
    with factory() as db:  # the worker does this when a failure was the server's fault
        row = db.get(Submission, rows[0].id)
        row.counts_toward_limit = False
        db.commit()
    assert _spend(factory, people, now, 4).counts_toward_limit is True
    with pytest.raises(SubmissionRefused):
        _spend(factory, people, now, 5)


def test_reset_time_and_day_helpers() -> None:
    now = _tokyo("2026-11-24T20:48:00")
    assert quota_day(now, "Asia/Tokyo") == dt.date(2026, 11, 24)
    assert next_reset(now, "Asia/Tokyo") - now == dt.timedelta(hours=3, minutes=12)
    # A DST change day in Berlin: the next midnight is still a local midnight.
    berlin = dt.datetime(2026, 3, 28, 23, 30, tzinfo=dt.UTC)
    assert next_reset(berlin, "Europe/Berlin").astimezone(ZoneInfo("Europe/Berlin")).hour == 0
