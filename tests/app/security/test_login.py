"""Logging in and out, the session cookie, and throttling of failed logins."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import LoginAttempt, UserSession
from app.security.sessions import SESSION_COOKIE
from app.settings import Settings
from app.web import auth
from tests.app.conftest import PASSWORD, Clock, People, csrf, login


def test_login_sets_a_hardened_cookie_and_logout_ends_the_session(
    client: TestClient, people: People, db: Session
) -> None:
    response = client.post(
        "/login",
        data={
            "email": "Hanako@Example.com ",
            "password": PASSWORD,
            "csrf_token": csrf(client),
            "next": "/submissions",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/submissions"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}  # not the random value
    assert "secure" not in attributes  # only in production (served over HTTPS)
    assert client.get("/submissions").status_code == 200
    stolen = client.cookies[SESSION_COOKIE]

    response = client.post("/logout", data={"csrf_token": csrf(client)}, follow_redirects=False)
    assert response.status_code == 303
    assert db.scalar(select(func.count()).select_from(UserSession)) == 0
    # The old cookie no longer opens anything, even if someone kept a copy.
    client.cookies.set(SESSION_COOKIE, stolen)
    response = client.get("/submissions", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_wrong_password_and_unknown_email_are_answered_alike(client: TestClient, people: People) -> None:
    wrong = client.post("/login", data={"email": people.trainee.email, "password": "nope", "csrf_token": csrf(client)})
    unknown = client.post(
        "/login", data={"email": "nobody@example.com", "password": "nope", "csrf_token": csrf(client)}
    )
    assert wrong.status_code == unknown.status_code == 400
    assert "メールアドレスかパスワードが違います" in wrong.text
    assert "メールアドレスかパスワードが違います" in unknown.text


def test_a_forged_session_cookie_is_ignored(client: TestClient, people: People) -> None:
    client.cookies.set(SESSION_COOKIE, "forged.value")
    response = client.get("/upload", follow_redirects=False)
    assert response.status_code == 303


def test_open_redirects_are_refused(client: TestClient, people: People) -> None:
    response = client.post(
        "/login",
        data={
            "email": people.trainee.email,
            "password": PASSWORD,
            "csrf_token": csrf(client),
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/upload"


def test_failed_logins_are_throttled_per_email_and_ip(
    client: TestClient, people: People, clock: Clock, db: Session
) -> None:
    for _ in range(5):
        assert (
            client.post(
                "/login", data={"email": people.trainee.email, "password": "bad", "csrf_token": csrf(client)}
            ).status_code
            == 400
        )
    # Even the right password is refused now, with how long to wait.
    response = client.post(
        "/login", data={"email": people.trainee.email, "password": PASSWORD, "csrf_token": csrf(client)}
    )
    assert response.status_code == 429
    assert "15分後" in response.text
    assert int(response.headers["Retry-After"]) == 15 * 60
    # Another account from the same address is not affected.
    login(client, people.other_trainee.email)
    # After the window the trainee can log in, and success clears the failures.
    clock.now += dt.timedelta(minutes=15, seconds=1)
    client.cookies.clear()
    login(client, people.trainee.email)
    db.expire_all()
    assert (
        db.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.email == people.trainee.email, LoginAttempt.succeeded.is_(False))
        )
        == 0
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the write lock is SQLite's
def test_the_password_is_checked_without_holding_the_database_write_lock(
    client: TestClient, people: People, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 takes a few hundred ms; under SQLite's write lock, a class logging in at once would
    be checked one at a time. While the hash is checked, another connection can take the lock."""
    path = settings.database_url.removeprefix("sqlite:///")
    while_checking: list[str] = []
    real_verify = auth.verify_password

    def verify_and_probe(password_hash: str | None, password: str) -> bool:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            while_checking.append("lock free")
        except sqlite3.OperationalError as exc:
            while_checking.append(str(exc))
        finally:
            other.close()
        return real_verify(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", verify_and_probe)
    login(client, people.trainee.email)
    assert while_checking == ["lock free"]
    assert client.get("/submissions").status_code == 200  # and the login itself worked
