"""The result page of a waiting upload in a real browser (Chromium via Playwright) against a live
uvicorn: its place in the fair order and its expected wait follow the queue live, through the one
long-poll watcher of the site's process."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from app.models import Submission, SubmissionStatus
from tests.app.api.conftest import add_submission
from tests.app.conftest import PASSWORD, People
from tests.app.web.test_live_server import LiveServer, live_server  # noqa: F401 - a fixture
from tests.fixtures.browser import log_in_page


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_place_and_wait_on_a_waiting_page_follow_the_queue_live(
    browser: Browser,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    people: People,
    db: Session,
) -> None:
    now = dt.datetime.now(dt.UTC)
    # A run that took 30 s a while ago: what a run takes these days.
    done = add_submission(db, people.other_trainee, people.cohort, accuracy=0.9, at=now - dt.timedelta(hours=1))
    done.started_at, done.finished_at = now - dt.timedelta(minutes=50), now - dt.timedelta(minutes=50, seconds=-30)
    # Taro's upload waits first, Hanako's after it.
    ahead = add_submission(db, people.other_trainee, people.cohort, status=SubmissionStatus.QUEUED, at=now)
    mine = add_submission(
        db, people.trainee, people.cohort, status=SubmissionStatus.QUEUED, at=now + dt.timedelta(seconds=1)
    )
    db.commit()
    page = browser.new_page()
    log_in_page(page, live_server.url, people.trainee.email, PASSWORD)
    page.goto(f"{live_server.url}/submissions/{mine.id}")
    expect(page.get_by_test_id("queue-position")).to_have_attribute("data-position", "2")
    wait = page.get_by_test_id("wait")
    # One worker assumed (no Redis to ask): Taro's 30 s, then this run's 30 s.
    expect(wait).to_contain_text("結果はおよそ 1分00秒 後の見込みです（前に 1 件 × 1 件およそ 30秒")
    # A worker claims Taro's upload: the open page moves up without a reload by the trainee.
    row = db.get(Submission, ahead.id)
    assert row is not None
    row.status, row.started_at = SubmissionStatus.RUNNING, dt.datetime.now(dt.UTC)
    db.commit()
    expect(page.get_by_test_id("queue-position")).to_have_attribute("data-position", "1", timeout=30_000)
    # Taro's run is still ahead, now running: about its 30 s left, then this run's 30 s.
    expect(wait).to_contain_text("後の見込みです（前に 1 件 × 1 件およそ 30秒")
    assert "およそ 0秒" not in wait.inner_text()
