"""Japanese first, with an English switch; both tables hold the same messages."""

from __future__ import annotations

import string

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.i18n import TEXT
from app.models import Language, User
from tests.app.conftest import People, csrf, login


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    assert TEXT["ja"].keys() == TEXT["en"].keys()
    for key in TEXT["ja"]:
        assert _fields(TEXT["ja"][key]) == _fields(TEXT["en"][key]), key


def test_pages_are_japanese_by_default_and_switch_to_english(client: TestClient, people: People, db: Session) -> None:
    page = client.get("/login")
    assert '<html lang="ja">' in page.text and "ログイン" in page.text
    response = client.post(
        "/language", data={"lang": "en", "next": "/login", "csrf_token": csrf(client)}, follow_redirects=False
    )
    assert response.status_code == 303
    page = client.get("/login")
    assert '<html lang="en">' in page.text and "Log in" in page.text

    # A signed-in user's choice is stored on the account and follows them.
    login(client, people.trainee.email)
    client.post("/language", data={"lang": "en", "next": "/upload", "csrf_token": csrf(client)})
    db.expire_all()
    user = db.get(User, people.trainee.id)
    assert user is not None and user.language == Language.EN
    client.cookies.delete("katakana_lang")
    upload_page = client.get("/upload").text
    assert "Uploads left today: 3 of 3" in upload_page
    assert "resets 00:00 JST, in" in upload_page
    client.post("/language", data={"lang": "ja", "next": "/upload", "csrf_token": csrf(client)})
    upload_page = client.get("/upload").text
    assert "今日の残り提出回数: 3 / 3 回" in upload_page
    assert "00:00（JST）にリセット" in upload_page


def test_upload_page_shows_the_runtime_versions(client: TestClient, people: People) -> None:
    login(client, people.trainee.email)
    page = client.get("/upload").text
    assert 'data-testid="runtime-versions"' in page
    assert "Python 3." in page
