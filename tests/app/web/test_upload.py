"""Uploading through the site: pre-flight before a slot is spent, the daily limit, what is stored."""

from __future__ import annotations

import datetime as dt
import hashlib

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.embedded_redis import RedisServer
from app.main import create_app
from app.models import PreflightLease, PreflightVerdictCache, Submission, SubmissionStatus
from app.settings import Settings
from tests.app.conftest import Checker, Clock, People, login, make_zip, upload


def test_upload_queues_a_submission_and_enqueues_after_commit(
    client: TestClient, people: People, db: Session, enqueued: list[int], settings: Settings
) -> None:
    login(client, people.trainee.email)
    data = make_zip()
    response = upload(client, data, filename="提出_第1回.zip", validation="95.5%")
    assert response.status_code == 201, response.text
    body = response.json()
    row = db.get(Submission, body["id"])
    assert row is not None
    assert row.status == SubmissionStatus.QUEUED
    assert row.original_filename == "提出_第1回.zip"
    assert row.zip_sha256 == hashlib.sha256(data).hexdigest()
    assert row.zip_size == len(data)
    assert row.validation_accuracy == 0.955
    assert enqueued == [row.id]
    stored = settings.storage_dir / row.storage_key  # type: ignore[operator]
    assert stored.read_bytes() == data
    assert not any((settings.storage_dir / "incoming").iterdir())  # type: ignore[operator]


def test_macos_decomposed_japanese_file_name_is_normalised(client: TestClient, people: People, db: Session) -> None:
    login(client, people.trainee.email)
    decomposed = "テスト".replace("テ", "テ")  # テ = テ + combining dakuten, as macOS sends it
    response = upload(client, make_zip(), filename=f"{decomposed}.zip")
    assert response.status_code == 201
    assert db.get(Submission, response.json()["id"]).original_filename == "テスト.zip"  # type: ignore[union-attr]


def test_refused_preflight_spends_no_slot_and_says_why_in_both_languages(
    client: TestClient, people: People, db: Session, checker: Checker, enqueued: list[int]
) -> None:
    login(client, people.trainee.email)
    broken = make_zip("broken.py")
    response = upload(client, broken)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "preflight"
    assert "predict" in error["detail"]
    assert "今日の提出回数は減っていません" in error["message_ja"]
    assert "No upload was counted" in error["message_en"]
    assert db.scalars(select(Submission)).all() == []
    assert enqueued == []
    # The same zip again is answered from the cache: the sandbox does not run twice.
    assert upload(client, broken).status_code == 422
    assert len(checker.calls) == 1
    assert db.scalar(select(PreflightVerdictCache)).ok is False  # type: ignore[union-attr]


def test_refused_preflight_shows_reason_on_the_page_for_browsers(client: TestClient, people: People) -> None:
    login(client, people.trainee.email)
    response = upload(client, make_zip("broken.py"), json=False)
    assert response.status_code == 422
    assert 'data-testid="upload-error"' in response.text
    assert "predict(test_data) が定義されていません" in response.text
    assert "今日の残り提出回数: 3 / 3 回" in response.text


def test_fourth_upload_is_refused_with_the_reset_time(
    client: TestClient, people: People, db: Session, clock: Clock, enqueued: list[int], checker: Checker
) -> None:
    clock.set_local("2026-11-24T20:48:00")  # 3 h 12 min before midnight in Tokyo
    login(client, people.trainee.email)
    for i in range(3):
        assert upload(client, make_zip(body=f"# {i}\n".encode())).status_code == 201
    response = upload(client, make_zip(body=b"# 4\n"))
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "quota"
    assert "resets 00:00 JST (in 3 h 12 min)" in error["message_en"]
    assert "00:00（JST）にリセットされます（あと 3時間12分）" in error["message_ja"]
    assert int(response.headers["Retry-After"]) == (3 * 60 + 12) * 60
    assert len(enqueued) == 3
    assert len(checker.calls) == 3  # refused before the upload was even checked
    page = client.get("/upload")
    assert "今日の残り提出回数: 0 / 3 回" in page.text
    assert "00:00（JST）にリセット、あと 3時間12分" in page.text
    assert 'data-testid="quota-used-up"' in page.text
    assert 'data-testid="upload-submit" disabled' in page.text


def test_upload_without_csrf_token_is_refused(client: TestClient, people: People, db: Session) -> None:
    login(client, people.trainee.email)
    response = client.post(
        "/upload",
        files={"file": ("a.zip", make_zip(), "application/zip")},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 403
    assert db.scalars(select(Submission)).all() == []


def test_upload_requires_login(client: TestClient, people: People) -> None:
    response = upload(client, make_zip())
    assert response.status_code == 401


def test_instructor_cannot_upload(client: TestClient, people: People) -> None:
    login(client, people.instructor.email)
    response = upload(client, make_zip())
    assert response.status_code == 403
    assert "受講生" in response.json()["error"]["message_ja"]


def test_oversized_upload_is_refused_early_by_content_length(
    client: TestClient, people: People, settings: Settings
) -> None:
    login(client, people.trainee.email)
    small_cap = settings.upload_max_bytes
    response = client.post(
        "/upload",
        content=b"x",
        headers={
            "Content-Type": "multipart/form-data; boundary=abc",
            "Content-Length": str(small_cap * 2),
            "Accept": "application/json",
        },
    )
    assert response.status_code == 413
    assert "100 MiB" in response.json()["error"]["message_en"]


def test_a_preflight_the_server_could_not_run_is_not_the_zips_fault(
    client: TestClient, people: People, db: Session, checker: Checker
) -> None:
    checker.server_down = True
    login(client, people.trainee.email)
    response = upload(client, make_zip())
    assert response.status_code == 503
    assert "No upload was counted" in response.json()["error"]["message_en"]
    assert db.scalars(select(PreflightVerdictCache)).all() == []  # not cached: the next try runs the check
    checker.server_down = False
    assert upload(client, make_zip()).status_code == 201


def test_browser_form_without_javascript_lands_on_the_result_page(client: TestClient, people: People) -> None:
    login(client, people.trainee.email)
    response = upload(client, make_zip(), json=False)
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert 'data-testid="result"' in page.text and 'data-status="queued"' in page.text


def test_a_bad_validation_accuracy_is_explained_and_spends_nothing(
    client: TestClient, people: People, db: Session
) -> None:
    login(client, people.trainee.email)
    response = upload(client, make_zip(), validation="ninety")
    assert response.status_code == 422
    assert "0.95" in response.json()["error"]["message_en"]
    assert db.scalars(select(Submission)).all() == []


def test_when_no_worker_answers_the_preflight_the_upload_is_refused_and_spends_nothing(
    settings: Settings, people: People, db: Session, redis_server: RedisServer, clock: Clock, enqueued: list[int]
) -> None:
    """The real hand-off to the ``preflight`` queue, with nobody consuming it: the upload answers
    with its check, which ends as unanswered once ``preflight_wait_s`` is over."""
    waiting = settings.model_copy(
        update={"redis_url": redis_server.url, "preflight_wait_s": 1.0, "preflight_inline_wait_s": 0.0}
    )
    app = create_app(waiting, clock=clock, enqueue=enqueued.append, deliver_email=lambda _id: None)
    data = make_zip()
    with TestClient(app, base_url="http://testserver") as client:
        login(client, people.trainee.email)
        pending = upload(client, data)
        assert pending.status_code == 202 and pending.json()["state"] == "checking"
        assert client.get(pending.json()["url"], headers={"Accept": "application/json"}).status_code == 202
        clock.now += dt.timedelta(seconds=2)  # past preflight_wait_s: nobody will answer any more
        response = client.get(pending.json()["url"], headers={"Accept": "application/json"})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "preflight_unanswered"
    assert "no upload was counted" in error["message_en"] and "提出回数は減っていません" in error["message_ja"]
    assert response.headers["Retry-After"]
    assert db.scalars(select(Submission)).all() == [] and enqueued == []
    assert db.scalars(select(PreflightLease)).all() == []  # the ended check freed the trainee's turn
    stored = settings.storage_dir / "zips" / hashlib.sha256(data).hexdigest()[:2]  # type: ignore[operator]
    assert [p.read_bytes() for p in stored.iterdir()] == [data]  # kept: nothing uploaded is lost
    assert redis_server.client().llen("preflight") == 1  # sent, and it expires unanswered
