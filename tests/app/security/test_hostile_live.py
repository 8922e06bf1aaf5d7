"""Attacks on the site that need the real server: uvicorn started as production starts it.

Real concurrency (24 guesses at once against one account, on SQLite and PostgreSQL), real sockets
(clients that trickle a body byte by byte, or stop sending), uvicorn's own access log and its
handling of ``X-Forwarded-For``. The site runs alone here (no worker: nothing in these tests is
scored), against a migrated database.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser
from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker
from app.embedded_redis import RedisServer
from app.models import Cohort, Enrollment, LoginAttempt, Role, User
from app.security.passwords import hash_password
from tests.app.conftest import make_zip
from tests.fixtures.browser import csp_violations, watch_csp
from tests.fixtures.live_service import log_in
from tests.fixtures.services import UvicornSite, start_uvicorn, wait_for

pytestmark = pytest.mark.live  # uvicorn started as production starts it

PASSWORD = "live-password-日本語-ok"
TRAINEE = "hanako@example.test"
MIB = 1024 * 1024


@dataclass
class Site:
    url: str
    port: int
    sessions: sessionmaker[Session]
    log_path: Path
    storage_dir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def login(self, email: str = TRAINEE) -> httpx.Client:
        return log_in(self.url, email, PASSWORD, timeout=120)


SiteFactory = Callable[..., Site]


@pytest.fixture
def live_site(tmp_path: Path, db_url: str) -> Iterator[SiteFactory]:
    """``live_site(**env)``: uvicorn on a free port with ``KATAKANA_<NAME>`` settings from ``env``."""
    servers: list[UvicornSite] = []
    engines = []

    def start(**settings: str) -> Site:
        engine = make_engine(db_url)
        engines.append(engine)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as db:
            cohort = Cohort(name="dl_tokyo_2", title="DL 東京 2 期", daily_limit=3, timezone="Asia/Tokyo")
            users = [
                User(email=email, name=email, role=Role.TRAINEE, password_hash=hash_password(PASSWORD))
                for email in [TRAINEE, *(f"victim{i}@example.test" for i in range(12))]
            ]
            db.add_all([cohort, *users])
            db.flush()
            db.add_all([Enrollment(user_id=u.id, cohort_id=cohort.id, role=Role.TRAINEE) for u in users])
        data_dir = tmp_path / "var"
        env = {
            **os.environ,
            "KATAKANA_ENVIRONMENT": "test",
            "KATAKANA_SECRET_KEY": "live-hostile-secret-key-that-is-long-enough-0123456789",
            "KATAKANA_DATABASE_URL": db_url,
            "KATAKANA_DATA_DIR": str(data_dir),
            "KATAKANA_PREFLIGHT": "false",
            **{f"KATAKANA_{name.upper()}": value for name, value in settings.items()},
        }
        # As production starts it (Dockerfile, supervisor): access log on, proxy headers left to the app.
        server = start_uvicorn(env, tmp_path / f"uvicorn-{len(servers)}.log", log_level="info")
        servers.append(server)
        return Site(server.url, server.port, sessions, server.log_path, data_dir / "storage")

    yield start
    for server in servers:
        server.stop()
    for engine in engines:
        engine.dispose()


def test_24_simultaneous_guesses_check_at_most_the_limit(live_site: SiteFactory) -> None:
    site = live_site()
    clients = [httpx.Client(base_url=site.url, timeout=300) for _ in range(24)]
    for client in clients:
        client.get("/login")
    ready = threading.Barrier(len(clients))
    statuses: list[int] = []

    def guess(client: httpx.Client, n: int) -> None:
        data = {"email": TRAINEE, "password": f"guess-{n}", "csrf_token": client.cookies["katakana_csrf"]}
        ready.wait()
        statuses.append(client.post("/login", data=data).status_code)

    threads = [threading.Thread(target=guess, args=(c, n)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(statuses) == [400] * 5 + [429] * 19  # five checked (and wrong), the rest refused unchecked
    with site.sessions() as db:
        assert db.scalar(sql_select(func.count()).select_from(LoginAttempt).where(LoginAttempt.email == TRAINEE)) == 5
    # The account is paused even for its owner, with the right password, until the window passes.
    owner = httpx.Client(base_url=site.url, timeout=60)
    owner.get("/login")
    data = {"email": TRAINEE, "password": PASSWORD, "csrf_token": owner.cookies["katakana_csrf"]}
    assert owner.post("/login", data=data).status_code == 429


def test_forged_forwarded_for_does_not_escape_the_address_limit(live_site: SiteFactory) -> None:
    site = live_site()
    client = httpx.Client(base_url=site.url, timeout=120)
    client.get("/login")
    statuses = [
        client.post(
            "/login",
            data={
                "email": f"victim{i}@example.test",
                "password": "Winter2026!",
                "csrf_token": client.cookies["katakana_csrf"],
            },
            headers={"X-Forwarded-For": f"203.0.113.{i}", "Forwarded": f"for=203.0.113.{i}"},
        ).status_code
        for i in range(12)
    ]
    assert statuses == [400] * 10 + [429, 429]
    with site.sessions() as db:
        assert set(db.scalars(sql_select(LoginAttempt.ip))) == {"127.0.0.1"}


def test_a_configured_proxy_is_believed(live_site: SiteFactory) -> None:
    site = live_site(trusted_proxies="127.0.0.1")
    client = httpx.Client(base_url=site.url, timeout=120)
    client.get("/login")
    for i in range(12):
        response = client.post(
            "/login",
            data={
                "email": f"victim{i}@example.test",
                "password": "Winter2026!",
                "csrf_token": client.cookies["katakana_csrf"],
            },
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        )
        assert response.status_code == 400
    with site.sessions() as db:
        assert len(set(db.scalars(sql_select(LoginAttempt.ip)))) == 12


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_access_log_never_holds_a_password_link_token(live_site: SiteFactory) -> None:
    site = live_site()
    secret = "S3cretTokenValue-that-must-not-be-logged"
    assert httpx.get(f"{site.url}/password/set?token={secret}&lang=ja", timeout=60).status_code == 400
    assert httpx.get(f"{site.url}/password/set?foo=1&token={secret}", timeout=60).status_code == 400

    def logged() -> bool:
        return site.log().count("/password/set?") >= 2

    wait_for(logged, "uvicorn's access lines")
    log = site.log()
    assert secret not in log and secret[:8] not in log
    assert "/password/set?token=[redacted]&lang=ja" in log
    assert "/password/set?foo=1&token=[redacted]" in log


def _raw_upload_head(site: Site, client: httpx.Client, length: int) -> bytes:
    boundary = "trickle"
    cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    head = (
        f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\nCookie: {cookies}\r\n"
        f"X-CSRF-Token: {client.cookies['katakana_csrf']}\r\nAccept: application/json\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.zip"\r\n'
        f"Content-Type: application/zip\r\n\r\nPK"
    )
    return head.encode()


def _read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(120)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:  # closed with our last bytes unread: what came before still counts
        pass
    return data


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_stalled_upload_is_dropped(live_site: SiteFactory) -> None:
    site = live_site(body_idle_timeout_s="1")
    client = site.login()
    with socket.create_connection(("127.0.0.1", site.port)) as sock:
        sock.sendall(_raw_upload_head(site, client, 1_000_000))
        response = _read_response(sock)  # and then nothing more is sent
    assert response.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in response.lower()
    assert "アップロードが途中で止まった".encode() in response and b"The upload stalled" in response
    assert list((site.storage_dir / "incoming").iterdir()) == []  # the partial file is gone
    assert "request body stalled: POST /upload dropped" in site.log()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_trickling_upload_is_dropped_at_the_total_limit(live_site: SiteFactory) -> None:
    site = live_site(body_total_timeout_s="3")  # the idle limit stays 30 s: each byte arrives in time
    client = site.login()
    with socket.create_connection(("127.0.0.1", site.port)) as sock:
        sock.sendall(_raw_upload_head(site, client, 1_000_000))
        sent = 0
        while sent < 2000:  # far more than the total limit allows at this pace
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                break
            try:
                sock.sendall(b"x")
            except OSError:  # the server closed first
                break
            sent += 1
        response = _read_response(sock)
    assert response.startswith(b"HTTP/1.1 408 "), response[:200]
    assert sent < 2000
    assert list((site.storage_dir / "incoming").iterdir()) == []
    # The site still serves everyone else.
    assert httpx.get(f"{site.url}/healthz", timeout=60).status_code == 200


def _folder_bytes(folder: Path) -> int:
    """What the folder holds on disk, every file below it counted (as ``du --apparent-size``)."""
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # a part file removed while we walk
            total += path.stat().st_size if path.is_file() else 0
    return total


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_refused_uploads_leave_nothing_on_disk(live_site: SiteFactory, redis_server: RedisServer) -> None:
    """A trainee whose check is under way (no pre-flight worker answers it here) sends ten 20 MiB
    bodies: each is refused as busy before its body is read, and the storage folder does not grow by
    a byte, not even for a moment. Two more from another trainee with a forged form token are read
    (the token is in the body) into a part file that goes with the refusal."""
    site = live_site(preflight="true", redis_url=redis_server.url, upload_max_bytes=str(32 * MIB))
    client = site.login()
    token = client.cookies["katakana_csrf"]
    first = client.post(
        "/upload", files={"file": ("first.zip", make_zip(), "application/zip")}, data={"csrf_token": token},
        headers={"Accept": "application/json"},
    )  # fmt: skip
    assert first.status_code == 202, first.text  # sent for its check; nobody answers, so it holds the turn
    before = _folder_bytes(site.storage_dir)
    assert before > 0
    body = b"PK" + os.urandom(20 * MIB - 2)
    peak = [before]
    sampling = threading.Event()

    def sample() -> None:  # the folder as it is while the bodies arrive
        while not sampling.is_set():
            peak[0] = max(peak[0], _folder_bytes(site.storage_dir))
            sampling.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for i in range(10):
            refused = client.post(
                "/upload", files={"file": (f"big{i}.zip", body, "application/zip")}, data={"csrf_token": token},
                headers={"Accept": "application/json"},
            )  # fmt: skip
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "preflight_busy"
    finally:
        sampling.set()
        sampler.join()
    assert _folder_bytes(site.storage_dir) == before and peak[0] == before
    other = site.login("victim0@example.test")  # no check under way: the body is read for its token
    for _ in range(2):
        forged = other.post(
            "/upload", files={"file": ("big.zip", body, "application/zip")}, data={"csrf_token": "forged"},
            headers={"Accept": "application/json"},
        )  # fmt: skip
        assert forged.status_code == 403
    assert _folder_bytes(site.storage_dir) == before
    assert list((site.storage_dir / "incoming").iterdir()) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_browser_refuses_injected_script_and_framing(live_site: SiteFactory, browser: Browser) -> None:
    site = live_site()
    page = browser.new_page()
    seen = watch_csp(page)
    page.goto(f"{site.url}/login")
    assert csp_violations(page, seen) == []  # the site's own page runs clean under its policy
    # Script injected into the page (as a failed escape would) does not run, and is reported.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__injected = 1';"
        " document.head.appendChild(s); }"
    )
    wait_for(lambda: csp_violations(page, seen), "the browser to report the blocked script")
    assert page.evaluate("window.__injected === undefined")
    # Another site framing the login page (clickjacking) gets an empty frame.
    attacker = browser.new_page()
    attacker.set_content(f'<iframe id="victim" src="{site.url}/login"></iframe>')
    attacker.wait_for_load_state("load")
    assert attacker.frame_locator("#victim").get_by_test_id("login-email").count() == 0
    page.close()
    attacker.close()
