"""Pages around the upload: the admin's mail folder, templates, and refusals that are not the limit."""

from __future__ import annotations

import datetime as dt
import gc
from email.message import EmailMessage

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Cohort
from app.settings import Settings
from app.web.templating import templates
from app.web.upload_page import template_files
from tests.app.conftest import People, add_user, login, make_zip, upload


def test_admin_reads_the_embedded_mail_folder(client: TestClient, people: People, settings: Settings) -> None:
    assert settings.mail_dir is not None
    settings.mail_dir.mkdir(parents=True)
    message = EmailMessage()
    message["To"] = "hanako@example.com"
    message["Subject"] = "【カタカナ識別】採点結果 #1"
    message["Date"] = "Tue, 24 Nov 2026 12:00:00 +0900"
    message.set_content("テスト正解率: 95.00%\n")
    (settings.mail_dir / "result-1.eml").write_bytes(bytes(message))
    login(client, people.admin.email)
    listing = client.get("/admin/mail")
    assert listing.status_code == 200
    assert "【カタカナ識別】採点結果 #1" in listing.text
    shown = client.get("/admin/mail/result-1.eml")
    assert "テスト正解率: 95.00%" in shown.text
    assert client.get("/admin/mail/../secret").status_code == 404


def test_templates_are_offered_for_download(client: TestClient, people: People) -> None:
    login(client, people.trainee.email)
    page = client.get("/upload").text
    for name in template_files():
        assert f'href="/templates/{name}"' in page
        assert client.get(f"/templates/{name}").status_code == 200
    assert client.get("/templates/..%2Fpipeline.py").status_code == 404


def test_upload_after_the_deadline_is_refused_without_spending(client: TestClient, people: People, db: Session) -> None:
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    cohort.upload_deadline = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    db.commit()
    login(client, people.trainee.email)
    response = upload(client, make_zip())
    assert response.status_code == 403
    assert "提出期限" in response.json()["error"]["message_ja"]
    assert "deadline" in response.json()["error"]["message_en"]


def test_trainee_without_a_cohort_is_told_whom_to_ask(client: TestClient, people: People, db: Session) -> None:
    loner = add_user(db, "loner@example.com")
    db.commit()
    login(client, loner.email)
    page = client.get("/upload")
    assert page.status_code == 200
    response = upload(client, make_zip())
    assert response.status_code == 403
    assert "instructor" in response.json()["error"]["message_en"]


def test_archived_cohort_does_not_take_uploads(client: TestClient, people: People, db: Session) -> None:
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    cohort.archived = True
    db.commit()
    login(client, people.trainee.email)
    assert upload(client, make_zip()).status_code == 403


def test_login_redirect_keeps_where_the_user_was_going(client: TestClient, people: People) -> None:
    response = client.get("/submissions/5", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/submissions/5"
    api_like = client.get("/submissions/5/status", headers={"Accept": "application/json"})
    assert api_like.status_code == 401
    assert api_like.json()["error"]["message_en"] == "Please log in."


def test_a_started_app_keeps_its_startup_heap_out_of_the_collector_and_its_templates_unchecked(
    client: TestClient, settings: Settings
) -> None:
    """Two per-request costs a running site does not pay: a full collection walking the framework's
    own objects, and a file check of every template each page extends or includes."""
    assert gc.get_freeze_count() > 0
    assert settings.environment != "development" and templates.env.auto_reload is False
