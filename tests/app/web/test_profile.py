"""A person's account page: they give or correct the reading of their name, in kana."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import User
from tests.app.conftest import People, csrf, login


def _reading(db: Session, people: People) -> str | None:
    db.rollback()  # a fresh transaction sees what the app committed
    return db.scalar(select(User.reading).where(User.id == people.trainee.id))


def test_a_trainee_gives_the_reading_of_their_name(client: TestClient, people: People, db: Session) -> None:
    login(client, people.trainee.email)
    assert 'href="/profile" data-testid="current-user"' in client.get("/upload").text  # the name in the header
    page = client.get("/profile")
    assert page.status_code == 200 and 'data-testid="profile-reading"' in page.text and "五十音" in page.text
    saved = client.post("/profile", data={"reading": "はなこ", "csrf_token": csrf(client)})
    assert saved.status_code == 200 and 'data-testid="profile-saved"' in saved.text
    assert _reading(db, people) == "ハナコ"
    wrong = client.post("/profile", data={"reading": "Hanako", "csrf_token": csrf(client)})
    assert wrong.status_code == 422 and "ひらがなかカタカナで" in wrong.text
    assert 'value="Hanako"' in wrong.text  # what was typed stays, to correct it
    assert _reading(db, people) == "ハナコ"
    cleared = client.post("/profile", data={"reading": "", "csrf_token": csrf(client)})
    assert cleared.status_code == 200
    assert _reading(db, people) == ""
    assert client.post("/profile", data={"reading": "ハナコ"}).status_code == 403  # no CSRF token
