"""What held long polls cost: a cap per user, one watcher's query per tick for every waiting page,
and no writes. In-process, on both databases; the latency other users see while one user holds
hundreds of polls is measured against the real server in ``test_long_poll_live.py``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.main import create_app
from app.models import Submission, SubmissionStatus, User
from app.services.scoring_queue import QueueWatch
from app.settings import Settings
from app.web.long_poll import HeldPolls
from tests.app.api.conftest import add_submission
from tests.app.conftest import Checker, Clock, People, login, make_zip, upload
from tests.fixtures.services import wait_for


@pytest.fixture
def capped(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"long_poll_per_user": 3}), clock=clock, enqueue=lambda _id: None)
    with TestClient(app, base_url="http://testserver") as client:
        yield client


def _queued(db: Session, people: People, user: User | None = None) -> int:
    row = add_submission(db, user or people.trainee, people.cohort, status=SubmissionStatus.QUEUED)
    db.commit()
    return row.id


def _finish(db: Session, submission_id: int) -> None:
    row = db.get(Submission, submission_id)
    assert row is not None
    row.status, row.accuracy = SubmissionStatus.SUCCEEDED, 0.9
    db.commit()


@contextmanager
def _polls(client: TestClient, urls: list[str], known: str = "queued:1") -> Iterator[list[httpx.Response]]:
    """Long polls of ``urls`` through ``client`` (the app's own event loop), one thread each, held
    until the block ends; their answers."""
    answers: list[httpx.Response] = []

    def poll(url: str) -> None:
        answers.append(client.get(url, params={"known": known, "wait": 25}))

    threads = [threading.Thread(target=poll, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    try:
        yield answers
    finally:
        for thread in threads:
            thread.join(60)


def _held(client: TestClient, user: User) -> int:
    return int(client.app.state.held_polls.held(user.id))  # type: ignore[attr-defined]


def test_a_user_holds_at_most_the_cap_and_is_answered_at_once_past_it(
    capped: TestClient, people: People, db: Session
) -> None:
    mine = _queued(db, people)
    login(capped, people.trainee.email)
    url = f"/submissions/{mine}/status"
    with _polls(capped, [url] * 3) as held:
        wait_for(lambda: _held(capped, people.trainee) == 3, "three polls to be held")
        over = capped.get(url, params={"known": "queued:1", "wait": 25})
        assert over.status_code == 200 and over.json()["fingerprint"] == "queued:1"  # the state as it is
        assert 10 <= int(over.headers["Retry-After"]) <= 20  # live.js asks again after it, not at once
        assert capped.get(url, params={"known": "queued:1"}).status_code == 200  # not waiting: not capped
        _finish(db, mine)  # every held page learns of it within a tick
    assert [a.json()["status"] for a in held] == ["succeeded"] * 3 and "Retry-After" not in held[0].headers
    assert _held(capped, people.trainee) == 0


def test_the_cap_is_each_users_own() -> None:
    polls = HeldPolls(per_user=1)
    with polls.hold(1) as first, polls.hold(1) as second, polls.hold(2) as others:
        assert (first, second, others) == (True, False, True)
        assert polls.held(1) == 1 and polls.held(2) == 1
    assert polls.held(1) == 0 and polls.held(2) == 0


@contextmanager
def _statements(app: FastAPI) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs during the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.strip().upper())

    engine = app.state.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _writes(statements: list[str]) -> list[str]:
    verbs = ("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE")
    return [s for s in statements if s.startswith(verbs) or "FOR UPDATE" in s]


def test_waiting_pages_cost_one_query_per_tick_together_and_write_nothing(
    client: TestClient, people: People, db: Session
) -> None:
    people.cohort.daily_limit = 20
    ids = [_queued(db, people) for _ in range(20)]
    login(client, people.trainee.email)
    app: FastAPI = client.app  # type: ignore[assignment]
    watcher = app.state.submission_watcher
    known = [f"queued:{n}" for n in range(1, 21)]
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda sid=sid, k=k: answers.append(
                client.get(f"/submissions/{sid}/status", params={"known": k, "wait": 25})
            )
        )
        for sid, k in zip(ids, known, strict=True)
    ]
    with _statements(app) as seen:
        for thread in threads:
            thread.start()
        wait_for(lambda: _held(client, people.trainee) == 4, "four polls held (the default cap)")
        # Past the cap (4), the other 16 were answered at once; the four held ones wait.
        wait_for(lambda: len(answers) == 16, "the polls past the cap to be answered")
        before, reads = len(seen), watcher.reads
        wait_for(lambda: watcher.reads >= reads + 20, "twenty ticks of the watcher")
        during, ticks = seen[before:], watcher.reads - reads
        _finish(db, ids[0])  # the queue moves: the four held pages are woken and answered
        for thread in threads:
            thread.join(60)
    selects = [s for s in during if s.startswith("SELECT")]
    marks = [
        s for s in selects if s.startswith(("SELECT SUBMISSIONS.ID, SUBMISSIONS.STATUS", "SELECT SUBMISSIONS.STATUS"))
    ]
    # Four pages held through twenty ticks: the watcher's two SELECTs a tick (states, queue) for all of
    # them, and at most each page's own look once as it settles in (it may fall in this stretch);
    # not a look per page per tick (four pages x several SELECTs x each tick, as it was).
    assert len(marks) <= 2 * (ticks + 1), (ticks, marks)
    assert len(selects) - len(marks) <= 4 * 6, selects
    assert _writes(seen) == []  # a poll never writes, nor takes the write lock
    assert all(a.status_code == 200 for a in answers) and len(answers) == 20


def test_a_check_page_poll_takes_no_write_lock_while_the_check_runs(
    settings: Settings, clock: Clock, people: People
) -> None:
    hold = threading.Event()

    class Held(Checker):
        def __call__(self, zip_path: Any) -> Any:
            hold.wait(60)
            return super().__call__(zip_path)

    live = settings.model_copy(update={"preflight_inline_wait_s": 0.0})
    app = create_app(live, clock=clock, preflight_checker=Held(), enqueue=lambda _id: None)
    with TestClient(app, base_url="http://testserver") as client:
        login(client, people.trainee.email)
        response = upload(client, make_zip())
        assert response.status_code == 202
        url = response.json()["status_url"]
        watcher = app.state.preflight_watcher
        with _statements(app) as seen:
            done: list[dict[str, Any]] = []
            poller = threading.Thread(
                target=lambda: done.append(client.get(url, params={"known": "checking", "wait": 25}).json())
            )
            poller.start()
            wait_for(lambda: _held(client, people.trainee) == 1, "the check page's poll to be held")
            reads = watcher.reads
            wait_for(lambda: watcher.reads >= reads + 5, "five ticks of the watcher")
            assert _writes(seen) == []  # not on any tick of a check that is still being checked
            hold.set()  # the verdict: the page is answered with it
            poller.join(60)
        assert done and done[0]["state"] == "accepted" and done[0]["final"] is True


def test_pages_woken_by_the_queue_take_their_place_from_the_watchers_reading(
    settings: Settings, clock: Clock, people: People, db: Session
) -> None:
    """The fair order a waiting page shows is computed once per change of the queue, by the watcher
    that noticed the change, and the pages it wakes read nothing of the queue themselves."""
    people.cohort.daily_limit = 20
    first, *rest = [_queued(db, people) for _ in range(4)]
    app = create_app(settings, clock=clock, enqueue=lambda _id: None)
    # The watcher's reading is trusted for a minute here, so that a slow machine cannot turn a
    # page's look into a reading of its own (the default is a second).
    queue = QueueWatch(lambda: 1, seen_max_age_s=60.0)
    app.state.scoring_queue = queue
    with TestClient(app, base_url="http://testserver") as client:
        login(client, people.trainee.email)
        watcher = app.state.submission_watcher
        urls = [f"/submissions/{sid}/status" for sid in rest]
        known = {url: f"queued:{place}" for place, url in enumerate(urls, start=2)}
        answers: list[httpx.Response] = []
        threads = [
            threading.Thread(target=lambda u=url: answers.append(client.get(u, params={"known": known[u], "wait": 25})))
            for url in urls
        ]
        for thread in threads:
            thread.start()
        wait_for(lambda: _held(client, people.trainee) == 3, "the three pages to be held")
        reads = watcher.reads
        wait_for(lambda: watcher.reads >= reads + 3, "the watcher to have read the queue")
        with _statements(app) as seen:
            reads, orders = watcher.reads, queue.orders
            row = db.get(Submission, first)
            assert row is not None
            row.status, row.started_at = SubmissionStatus.RUNNING, clock()  # a worker claims the first
            db.commit()
            for thread in threads:
                thread.join(60)
            ticks = watcher.reads - reads
    assert sorted(a.json()["fingerprint"] for a in answers) == ["queued:1", "queued:2", "queued:3"]
    assert all(a.json()["runs_ahead"] == a.json()["queue_position"] for a in answers)  # one running ahead
    made_up = [s for s in seen if s.startswith("SELECT SUBMISSIONS.STATUS, COUNT(")]
    assert len(made_up) <= ticks + 1, (ticks, made_up)  # the watcher's reading alone, none per page
    assert queue.orders == orders + 1  # the new order computed once, not once per page woken
