"""Password reset and first-time password: an emailed one-time link, stored only as a hash."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import EmailOutbox, PasswordToken, User
from app.security.tokens import token_hash
from tests.app.conftest import PASSWORD, People, csrf, login


def _request_link(client: TestClient, email: str, db: Session, delivered: list[int]) -> str:
    response = client.post("/password/forgot", data={"email": email, "csrf_token": csrf(client)})
    assert response.status_code == 200
    assert 'data-testid="forgot-sent"' in response.text
    db.expire_all()
    mail = db.get(EmailOutbox, delivered[-1])
    assert mail is not None and mail.to_address == email
    match = re.search(r"/password/set\?token=([\w-]+)", mail.body_text)
    assert match is not None
    return match.group(1)


def test_reset_link_works_once_and_ends_other_sessions(
    client: TestClient, people: People, db: Session, delivered: list[int]
) -> None:
    other_browser = TestClient(client.app)
    login(other_browser, people.trainee.email)

    token = _request_link(client, people.trainee.email, db, delivered)
    stored = db.scalar(select(PasswordToken))
    assert stored is not None and stored.token_hash == token_hash(token) and token not in stored.token_hash
    assert client.get(f"/password/set?token={token}").status_code == 200
    new_password = "a brand new passphrase"
    form = {"token": token, "password": new_password, "confirm": new_password, "csrf_token": csrf(client)}
    response = client.post("/password/set", data=form, follow_redirects=False)
    assert response.status_code == 303
    # The login form that follows has the address filled in (from a cookie for that page, never the URL).
    assert people.trainee.email not in response.headers["location"]
    login_page = client.get(response.headers["location"]).text
    assert f'value="{people.trainee.email}"' in login_page and 'data-testid="password-set"' in login_page
    assert f'value="{people.trainee.email}"' not in client.get("/login?password_set=1").text  # once only

    # Used: the same link is refused, and says what to do.
    again = client.post("/password/set", data=form)
    assert again.status_code == 400
    assert "もう一度リンクを送ってください" in again.text
    assert client.get(f"/password/set?token={token}").status_code == 400
    # The session in the other browser ended; the new password works, the old one does not.
    assert other_browser.get("/upload", follow_redirects=False).status_code == 303
    bad = client.post("/login", data={"email": people.trainee.email, "password": PASSWORD, "csrf_token": csrf(client)})
    assert bad.status_code == 400
    login(client, people.trainee.email, new_password)


def test_expired_link_is_refused(client: TestClient, people: People, db: Session, delivered: list[int]) -> None:
    token = _request_link(client, people.trainee.email, db, delivered)
    row = db.scalar(select(PasswordToken))
    assert row is not None
    row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db.commit()
    form = {"token": token, "password": "x" * 12, "confirm": "x" * 12, "csrf_token": csrf(client)}
    assert client.post("/password/set", data=form).status_code == 400


def test_first_time_password_for_an_invited_account(
    client: TestClient, people: People, db: Session, delivered: list[int]
) -> None:
    invited = User(email="new@example.com", name="new", password_hash=None)
    db.add(invited)
    db.commit()
    # No password yet: logging in fails, as for a wrong password.
    assert client.post(
        "/login", data={"email": invited.email, "password": "", "csrf_token": csrf(client)}
    ).status_code in (400, 422)
    token = _request_link(client, invited.email, db, delivered)
    form = {
        "token": token,
        "password": "first password!",
        "confirm": "first password!",
        "csrf_token": csrf(client),
    }
    assert client.post("/password/set", data=form, follow_redirects=False).status_code == 303
    login(client, invited.email, "first password!")


def test_unknown_email_gets_the_same_answer_and_no_mail(
    client: TestClient, people: People, delivered: list[int]
) -> None:
    response = client.post("/password/forgot", data={"email": "nobody@example.com", "csrf_token": csrf(client)})
    assert response.status_code == 200
    assert 'data-testid="forgot-sent"' in response.text
    assert delivered == []


def test_short_or_mismatched_password_is_refused_with_reason(
    client: TestClient, people: People, db: Session, delivered: list[int]
) -> None:
    token = _request_link(client, people.trainee.email, db, delivered)
    short = client.post(
        "/password/set",
        data={"token": token, "password": "short", "confirm": "short", "csrf_token": csrf(client)},
    )
    assert short.status_code == 400 and "10 文字以上" in short.text
    mismatch = client.post(
        "/password/set",
        data={"token": token, "password": "x" * 12, "confirm": "y" * 12, "csrf_token": csrf(client)},
    )
    assert mismatch.status_code == 400 and "一致しません" in mismatch.text
    # Neither attempt used the link up.
    ok = client.post(
        "/password/set",
        data={"token": token, "password": "x" * 12, "confirm": "x" * 12, "csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert ok.status_code == 303


def test_the_reset_form_cannot_flood_a_mailbox(client: TestClient, people: People, delivered: list[int]) -> None:
    for _ in range(5):
        response = client.post("/password/forgot", data={"email": people.trainee.email, "csrf_token": csrf(client)})
        assert 'data-testid="forgot-sent"' in response.text  # the same answer every time
    assert len(delivered) == 3
