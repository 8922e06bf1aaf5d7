"""The scoring queue's fair order: the rule itself, the claims workers make by it on both databases,
and the place and wait a trainee is shown."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, write_lock
from app.models import Cohort, Enrollment, Role, Submission, SubmissionStatus, User
from app.services.progress import progress
from app.services.scoring_queue import (
    QueueWatch,
    RunTimes,
    Waiting,
    claim_next,
    fair_order,
    queue_state,
    read_snapshot,
    typical_run_seconds,
)
from app.settings import Settings

T0 = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def waiting(*uploads: str, cohort_of: Callable[[str], int] = lambda name: 1) -> list[Waiting]:
    """One waiting submission per letter, a second apart; the letter is the trainee."""
    return [Waiting(i + 1, ord(name[0]), cohort_of(name), at(i)) for i, name in enumerate(uploads)]


def names(order: list[Waiting]) -> str:
    return " ".join(chr(item.user_id) for item in order)


def test_a_trainees_later_uploads_wait_behind_other_trainees_first() -> None:
    assert names(fair_order(waiting(*"AAABC"), {}, {})) == "A B C A A"


def test_runs_a_trainee_already_has_count_as_ahead_of_them() -> None:
    # A's first upload is being scored (or was, since the oldest wait began): B and C go first.
    assert names(fair_order(waiting(*"AABC"), {ord("A"): 1}, {1: 1})) == "B C A A"


def test_cohorts_take_turns_between_trainees_with_as_many_runs() -> None:
    cohorts = {"a": 1, "b": 1, "c": 1, "X": 2, "Y": 2}
    order = fair_order(waiting(*"abcXY", cohort_of=cohorts.__getitem__), {}, {})
    assert names(order) == "a X b Y c"
    # Fewest runs ahead still comes first: a trainee's third upload waits behind every first one,
    # whichever cohort is smaller.
    order = fair_order(waiting(*"XXXabc", cohort_of={"X": 2, "a": 1, "b": 1, "c": 1}.__getitem__), {}, {})
    assert names(order) == "X a b c X X"


def test_the_order_is_the_same_from_any_starting_list() -> None:
    items = waiting(*"AABACBDD")
    assert fair_order(items, {}, {}) == fair_order(list(reversed(items)), {}, {})


# --- on the databases -----------------------------------------------------------------------------


@pytest.fixture
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    # Room for the concurrent claims below (PostgreSQL's default pool is 5 connections).
    engine = make_engine(settings.database_url, **({} if settings.is_sqlite else {"pool_size": 10}))
    yield make_sessionmaker(engine)
    engine.dispose()


def _trainees(factory: sessionmaker[Session], *letters: str) -> tuple[int, dict[str, int]]:
    with factory.begin() as db:
        cohort = Cohort(name="dl_tokyo_9", title="DL 9", daily_limit=10)
        db.add(cohort)
        db.flush()
        ids = {}
        for letter in letters:
            user = User(email=f"{letter.lower()}@example.test", name=letter, role=Role.TRAINEE)
            db.add(user)
            db.flush()
            db.add(Enrollment(user_id=user.id, cohort_id=cohort.id, role=Role.TRAINEE))
            ids[letter] = user.id
        return cohort.id, ids


def _upload(factory: sessionmaker[Session], cohort_id: int, user_id: int, when: dt.datetime) -> int:
    with factory.begin() as db:
        row = Submission(
            user_id=user_id, cohort_id=cohort_id, status=SubmissionStatus.QUEUED, created_at=when,
            quota_day=when.date(), original_filename="s.zip", zip_sha256="0" * 64, zip_size=1, storage_key="k",
        )  # fmt: skip
        db.add(row)
        db.flush()
        return row.id


def _claim(factory: sessionmaker[Session], worker: str, now: dt.datetime) -> int | None:
    with write_lock(factory) as db:
        return claim_next(
            db, {"status": SubmissionStatus.RUNNING, "started_at": now, "worker_hostname": worker,
                 "attempts": Submission.attempts + 1},
        )  # fmt: skip


def _finish(factory: sessionmaker[Session], submission_id: int, now: dt.datetime) -> None:
    with factory.begin() as db:
        db.execute(
            update(Submission)
            .where(Submission.id == submission_id)
            .values(status=SubmissionStatus.SUCCEEDED, finished_at=now)
        )


@pytest.fixture
def aaabc(factory: sessionmaker[Session]) -> tuple[dict[int, str], list[int]]:
    """Uploads A A A B C, in that order; which trainee each submission is, and their ids."""
    cohort_id, users = _trainees(factory, "A", "B", "C")
    uploads = [(letter, _upload(factory, cohort_id, users[letter], at(i))) for i, letter in enumerate("AAABC")]
    return {sid: letter for letter, sid in uploads}, [sid for _, sid in uploads]


def test_one_worker_claims_a_a_a_b_c_as_a_b_c_a_a(
    factory: sessionmaker[Session], aaabc: tuple[dict[int, str], list[int]]
) -> None:
    trainee_of, _ = aaabc
    served = []
    for i in range(5):
        claimed = _claim(factory, "w1", at(10 + 2 * i))
        assert claimed is not None
        served.append(trainee_of[claimed])
        _finish(factory, claimed, at(11 + 2 * i))
    assert " ".join(served) == "A B C A A"
    assert _claim(factory, "w1", at(30)) is None  # nothing waits: the wake-up does nothing


def test_the_place_shown_is_the_place_in_the_order_claims_follow(
    factory: sessionmaker[Session], aaabc: tuple[dict[int, str], list[int]]
) -> None:
    _, (a1, a2, a3, b1, c1) = aaabc
    with factory() as db:
        snapshot = read_snapshot(db)
    assert [snapshot.position(sid) for sid in (a1, a2, a3, b1, c1)] == [1, 4, 5, 2, 3]
    # Two workers, runs of 40 s: A1 and B1 start now, C1 and A2 when those end, A3 after that.
    assert snapshot.starts_in(RunTimes({}, 40.0), 2, at(10)) == {a1: 0.0, b1: 0.0, c1: 40.0, a2: 40.0, a3: 80.0}
    first = _claim(factory, "w1", at(10))
    assert first == a1
    with factory() as db:
        snapshot = read_snapshot(db)
    assert [snapshot.position(sid) for sid in (a2, a3, b1, c1)] == [3, 4, 1, 2]
    assert snapshot.runs_ahead(a2) == 3  # B1 and C1 wait before it, and A1 runs
    # One worker: A1 has run 10 of its 40 s; B1 starts in 30 s, C1 in 70, A2 in 110.
    starts = snapshot.starts_in(RunTimes({}, 40.0), 1, at(20))
    assert (starts[b1], starts[c1], starts[a2]) == (30.0, 70.0, 110.0)


def test_a_look_uses_the_watchers_reading_and_reads_again_for_an_upload_made_since(
    factory: sessionmaker[Session], aaabc: tuple[dict[int, str], list[int]]
) -> None:
    _, (_a1, a2, _a3, _b1, c1) = aaabc
    watch = QueueWatch(lambda: 1, seen_max_age_s=60.0)
    with factory() as db:
        watch.saw(db, queue_state(db))  # the long-poll watcher's reading: the order computed once
        assert watch.orders == 1
        row = db.get(Submission, a2)
        assert row is not None
        assert progress(db, row, watch, at(10)).queue_position == 4
        assert watch.orders == 1  # the look took the order computed for that reading
    # C uploads again after that reading: their page reads the queue afresh, not "no place".
    later = _upload(factory, _cohort_of(factory, c1), _user_of(factory, c1), at(9))
    with factory() as db:
        row = db.get(Submission, later)
        assert row is not None
        state = progress(db, row, watch, at(10))
    assert (state.queue_position, state.runs_ahead) == (5, 4)  # A1 B1 C1 A2, then C's second
    assert watch.orders == 2


def _cohort_of(factory: sessionmaker[Session], submission_id: int) -> int:
    with factory() as db:
        return int(db.scalars(select(Submission.cohort_id).where(Submission.id == submission_id)).one())


def _user_of(factory: sessionmaker[Session], submission_id: int) -> int:
    with factory() as db:
        return int(db.scalars(select(Submission.user_id).where(Submission.id == submission_id)).one())


def test_two_workers_claiming_at_once_take_each_submission_once_in_the_fair_order(
    factory: sessionmaker[Session], aaabc: tuple[dict[int, str], list[int]]
) -> None:
    """Pairs of claims race (threads released together); each pair's runs end before the next."""
    _, (a1, a2, a3, b1, c1) = aaabc
    rounds: list[set[int]] = []
    for round_ in range(3):
        barrier, when = threading.Barrier(2), at(10 + round_ * 10)

        def race(worker: str, barrier: threading.Barrier = barrier, when: dt.datetime = when) -> int | None:
            barrier.wait()
            return _claim(factory, worker, when)

        with ThreadPoolExecutor(max_workers=2) as pool:
            pair = [sid for sid in pool.map(race, ("w1", "w2")) if sid is not None]
        assert len(pair) == len(set(pair))
        rounds.append(set(pair))
        for sid in pair:
            _finish(factory, sid, at(15 + round_ * 10))
    # Both workers' first runs go to A and B, then C's first and A's second, then A's third.
    assert rounds == [{a1, b1}, {c1, a2}, {a3}]
    with factory() as db:
        assert db.scalars(select(Submission.attempts)).all() == [1] * 5  # every upload exactly once


def test_twenty_claims_at_once_never_take_a_submission_twice(factory: sessionmaker[Session]) -> None:
    cohort_id, users = _trainees(factory, *"ABCDEFGH")
    ids = [_upload(factory, cohort_id, users[letter], at(i)) for i, letter in enumerate("ABCDEFGH" * 2)]
    barrier = threading.Barrier(8)

    def race(worker: int) -> list[int]:
        barrier.wait()
        won = []
        while (sid := _claim(factory, f"w{worker}", at(60))) is not None:
            won.append(sid)
        return won

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(race, range(8)))
    claimed = [sid for won in results for sid in won]
    assert sorted(claimed) == sorted(ids)
    with factory() as db:
        assert set(db.scalars(select(Submission.attempts))) == {1}


def test_the_wait_shown_is_runs_ahead_times_the_typical_run_over_live_workers(
    factory: sessionmaker[Session], aaabc: tuple[dict[int, str], list[int]]
) -> None:
    _, ids = aaabc
    a3 = ids[2]
    with factory.begin() as db:  # earlier runs of 30 s, 50 s and a 0.2 s failure: the median is 30 s
        cohort_id = db.scalar(select(Cohort.id))
        user_id = db.scalar(select(User.id).where(User.name == "B"))
        for seconds in (30, 50, 0.2):
            db.add(Submission(
                user_id=user_id, cohort_id=cohort_id, status=SubmissionStatus.SUCCEEDED, created_at=at(-900),
                quota_day=T0.date(), original_filename="old.zip", zip_sha256="1" * 64, zip_size=1, storage_key="k",
                started_at=at(-800), finished_at=at(-800 + seconds),
            ))  # fmt: skip
    watch = QueueWatch(lambda: 2)
    with factory() as db:
        row = db.get(Submission, a3)
        assert row is not None
        state = progress(db, row, watch, at(10))
    assert (state.queue_position, state.runs_ahead, state.estimate_s, state.scoring_workers) == (5, 4, 30.0, 2)
    # A1 and B1 start now, C1 and A2 at 30 s, A3 at 60 s: its result at about 90 s.
    assert state.wait_s == 90.0
    assert state.to_json(at(10))["wait_s"] == 90.0
    with factory() as db:
        row = db.get(Submission, a3)
        assert row is not None
        alone = progress(db, row, QueueWatch(lambda: 0), at(10))
    assert alone.wait_s is None  # no live scoring worker: no promise, the submission just waits


def test_each_runtime_is_timed_by_its_own_recent_runs(factory: sessionmaker[Session]) -> None:
    """A TensorFlow run takes longer than a NumPy one: a waiting run counts its own runtime's median;
    a runtime with no runs yet counts what recent runs of any runtime took."""
    cohort_id, users = _trainees(factory, "A", "B")
    with factory.begin() as db:
        for seconds, name in ((30, None), (32, "numpy"), (90, "tensorflow"), (95, "tensorflow"), (88, "tensorflow")):
            recorded = {"name": name} if name else {"python": "3.11"}  # no name: made before there were two
            db.add(Submission(
                user_id=users["B"], cohort_id=cohort_id, status=SubmissionStatus.SUCCEEDED, created_at=at(-900),
                quota_day=T0.date(), original_filename="old.zip", zip_sha256="1" * 64, zip_size=1, storage_key="k",
                started_at=at(-800), finished_at=at(-800 + seconds), runtime=recorded,
            ))  # fmt: skip
    keras = _upload(factory, cohort_id, users["A"], at(0))
    numpy = _upload(factory, cohort_id, users["B"], at(1))
    with factory.begin() as db:
        row = db.get(Submission, keras)
        assert row is not None
        row.runtime = {"name": "tensorflow"}  # the pre-flight's choice, recorded before the run
    with factory() as db:
        times = typical_run_seconds(db)
        assert (times.of("numpy"), times.of("tensorflow"), times.of("jax")) == (31.0, 90.0, 88.0)
        snapshot = read_snapshot(db)
        waiting = db.get(Submission, numpy)
        assert waiting is not None
        state = progress(db, waiting, QueueWatch(lambda: 1), at(10))
    # One worker: the Keras run first (90 s), then this NumPy one (31 s).
    assert snapshot.starts_in(times, 1, at(10)) == {keras: 0.0, numpy: 90.0}
    assert (state.estimate_s, state.wait_s) == (31.0, 121.0)
