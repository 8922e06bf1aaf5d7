"""Against a live uvicorn process, over real HTTP: the daily limit under 20 simultaneous uploads,
and an oversized upload refused without the web process's memory growing."""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Submission
from app.settings import Settings
from tests.app.conftest import PASSWORD, People, add_user, make_zip
from tests.fixtures.live_service import log_in
from tests.fixtures.services import start_uvicorn

pytestmark = pytest.mark.live  # a live uvicorn process

MIB = 1024 * 1024


@dataclass
class LiveServer:
    url: str
    pid: int
    settings: Settings

    def client(self, email: str) -> httpx.Client:
        return log_in(self.url, email, PASSWORD, timeout=120)

    def reset_peak_memory(self) -> None:
        """Set VmHWM back to the current RSS (Linux: ``5`` in /proc/PID/clear_refs), so the next
        reading of VmHWM is the peak of what happens from now on, not of start-up."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def memory_kib(self, field: str) -> int:
        """VmRSS (now) or VmHWM (the peak so far) of the server process, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field} not in /proc/{self.pid}/status")


def site_env(settings: Settings, **more: str) -> dict[str, str]:
    """The live site's environment: the test's database and data folder, no pre-flight (the
    scoring engine is not what these tests are about), and ``more`` (``KATAKANA_*`` settings)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "KATAKANA_ENVIRONMENT": "test",
        "KATAKANA_DATABASE_URL": settings.database_url,
        "KATAKANA_DATA_DIR": str(settings.data_dir),
        "KATAKANA_SECRET_KEY": settings.secret_key.get_secret_value(),
        "KATAKANA_UPLOAD_MAX_BYTES": str(settings.upload_max_bytes),
        "KATAKANA_PREFLIGHT": "false",
        **more,
    }


@pytest.fixture
def live_server(settings: Settings, people: People) -> Iterator[LiveServer]:
    site = start_uvicorn(site_env(settings), settings.data_dir / "uvicorn.log")
    try:
        yield LiveServer(site.url, site.process.pid, settings)
    finally:
        site.stop()
        sys.stderr.write(site.log()[-5000:])  # shown by pytest when a test fails


def test_twenty_parallel_uploads_over_http_queue_exactly_three(
    live_server: LiveServer, people: People, db: Session
) -> None:
    client = live_server.client(people.trainee.email)
    token = client.cookies["katakana_csrf"]
    barrier = threading.Barrier(20)
    statuses: list[int] = []

    def send(i: int) -> None:
        with httpx.Client(base_url=live_server.url, cookies=client.cookies, timeout=120) as own:
            body = make_zip(body=f"# upload {i}\n".encode())
            barrier.wait()
            response = own.post(
                "/upload",
                files={"file": (f"s{i}.zip", body, "application/zip")},
                data={"csrf_token": token},
                headers={"Accept": "application/json"},
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_day = Counter(db.scalars(select(Submission.quota_day)))
    assert set(statuses) <= {201, 429} and statuses.count(201) == sum(per_day.values())
    if len(per_day) == 1:
        assert sorted(statuses) == [201] * 3 + [429] * 17
    else:  # the burst straddled 00:00 JST: at most three on each side of it
        assert all(count <= 3 for count in per_day.values())


def _oversized_body(boundary: str, total: int) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    chunk = b"\0" * MIB
    for _ in range(total // MIB):
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.slow
def test_oversized_upload_is_refused_without_memory_growth(
    live_server: LiveServer, people: People, db: Session, settings: Settings
) -> None:
    client = live_server.client(people.trainee.email)
    # Warm up the upload path (an upload without a file is refused after parsing the body).
    warm = client.post(
        "/upload",
        files={"other": ("x.txt", b"x")},
        headers={"X-CSRF-Token": client.cookies["katakana_csrf"], "Accept": "application/json"},
    )
    assert warm.status_code == 400
    live_server.reset_peak_memory()
    before = live_server.memory_kib("VmRSS")
    boundary = "katakana-boundary"
    status: int | None = None
    try:
        # A generator body is sent chunked: no Content-Length, so the server must count.
        response = client.post(
            "/upload",
            content=_oversized_body(boundary, 300 * MIB),
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "X-CSRF-Token": client.cookies["katakana_csrf"],
                "Accept": "application/json",
            },
        )
        status = response.status_code
    except httpx.TransportError:
        pass  # the server may close the connection while the client is still sending
    peak = live_server.memory_kib("VmHWM")
    assert status in (413, None)
    growth_mib = (peak - before) / 1024
    assert growth_mib < 40, f"the web process grew by {growth_mib:.0f} MiB while refusing a 300 MiB upload"
    assert db.scalar(select(func.count()).select_from(Submission)) == 0
    storage_dir = settings.storage_dir
    assert storage_dir is not None
    assert not list((storage_dir / "incoming").iterdir())
    assert not (storage_dir / "zips").exists()
    # And the server is fine afterwards.
    assert live_server.client(people.trainee.email).get("/upload").status_code == 200


def test_simultaneous_logins_all_succeed(live_server: LiveServer, people: People, db: Session) -> None:
    """On SQLite a read-then-write transaction used to fail at once with "database is locked" when
    another login wrote first; every login must get in (deadline day: a class behind one address
    logs in at once). Twelve trainees, not one trainee twelve times: simultaneous attempts at one
    account are claimed one by one, and only the limit of them is checked."""
    emails = [people.trainee.email, *(add_user(db, f"class{i}@example.com").email for i in range(11))]
    db.commit()
    barrier = threading.Barrier(len(emails))
    statuses: list[int] = []

    def log_in(email: str) -> None:
        with httpx.Client(base_url=live_server.url, timeout=120) as client:
            client.get("/login")
            barrier.wait()
            response = client.post(
                "/login",
                data={
                    "email": email,
                    "password": PASSWORD,
                    "csrf_token": client.cookies["katakana_csrf"],
                },
                follow_redirects=False,
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=log_in, args=(email,)) for email in emails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [303] * len(emails)
