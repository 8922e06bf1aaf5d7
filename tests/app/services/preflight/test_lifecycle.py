"""The pre-flight's fair order and its gate, on both databases: the trainee with the least
pre-flight time in the last hour is checked next, each check is claimed once, and a trainee whose
checks run into the time limit is throttled harder."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker
from app.models import Cohort, Preflight, Role, User
from app.services.preflight import gate, lifecycle
from app.settings import Settings

T0 = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
TIMED_OUT = {"ok": False, "error": {"code": "time_limit", "blame": "submission", "message": "x", "message_ja": "x"}}


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url, **({} if settings.is_sqlite else {"pool_size": 10}))
    yield make_sessionmaker(engine)
    engine.dispose()


def _people(factory: sessionmaker[Session], count: int) -> tuple[int, list[int]]:
    with factory.begin() as db:
        cohort = Cohort(name="dl_tokyo_9", title="DL 9")
        users = [User(email=f"t{i}@example.test", name=f"t{i}", role=Role.TRAINEE) for i in range(count)]
        db.add_all([cohort, *users])
        db.flush()
        return cohort.id, [user.id for user in users]


def _check(
    factory: sessionmaker[Session],
    cohort_id: int,
    user_id: int,
    created: dt.datetime,
    *,
    ran: tuple[dt.datetime, dt.datetime] | None = None,
    verdict: dict[str, object] | None = None,
) -> int:
    """A check created at ``created``; ``ran``: claimed and settled at those times (a past check)."""
    with factory.begin() as db:
        row = Preflight(
            user_id=user_id, cohort_id=cohort_id, state="refused" if ran else "checking", storage_key="k",
            zip_sha256="0" * 64, zip_size=1, original_filename="s.zip", created_at=created,
            updated_at=ran[1] if ran else created, started_at=ran[0] if ran else None, verdict=verdict,
        )  # fmt: skip
        db.add(row)
        db.flush()
        return row.id


def test_the_trainee_with_the_least_preflight_time_in_the_last_hour_is_checked_next(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    cohort_id, (busy, busier, fresh, long_ago) = _people(factory, 4)
    _check(factory, cohort_id, busy, at(-100), ran=(at(-100), at(-42)))  # 58 s of checks this hour
    _check(factory, cohort_id, busier, at(-200), ran=(at(-200), at(-82)))  # 118 s
    _check(factory, cohort_id, long_ago, at(-7200), ran=(at(-7200), at(-7100)))  # more than an hour ago
    waiting = {user: _check(factory, cohort_id, user, at(i)) for i, user in enumerate((busier, busy, fresh, long_ago))}
    claimed = [lifecycle.claim_next(factory, settings, at(10 + i)) for i in range(5)]
    # Nothing this hour: the longer wait first; then the least time used.
    assert claimed == [waiting[fresh], waiting[long_ago], waiting[busy], waiting[busier], None]


def test_a_check_running_now_counts_its_time_so_far(factory: sessionmaker[Session], settings: Settings) -> None:
    cohort_id, (running, other) = _people(factory, 2)
    with factory.begin() as db:  # claimed 30 s ago, not settled yet (it's running)
        db.add(Preflight(
            user_id=running, cohort_id=cohort_id, state="checking", storage_key="k", zip_sha256="1" * 64,
            zip_size=1, original_filename="s.zip", created_at=at(0), updated_at=at(0), started_at=at(0),
        ))  # fmt: skip
    with factory() as db:
        assert lifecycle.preflight_seconds(db, {running, other}, at(30)) == {running: 30.0}


def test_a_check_nobody_took_within_the_wait_is_not_started_any_more(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    cohort_id, (user,) = _people(factory, 1)
    _check(factory, cohort_id, user, at(0))
    assert lifecycle.claim_next(factory, settings, at(settings.preflight_wait_s + 1)) is None


def test_simultaneous_claims_take_each_check_once(factory: sessionmaker[Session], settings: Settings) -> None:
    cohort_id, users = _people(factory, 12)
    ids = {_check(factory, cohort_id, user, at(i)) for i, user in enumerate(users)}
    barrier = threading.Barrier(6)

    def worker(_: int) -> list[int]:
        barrier.wait()
        won = []
        while (preflight_id := lifecycle.claim_next(factory, settings, at(20))) is not None:
            won.append(preflight_id)
        return won

    with ThreadPoolExecutor(max_workers=6) as pool:
        claimed = [preflight_id for won in pool.map(worker, range(6)) for preflight_id in won]
    assert sorted(claimed) == sorted(ids)
    assert not lifecycle.claim(factory, claimed[0], at(30))  # and a claimed check is never claimed again
    with factory() as db:
        assert set(db.scalars(select(Preflight.started_at))) == {at(20)}


def test_checks_that_ran_into_the_time_limit_count_more_toward_the_hourly_rate(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    """20 checks an hour; one that timed out counts 5: four time-outs use up the hour."""
    assert (settings.preflight_per_hour, settings.preflight_timeout_weight) == (20, 5)
    cohort_id, (sleeper, honest) = _people(factory, 2)
    for i in range(4):
        lease = gate.acquire(factory, sleeper, settings, at(i * 100))
        _check(factory, cohort_id, sleeper, at(i * 100), ran=(at(i * 100), at(i * 100 + 60)), verdict=TIMED_OUT)
        gate.release(factory, lease)
    with pytest.raises(gate.PreflightRefused) as refused:
        gate.acquire(factory, sleeper, settings, at(400))
    assert refused.value.reason == "rate"
    # When the first time-out leaves the hour, 15 remain counted: the trainee may check again.
    assert refused.value.retry_at == at(3600)
    # The upload asks the same before it reads the body: the sleeper's next zip is never received.
    with pytest.raises(gate.PreflightRefused) as peeked:
        gate.peek(factory, sleeper, settings, at(400))
    assert (peeked.value.reason, peeked.value.retry_at) == ("rate", at(3600))
    gate.release(factory, gate.acquire(factory, sleeper, settings, at(3601)))
    # The same four checks, ended by their verdict rather than the limit, leave 16 checks this hour.
    for i in range(4):
        gate.release(factory, gate.acquire(factory, honest, settings, at(i * 100)))
        _check(factory, cohort_id, honest, at(i * 100), ran=(at(i * 100), at(i * 100 + 60)), verdict={"ok": False})
    gate.release(factory, gate.acquire(factory, honest, settings, at(400)))
