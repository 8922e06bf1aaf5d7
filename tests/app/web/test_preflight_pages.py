"""Uploads answer before their pre-flight verdict, and the check's page follows it live.

The inline budget is 0 here, so every upload answers with its check; the checker is an in-process
stand-in that waits for the test's go (the worker's own path is in tests/worker/test_preflight.py).
The check is acted on by whoever runs it, through ``app.services.preflight.lifecycle.check_and_settle``.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.main import create_app
from app.models import Preflight, PreflightLease, SmokeConfirmation, Submission
from app.services.preflight import lifecycle
from app.services.preflight.verdict import PreflightVerdict
from app.services.quota import quota_status
from app.services.storage import path_for
from app.settings import Settings
from tests.app.conftest import Checker, Clock, People, csrf, login, make_zip, upload

NEAR_CHANCE = {"correct": 1, "total": 30, "accuracy": 1 / 30}


@dataclass
class GatedChecker:
    """The stand-in checker, held until the test lets it answer (so the upload surely answers first).
    A zip holding ``near.py`` scores near chance on the public images."""

    go: threading.Event = field(default_factory=threading.Event)
    inner: Checker = field(default_factory=Checker)

    def __call__(self, zip_path: Path) -> PreflightVerdict:
        assert self.go.wait(60), "the test never let the check answer"
        with zipfile.ZipFile(zip_path) as zf:
            if "near.py" in zf.namelist():
                return PreflightVerdict(ok=True, report={"smoke": NEAR_CHANCE})
        return self.inner(zip_path)


@pytest.fixture
def gated() -> GatedChecker:
    return GatedChecker()


@pytest.fixture
def live_app(settings: Settings, clock: Clock, gated: GatedChecker, enqueued: list[int]) -> FastAPI:
    live = settings.model_copy(update={"preflight_inline_wait_s": 0.0})
    return create_app(
        live, clock=clock, preflight_checker=gated, enqueue=enqueued.append, deliver_email=lambda _i: None
    )


@pytest.fixture
def live(live_app: FastAPI, gated: GatedChecker) -> Iterator[TestClient]:
    with TestClient(live_app, base_url="http://testserver") as client:
        yield client
        # Checks still running would hold the database while the fixtures drop it.
        gated.go.set()
        for thread in threading.enumerate():
            if thread.name.startswith("preflight-"):
                thread.join(60)


def _count(db: Session, model: type) -> int:
    db.rollback()  # a fresh transaction sees what the app committed
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def _settled(client: TestClient, url: str) -> dict[str, object]:
    """Follow the check's live feed (long poll) until it settles, as check.js does."""
    for _ in range(20):
        state: dict[str, object] = client.get(f"{url}/status", params={"known": "checking", "wait": 25}).json()
        if state["final"]:
            return state
    raise AssertionError("the check never settled")


def _pending(client: TestClient, data: bytes) -> str:
    response = upload(client, data)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "checking" and response.headers["Location"] == body["url"]
    return str(body["url"])


def test_the_upload_answers_before_the_verdict_and_the_page_follows_it_to_the_submission(
    live: TestClient, people: People, db: Session, gated: GatedChecker, enqueued: list[int]
) -> None:
    login(live, people.trainee.email)
    response = upload(live, make_zip(), json=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/uploads/preflights/")
    url = response.headers["location"]
    page = live.get(url)
    assert page.status_code == 200 and "確認しています" in page.text and 'src="/static/preflight.js"' in page.text
    assert 'http-equiv="refresh"' in page.text  # without JavaScript the page still moves on
    assert live.get(f"{url}/status").json()["state"] == "checking"
    assert _count(db, Submission) == 0  # nothing is spent before the verdict
    gated.go.set()
    state = _settled(live, url)
    assert state["state"] == "accepted"
    submission_id = int(str(state["submission_url"]).rsplit("/", 1)[1])
    assert enqueued == [submission_id]  # the check's runner sent it for scoring, not the page
    done = live.get(url, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/submissions/{submission_id}"
    assert live.get(url, headers={"Accept": "application/json"}, follow_redirects=False).status_code == 201


def test_the_old_check_paths_redirect_to_the_preflight_and_the_json_names_it_both_ways(
    live: TestClient, people: People, gated: GatedChecker
) -> None:
    """Tabs and scripts from before the rename: ``/uploads/checks/…`` answers 308 (method and body
    kept) to ``/uploads/preflights/…``, and the JSON still carries the deprecated ``check_id``."""
    login(live, people.trainee.email)
    response = upload(live, make_zip())
    body = response.json()
    preflight_id = int(str(body["url"]).rsplit("/", 1)[1])
    assert body["preflight_id"] == body["check_id"] == preflight_id
    for rest in ("", "/status?known=checking", "/confirm"):
        if rest == "/confirm":  # a form posted from an old tab carries its token
            form = {"csrf_token": live.cookies["katakana_csrf"]}
            old = live.post(f"/uploads/checks/{preflight_id}{rest}", data=form, follow_redirects=False)
        else:
            old = live.get(f"/uploads/checks/{preflight_id}{rest}", follow_redirects=False)
        assert old.status_code == 308 and old.headers["location"] == f"/uploads/preflights/{preflight_id}{rest}"
    # Without its token a post is refused before it is sent on, like every unsafe site route.
    assert live.post(f"/uploads/checks/{preflight_id}/confirm", follow_redirects=False).status_code == 403
    assert live.get(f"/uploads/checks/{preflight_id}/other", follow_redirects=False).status_code == 404
    state = live.get(f"/uploads/checks/{preflight_id}/status").json()  # followed to the new path
    assert state["preflight_id"] == state["check_id"] == preflight_id
    gated.go.set()


def test_a_refused_check_is_rendered_as_the_upload_page_renders_it_and_costs_nothing(
    live: TestClient, people: People, db: Session, gated: GatedChecker, enqueued: list[int]
) -> None:
    login(live, people.trainee.email)
    url = _pending(live, make_zip("broken.py"))
    gated.go.set()
    assert _settled(live, url)["state"] == "refused"
    page = live.get(url)
    assert page.status_code == 422
    assert "predict(test_data) が定義されていません" in page.text  # the pre-flight's detail, in Japanese
    assert 'id="upload-error"' in page.text and "static check failed" in page.text  # the log, as before
    error = live.get(url, headers={"Accept": "application/json"}).json()["error"]
    assert error["code"] == "preflight" and error["message_ja"] and error["message_en"]
    assert _count(db, Submission) == 0 and enqueued == []
    assert upload(live, make_zip(body=b"def predict(x):\n    return 1\n")).status_code in (201, 202)  # turn free


def test_near_chance_asks_on_the_check_page_and_confirming_accepts_without_a_new_upload(
    live: TestClient, people: People, db: Session, gated: GatedChecker, enqueued: list[int]
) -> None:
    login(live, people.trainee.email)
    url = _pending(live, make_zip("near.py"))
    gated.go.set()
    assert _settled(live, url)["state"] == "needs_confirmation"
    page = live.get(url)
    assert page.status_code == 409 and f'action="{url}/confirm"' in page.text
    assert "正しく分類できたのは 1 枚" in page.text
    assert _count(db, Submission) == 0
    refused = live.post(f"{url}/confirm", follow_redirects=False)  # no CSRF token
    assert refused.status_code in (400, 403) and _count(db, Submission) == 0
    confirmed = live.post(f"{url}/confirm", data={"csrf_token": csrf(live)}, follow_redirects=False)
    assert confirmed.status_code == 303 and confirmed.headers["location"].startswith("/submissions/")
    again = live.post(f"{url}/confirm", data={"csrf_token": csrf(live)}, follow_redirects=False)
    assert again.headers["location"] == confirmed.headers["location"]  # a second click spends nothing more
    assert _count(db, Submission) == 1 and len(enqueued) == 1
    assert _count(db, SmokeConfirmation) == 1  # the same zip will not ask again


def test_a_check_nobody_watches_is_still_scored(
    live_app: FastAPI, live: TestClient, people: People, db: Session, gated: GatedChecker, enqueued: list[int]
) -> None:
    login(live, people.trainee.email)
    url = _pending(live, make_zip())
    preflight_id = int(url.rsplit("/", 1)[1])
    gated.go.set()  # nobody polls from here on: the tab was closed
    runner = next(t for t in threading.enumerate() if t.name == f"preflight-{preflight_id}")
    runner.join(60)
    db.rollback()
    row = db.get(Preflight, preflight_id)
    assert row is not None and row.state == "accepted" and row.submission_id is not None
    assert enqueued == [row.submission_id]


def test_the_gate_holds_one_check_at_a_time_until_its_verdict_is_stored(
    live: TestClient, people: People, db: Session, gated: GatedChecker
) -> None:
    login(live, people.trainee.email)
    url = _pending(live, make_zip())
    busy = upload(live, make_zip(body=b"def predict(x):\n    return 2\n"))
    assert busy.status_code == 429 and busy.json()["error"]["code"] == "preflight_busy"
    assert busy.headers["Retry-After"]
    gated.go.set()
    _settled(live, url)
    assert _count(db, PreflightLease) == 0  # the verdict freed the turn
    assert upload(live, make_zip(body=b"def predict(x):\n    return 3\n")).status_code in (201, 202)


def test_another_trainee_gets_404_on_your_check(
    live: TestClient, people: People, gated: GatedChecker, db: Session
) -> None:
    login(live, people.trainee.email)
    url = _pending(live, make_zip("near.py"))
    gated.go.set()
    _settled(live, url)
    live.cookies.clear()
    login(live, people.other_trainee.email)
    assert live.get(url).status_code == 404
    assert live.get(f"{url}/status").status_code == 404
    assert live.post(f"{url}/confirm", data={"csrf_token": csrf(live)}).status_code == 404
    assert _count(db, Submission) == 0


def test_a_check_settled_twice_queues_one_submission(
    live_app: FastAPI, live: TestClient, people: People, db: Session, gated: GatedChecker, enqueued: list[int]
) -> None:
    """A pre-flight task delivered twice (acks_late) runs the same steps again: the second is a no-op."""
    login(live, people.trainee.email)
    url = _pending(live, make_zip())
    gated.go.set()
    _settled(live, url)
    preflight_id = int(url.rsplit("/", 1)[1])
    state = live_app.state
    lifecycle.check_and_settle(state.sessionmaker, state.settings, preflight_id, gated, enqueued.append, state.clock)
    verdict = PreflightVerdict(ok=True)
    again = lifecycle.settle(state.sessionmaker, preflight_id, verdict, near_chance_below=0.3, now=state.clock())
    assert again is None
    assert _count(db, Submission) == 1 and len(enqueued) == 1


def test_with_the_days_uploads_gone_by_the_verdict_the_check_is_refused_and_costs_nothing(
    live: TestClient, people: People, db: Session, gated: GatedChecker, clock: Clock
) -> None:
    people.cohort.daily_limit = 1
    db.commit()
    login(live, people.trainee.email)
    first = _pending(live, make_zip())
    gated.go.set()
    assert _settled(live, first)["state"] == "accepted"
    gated.go.clear()
    people.cohort.daily_limit = 2  # let the second upload in, then take the slot away before its verdict
    db.commit()
    second = _pending(live, make_zip(body=b"def predict(x):\n    return 4\n"))
    people.cohort.daily_limit = 1
    db.commit()
    gated.go.set()
    assert _settled(live, second)["state"] == "refused"
    response = live.get(second, headers={"Accept": "application/json"})
    assert response.status_code == 429 and response.json()["error"]["code"] == "quota"
    assert response.headers["Retry-After"]
    assert _count(db, Submission) == 1


def _near_chance_check(live: TestClient, gated: GatedChecker, db: Session, settings: Settings) -> tuple[str, Path]:
    """A settled near-chance check's URL and its stored zip, written before the check began (as an
    upload writes it): the file's age, not the test's wall clock, is what the expiry compares."""
    url = _pending(live, make_zip("near.py"))
    gated.go.set()
    assert _settled(live, url)["state"] == "needs_confirmation"
    db.rollback()
    row = db.get(Preflight, int(url.rsplit("/", 1)[1]))
    assert row is not None and settings.storage_dir is not None
    stored = path_for(settings.storage_dir, row.storage_key)
    written = (row.created_at - dt.timedelta(minutes=1)).timestamp()
    os.utime(stored, (written, written))
    return url, stored


def test_a_late_confirm_is_told_the_window_passed_in_both_languages_and_spends_nothing(
    live: TestClient, people: People, db: Session, gated: GatedChecker, clock: Clock, settings: Settings,
    enqueued: list[int],
) -> None:  # fmt: skip
    login(live, people.trainee.email)
    url, stored = _near_chance_check(live, gated, db, settings)
    clock.now += dt.timedelta(hours=settings.preflight_confirm_ttl_h, minutes=1)  # the sweep has not run
    late = live.post(f"{url}/confirm", data={"csrf_token": csrf(live)}, follow_redirects=False)
    assert late.status_code == 410
    assert "受付期限が過ぎた" in late.text and "もう一度アップロードしてください" in late.text
    assert f'action="{url}/confirm"' not in late.text  # no button that can no longer work
    error = live.get(url, headers={"Accept": "application/json"}).json()["error"]
    assert error["code"] == "confirmation_expired"
    assert "has passed" in error["message_en"] and "upload the zip again" in error["message_en"]
    assert "受付期限" in error["message_ja"]
    assert live.get(url).status_code == 410  # the page says the same, for good
    db.rollback()
    row = db.get(Preflight, int(url.rsplit("/", 1)[1]))
    assert row is not None and row.state == "expired" and row.submission_id is None
    assert not stored.exists()  # nothing will read it again
    assert _count(db, Submission) == 0 and enqueued == []
    assert quota_status(db, people.trainee.id, people.cohort, clock()).used == 0  # the day's uploads untouched


def test_the_check_page_expires_an_unconfirmed_check_once_its_window_is_over(
    live: TestClient, people: People, db: Session, gated: GatedChecker, clock: Clock, settings: Settings
) -> None:
    login(live, people.trainee.email)
    url, stored = _near_chance_check(live, gated, db, settings)
    clock.now += dt.timedelta(hours=settings.preflight_confirm_ttl_h, seconds=1)
    page = live.get(url)
    assert page.status_code == 410 and "受付期限が過ぎた" in page.text
    assert live.get(f"{url}/status").json()["state"] == "expired"
    assert not stored.exists() and _count(db, Submission) == 0


def test_a_check_within_its_window_is_left_alone_and_can_still_be_confirmed(
    live_app: FastAPI, live: TestClient, people: People, db: Session, gated: GatedChecker, clock: Clock,
    settings: Settings, enqueued: list[int],
) -> None:  # fmt: skip
    login(live, people.trainee.email)
    url, stored = _near_chance_check(live, gated, db, settings)
    clock.now += dt.timedelta(hours=settings.preflight_confirm_ttl_h, minutes=-1)
    assert lifecycle.expire_unconfirmed(live_app.state.sessionmaker, settings, clock()) == []  # the sweep
    page = live.get(url)
    assert page.status_code == 409 and f'action="{url}/confirm"' in page.text and stored.exists()
    confirmed = live.post(f"{url}/confirm", data={"csrf_token": csrf(live)}, follow_redirects=False)
    assert confirmed.status_code == 303 and _count(db, Submission) == 1 and len(enqueued) == 1
    assert lifecycle.expire_unconfirmed(live_app.state.sessionmaker, settings, clock() + dt.timedelta(days=2)) == []
    assert stored.exists()  # the submission reads it


def test_a_confirm_racing_the_expiry_has_exactly_one_outcome(
    live_app: FastAPI, live: TestClient, people: People, db: Session, gated: GatedChecker, clock: Clock,
    settings: Settings,
) -> None:  # fmt: skip
    """The trainee clicks just inside the window by the web process's clock while the sweeper, whose
    clock is a little ahead, expires the check: the write lock makes one of them find it settled."""
    login(live, people.trainee.email)
    url, stored = _near_chance_check(live, gated, db, settings)
    preflight_id = int(url.rsplit("/", 1)[1])
    factory = live_app.state.sessionmaker
    ttl = dt.timedelta(hours=settings.preflight_confirm_ttl_h)
    start = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def click() -> None:
        start.wait()
        outcomes["confirm"] = lifecycle.confirm(
            factory, people.trainee.id, preflight_id, clock() + ttl - dt.timedelta(seconds=1), settings=settings
        )

    def sweep() -> None:
        start.wait()
        outcomes["sweep"] = lifecycle.expire_unconfirmed(factory, settings, clock() + ttl + dt.timedelta(seconds=1))

    threads = [threading.Thread(target=click), threading.Thread(target=sweep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    confirmed = outcomes["confirm"]
    assert isinstance(confirmed, tuple)
    view, queued = confirmed
    db.rollback()
    row = db.get(Preflight, preflight_id)
    assert row is not None
    if outcomes["sweep"] == [preflight_id]:  # the sweep came first: the click found it expired
        assert row.state == view.state == "expired" and queued is None
        assert _count(db, Submission) == 0 and not stored.exists()
    else:  # the click came first: the sweep found nothing to expire
        assert outcomes["sweep"] == []
        assert row.state == view.state == "accepted" and queued == row.submission_id is not None
        assert _count(db, Submission) == 1 and stored.exists()


def _store(settings: Settings) -> list[tuple[str, int]]:
    """Every file under the storage folder (zips and part files), with its size."""
    assert settings.storage_dir is not None
    files = sorted(p for p in settings.storage_dir.rglob("*") if p.is_file())
    return [(p.relative_to(settings.storage_dir).as_posix(), p.stat().st_size) for p in files]


def test_a_busy_refusal_stores_nothing(
    live: TestClient, people: People, db: Session, gated: GatedChecker, settings: Settings
) -> None:
    login(live, people.trainee.email)
    _pending(live, make_zip())
    before = _store(settings)
    for i in range(3):
        busy = upload(live, make_zip(body=b"# another\n" * (100 + i)))
        assert busy.status_code == 429 and busy.json()["error"]["code"] == "preflight_busy"
    assert _store(settings) == before  # neither the store nor incoming/ kept a byte of them


def test_over_the_storage_budget_the_upload_is_refused_in_both_languages_and_stores_nothing(
    settings: Settings, clock: Clock, gated: GatedChecker, enqueued: list[int], people: People, db: Session
) -> None:
    """Three near-chance questions left unanswered fill a 5 KB budget; answering one makes room."""
    small = settings.model_copy(
        update={"preflight_inline_wait_s": 0.0, "upload_max_bytes": 2000, "upload_storage_budget_bytes": 5000}
    )
    app = create_app(small, clock=clock, preflight_checker=gated, enqueue=enqueued.append)
    with TestClient(app, base_url="http://testserver") as client:
        login(client, people.trainee.email)
        questions = []
        for i in range(3):
            gated.go.clear()
            url = _pending(client, make_zip("near.py", body=bytes([i]) * 1500))
            gated.go.set()
            assert _settled(client, url)["state"] == "needs_confirmation"
            questions.append(url)
        gated.go.clear()
        before = _store(small)
        refused = upload(client, make_zip(body=b"#" * 1500))
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        error = refused.json()["error"]
        assert error["code"] == "storage_budget"
        assert "保管枠 4.9 KiB のうち 4.7 KiB" in error["message_ja"]
        assert "hold 4.7 KiB of your 4.9 KiB of storage" in error["message_en"]
        assert "Answer the waiting ones" in error["message_en"]
        assert _store(small) == before and _count(db, Preflight) == 3  # nothing stored, no check begun
        confirmed = client.post(f"{questions[0]}/confirm", data={"csrf_token": csrf(client)}, follow_redirects=False)
        assert confirmed.status_code == 303  # now a submission's zip: no longer held against the budget
        assert _pending(client, make_zip(body=b"#" * 1500)).startswith("/uploads/preflights/")
        gated.go.set()
