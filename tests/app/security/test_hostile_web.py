"""A hostile trainee (or outsider) against the site itself, through the real app on SQLite and PostgreSQL.

Each test is one attack and what must stop it: response headers that forbid inline script and
framing, ``/metrics`` closed to the public, CSRF tokens that do not outlive or cross sessions, ids
too large for the database, password spraying across accounts, forged ``X-Forwarded-For``, the
pre-flight held by one trainee, refused zips kept forever, secrets in mail names. The same attacks
against the live uvicorn server are in ``test_hostile_live.py``.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import re
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
from app.models import EmailOutbox, LoginAttempt, Submission, SubmissionStatus, TokenScope
from app.security.csrf import CSRF_COOKIE
from app.security.sessions import SESSION_COOKIE
from app.services.api_tokens import create_token
from app.services.preflight.verdict import Checker as CheckFn
from app.services.preflight.verdict import PreflightVerdict
from app.services.storage import purge_stale_uploads
from app.settings import Settings
from tests.app.conftest import PASSWORD, Checker, Clock, People, add_user, csrf, login, make_zip, upload
from tests.fixtures.services import wait_for
from worker.mail.transport import OutgoingMail, deliver

TEMPLATES = Path(__file__).resolve().parents[3] / "app" / "templates"


def app_with(settings: Settings, clock: Clock, checker: object, **changes: object) -> FastAPI:
    return create_app(
        Settings.model_validate({**settings.model_dump(), **changes}),
        clock=clock,
        preflight_checker=checker,  # type: ignore[arg-type]
        enqueue=lambda _id: None,
        deliver_email=lambda _id: None,
    )


# --- headers ---------------------------------------------------------------------------------------


def test_every_response_forbids_inline_script_framing_and_sniffing(client: TestClient, people: People) -> None:
    login(client, people.trainee.email)
    for path in ("/login", "/upload", "/static/site.css", "/submissions/12345", "/api/v1/cohorts", "/nowhere"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        directives = {part.split()[0]: part.split()[1:] for part in csp.split("; ")}
        assert directives["script-src"] == ["'self'"], path  # no 'unsafe-inline', no 'unsafe-eval'
        assert directives["frame-ancestors"] == ["'none'"]
        assert "unsafe" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert "strict-transport-security" not in response.headers  # plain HTTP in development


def test_hsts_is_sent_in_production(tmp_path: Path, db_url: str, clock: Clock) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        secret_key="production-secret-key-that-is-long-enough-0123456789",
        database_url=db_url,
        data_dir=tmp_path,
        sandbox_mode="bwrap",
        base_url="https://scorer.example.test",
    )
    with TestClient(app_with(settings, clock, Checker())) as client:
        hsts = client.get("/login").headers["strict-transport-security"]
    assert hsts == f"max-age={365 * 24 * 3600}; includeSubDomains"


def test_templates_hold_no_inline_script_or_style() -> None:
    """What the policy forbids must not be in the pages: it would just stop working in browsers."""
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, f"{template.name}: inline <script>"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{template.name}: inline event handler"
        assert "<style" not in text and " style=" not in text, f"{template.name}: inline style"
        assert "javascript:" not in text, f"{template.name}: javascript: URL"


# --- /metrics --------------------------------------------------------------------------------------


def test_metrics_need_the_token_or_an_admin(settings: Settings, clock: Clock, people: People) -> None:
    with TestClient(app_with(settings, clock, Checker(), metrics_token="scrape-me")) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert scraped.status_code == 200 and "katakana_submissions" in scraped.text
        login(client, people.trainee.email)
        assert client.get("/metrics").status_code == 401  # a trainee is not an admin
        client.cookies.clear()
        login(client, people.admin.email)
        assert client.get("/metrics").status_code == 200
    with TestClient(app_with(settings, clock, Checker())) as client:  # no token configured: admins only
        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    with TestClient(app_with(settings, clock, Checker(), metrics_public=True)) as client:
        assert client.get("/metrics").status_code == 200


def test_readiness_shows_its_details_only_with_the_metrics_access(
    settings: Settings, clock: Clock, people: People
) -> None:
    """Anyone may ask /readyz, so it answers the status alone; which checks failed and the live
    workers' host names and queues need what /metrics needs."""
    with TestClient(app_with(settings, clock, Checker(), metrics_token="scrape-me")) as client:
        assert client.get("/readyz").json() == {"status": "unready"}  # no Redis, no worker here
        login(client, people.trainee.email)
        assert client.get("/readyz").json() == {"status": "unready"}  # a trainee is not an admin
        client.cookies.clear()
        login(client, people.admin.email)
        assert client.get("/readyz").json()["failed"] == ["redis", "workers"]
        client.cookies.clear()
        detailed = client.get("/readyz", headers={"Authorization": "Bearer scrape-me"}).json()
        assert detailed["checks"]["database"]["ok"] is True and "workers" in detailed["failed"]


# --- CSRF ------------------------------------------------------------------------------------------


def only(client: TestClient, **cookies: str) -> None:
    """Replace the client's cookies by exactly these (as a browser holding them would send)."""
    client.cookies.clear()
    for name, value in cookies.items():
        client.cookies.set(name, value)


def test_the_csrf_token_is_rotated_at_login_and_logout(client: TestClient, people: People) -> None:
    before_login = csrf(client)
    login(client, people.trainee.email)
    after_login = client.cookies[CSRF_COOKIE]
    session = client.cookies[SESSION_COOKIE]
    assert after_login != before_login
    # A token fixed before the login (say, planted by an attacker) no longer works with the session.
    only(client, **{SESSION_COOKIE: session, CSRF_COOKIE: before_login})
    refused = client.post("/logout", data={"csrf_token": before_login}, follow_redirects=False)
    assert refused.status_code == 403
    only(client, **{SESSION_COOKIE: session, CSRF_COOKIE: after_login})
    assert client.get("/submissions").status_code == 200
    out = client.post("/logout", data={"csrf_token": after_login}, follow_redirects=False)
    assert out.status_code == 303
    rotated = [c for c in out.headers.get_list("set-cookie") if c.startswith(f"{CSRF_COOKIE}=")]
    assert len(rotated) == 1 and after_login not in rotated[0]


def test_a_csrf_token_of_another_session_is_refused(app: FastAPI, client: TestClient, people: People) -> None:
    with TestClient(app, base_url="http://testserver") as attacker:
        login(attacker, people.other_trainee.email)
        attackers_pair = attacker.cookies[CSRF_COOKIE]
    login(client, people.trainee.email)
    victim_session = client.cookies[SESSION_COOKIE]
    # A valid, signed pair from the attacker's own session, planted next to the victim's session.
    only(client, **{SESSION_COOKIE: victim_session, CSRF_COOKIE: attackers_pair})
    refused = client.post("/language", data={"csrf_token": attackers_pair, "lang": "en"}, follow_redirects=False)
    assert refused.status_code == 403
    # The victim's own next page gives it a token of its own session, which works.
    only(client, **{SESSION_COOKIE: victim_session})
    assert client.get("/submissions").status_code == 200
    own = client.cookies[CSRF_COOKIE]
    assert own != attackers_pair
    assert client.post("/language", data={"csrf_token": own, "lang": "en"}, follow_redirects=False).status_code == 303


# --- ids too large for the database ----------------------------------------------------------------


HUGE_IDS = ("99999999999999999999", "2147483648", "0", "-1")


def test_out_of_range_ids_are_not_found_on_pages_and_in_the_api(
    client: TestClient, people: People, db: Session
) -> None:
    login(client, people.instructor.email)
    cohort = people.cohort.id
    for huge in HUGE_IDS:
        for path in (
            f"/cohorts/{huge}/leaderboard",
            f"/cohorts/{huge}/leaderboard.csv",
            f"/cohorts/{huge}/overview",
            f"/cohorts/{cohort}/trainees/{huge}",
            f"/submissions/{huge}",
            f"/submissions/{huge}/status",
            f"/submissions/{huge}/log",
            f"/submissions/{huge}/file",
        ):
            response = client.get(path)
            assert response.status_code == 404, (path, response.status_code)
            assert "このページは存在しないか" in response.text
    token = create_token(db, people.admin, TokenScope.ADMIN, "admin").secret
    db.commit()
    auth = {"Authorization": f"Bearer {token}"}
    for huge in HUGE_IDS:
        for path in (f"/api/v1/cohorts/{huge}", f"/api/v1/submissions/{huge}", f"/api/v1/users/{huge}"):
            response = client.get(path, headers=auth)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "api_not_found"


# --- login: spraying, proxies ----------------------------------------------------------------------


def test_password_spraying_from_one_address_is_paused(client: TestClient, db: Session, people: People) -> None:
    victims = [add_user(db, f"victim{i}@example.com").email for i in range(12)]
    db.commit()
    statuses = [
        client.post("/login", data={"email": email, "password": "Summer2026!", "csrf_token": csrf(client)}).status_code
        for email in victims
    ]
    assert statuses[:10] == [400] * 10  # ten different accounts tried once each
    assert statuses[10:] == [429, 429]  # then the address waits, whatever account it names
    paused = client.post(
        "/login", data={"email": people.trainee.email, "password": PASSWORD, "csrf_token": csrf(client)}
    )
    assert paused.status_code == 429
    assert "このネットワークから多くのアカウント" in paused.text
    assert int(paused.headers["Retry-After"]) > 0
    checked = db.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.email.like("victim%")))
    assert checked == 10  # the paused tries were never checked


def test_forwarded_for_is_ignored_unless_the_proxy_is_configured(
    settings: Settings, clock: Clock, db: Session, people: People
) -> None:
    victims = [add_user(db, f"victim{i}@example.com").email for i in range(12)]
    db.commit()

    def spray(client: TestClient) -> list[int]:
        return [
            client.post(
                "/login",
                data={"email": email, "password": "Summer2026!", "csrf_token": csrf(client)},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},  # a new "address" each time
            ).status_code
            for i, email in enumerate(victims)
        ]

    with TestClient(app_with(settings, clock, Checker())) as client:
        assert spray(client)[10:] == [429, 429]  # the forged header changed nothing
        ips = set(db.scalars(select(LoginAttempt.ip)))
        assert ips == {"testclient"}
    clock.now += dt.timedelta(hours=1)
    with TestClient(app_with(settings, clock, Checker(), trusted_proxies="testclient")) as client:
        assert spray(client) == [400] * 12  # behind a configured proxy, each address is its own
    db.commit()  # end the read snapshot taken above
    assert "198.51.100.11" in set(db.scalars(select(LoginAttempt.ip)))


# --- secrets in mail names -------------------------------------------------------------------------


def test_password_links_never_reach_mail_file_names_or_headers(
    client: TestClient, people: People, settings: Settings, db: Session
) -> None:
    client.post("/password/forgot", data={"email": people.trainee.email, "csrf_token": csrf(client)})
    row = db.scalars(select(EmailOutbox)).one()
    token = re.search(r"token=([A-Za-z0-9_-]+)", row.body_text).group(1)  # type: ignore[union-attr]
    assert token[:6] not in row.idempotency_key
    mail = OutgoingMail(row.idempotency_key, row.to_address, row.subject, row.body_text, row.body_html)
    deliver(mail, settings, timeout=5)
    assert settings.mail_dir is not None
    (written,) = list(settings.mail_dir.glob("*.eml"))
    assert token[:6] not in written.name
    message = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert all(token[:6] not in str(value) for value in message.values())
    assert token in message.get_content()  # type: ignore[attr-defined]  # the link itself is the mail's point


# --- the free pre-flight ---------------------------------------------------------------------------


def limited(checker: CheckFn, concurrency: int) -> CheckFn:
    """``checker`` run by at most ``concurrency`` threads at once, as a pool of that many pre-flight
    worker slots would: the others wait for a turn."""
    slots = threading.BoundedSemaphore(concurrency)

    def check(zip_path: Path) -> PreflightVerdict:
        with slots:
            return checker(zip_path)

    return check


@dataclass
class HeldChecker(Checker):
    """Holds a zip holding ``hold.py`` until released, as a 20-second sleeper would."""

    release: threading.Event = field(default_factory=threading.Event)
    order: list[str] = field(default_factory=list)

    def __call__(self, zip_path: Path) -> PreflightVerdict:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
        self.order.append(names[0])
        if "hold.py" in names:
            assert self.release.wait(120)
        return super().__call__(zip_path)


@pytest.fixture
def held(settings: Settings, clock: Clock) -> Iterator[tuple[FastAPI, HeldChecker]]:
    checker = HeldChecker()
    app = app_with(settings, clock, limited(checker, 1))  # one slot: the scarcest case
    yield app, checker
    checker.release.set()


def test_one_trainee_holds_at_most_one_preflight_and_cannot_starve_another(
    held: tuple[FastAPI, HeldChecker], people: People
) -> None:
    app, checker = held
    results: dict[str, int] = {}
    with TestClient(app) as hanako, TestClient(app) as taro:
        login(hanako, people.trainee.email)
        login(taro, people.other_trainee.email)
        first = threading.Thread(target=lambda: results.update(first=upload(hanako, make_zip("hold.py")).status_code))
        first.start()
        wait_for(lambda: checker.order == ["hold.py"], "the first check to start")
        for i in range(4):  # hanako keeps sending while her first check runs
            refused = upload(hanako, make_zip(f"again{i}.py"))
            assert refused.status_code == 429
            error = refused.json()["error"]
            assert error["code"] == "preflight_busy"
            assert "確認がまだ終わっていません" in error["message_ja"]
            assert "still being checked" in error["message_en"]
            assert int(refused.headers["Retry-After"]) > 0
        second = threading.Thread(target=lambda: results.update(taro=upload(taro, make_zip("taro.py")).status_code))
        second.start()
        checker.release.set()
        first.join(120)
        second.join(120)
    assert results == {"first": 201, "taro": 201}
    assert checker.order == ["hold.py", "taro.py"]  # taro waited behind one check of hanako's, not five


def test_preflights_are_rate_limited_per_trainee(settings: Settings, clock: Clock, people: People, db: Session) -> None:
    broken = make_zip("broken.py")
    with TestClient(app_with(settings, clock, Checker(), preflight_per_hour=3)) as client:
        login(client, people.trainee.email)
        assert [upload(client, broken).status_code for _ in range(3)] == [422, 422, 422]
        refused = upload(client, broken)
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "preflight_rate"
        assert "1時間に3回まで" in error["message_ja"] and "60分後" in error["message_ja"]
        assert "at most 3 times an hour" in error["message_en"]
        assert int(refused.headers["Retry-After"]) == 3600
        with TestClient(client.app) as other:  # another trainee is not affected
            login(other, people.other_trainee.email)
            assert upload(other, broken).status_code == 422
        clock.now += dt.timedelta(hours=1, seconds=1)
        assert upload(client, broken).status_code == 422  # checked again an hour later
    assert db.scalar(select(func.count()).select_from(Submission)) == 0  # nothing was counted


def test_refused_zips_are_removed_after_the_retention(
    client: TestClient, people: People, settings: Settings, db: Session, clock: Clock
) -> None:
    login(client, people.trainee.email)
    assert upload(client, make_zip("broken.py")).status_code == 422
    assert upload(client, make_zip("ok.py")).status_code == 201
    assert settings.storage_dir is not None
    stored = sorted(settings.storage_dir.glob("zips/*/*.zip"))
    assert len(stored) == 2
    (kept,) = db.scalars(select(Submission.storage_key)).all()
    leftover = settings.storage_dir / "incoming" / "dead-process.part"
    leftover.write_bytes(b"partial")
    now = dt.datetime.now(dt.UTC)

    def purge() -> int:
        def referenced(keys: list[str]) -> set[str]:
            return set(db.scalars(select(Submission.storage_key).where(Submission.storage_key.in_(keys))))

        assert settings.storage_dir is not None
        retention = settings.refused_upload_retention_s
        return purge_stale_uploads(
            settings.storage_dir,
            referenced=referenced,
            incoming_ttl_s=retention,
            orphan_ttl_s=retention,
            now=now.timestamp(),
        )

    assert settings.refused_upload_retention_s == 24 * 3600
    assert purge() == 0  # kept a day for support
    day_ago = (now - dt.timedelta(hours=25)).timestamp()
    for path in [*stored, leftover]:
        os.utime(path, (day_ago, day_ago))
    assert purge() == 2  # the refused zip and the dead process's part file
    assert [p.relative_to(settings.storage_dir).as_posix() for p in settings.storage_dir.glob("zips/*/*.zip")] == [kept]
    assert not leftover.exists()
    assert db.scalars(select(Submission.status)).one() == SubmissionStatus.QUEUED
