"""The whole service, as it runs: a live uvicorn site, a real Celery worker, Redis, an SMTP server,
the real sandbox and the synthetic test set imported through the admin CLI.

Nothing is stubbed: the site runs the real pre-flight, the upload is queued through Redis, the worker
scores it in bubblewrap and the email arrives at aiosmtpd.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from app.db import make_engine, make_sessionmaker
from app.models import Cohort, Enrollment, Language, Role, User
from app.security.passwords import hash_password
from tests.fixtures.artifacts import DataSet
from tests.fixtures.services import REPO, SmtpServer, WorkerFactory, WorkerProcess, free_port, wait_for

PASSWORD = "e2e-password-日本語-ok"
TRAINEE_EMAIL = "hanako@example.test"
OTHER_EMAIL = "taro@example.test"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


@dataclass
class Site:
    url: str
    env: dict[str, str]
    worker: WorkerProcess
    smtp: SmtpServer
    sessions: object  # sessionmaker[Session]

    def login(self, email: str = TRAINEE_EMAIL) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=300)
        client.get("/login")
        response = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": client.cookies["katakana_csrf"]},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        return client

    def wait_final(self, client: httpx.Client, submission_id: int) -> dict[str, object]:
        def final() -> dict[str, object] | None:
            status = client.get(f"/submissions/{submission_id}/status").json()
            return status if status["final"] else None

        result: dict[str, object] = wait_for(final, f"submission {submission_id} to be scored", timeout=300)
        return result


def _people(sessions: object) -> None:
    with sessions.begin() as session:  # type: ignore[attr-defined]
        assert isinstance(session, Session)
        cohort = Cohort(
            name="dl_tokyo_2", title="DL 東京 2 期", daily_limit=3, timezone="Asia/Tokyo", pass_threshold=0.5
        )
        hanako = User(
            email=TRAINEE_EMAIL, name="山田 花子", role=Role.TRAINEE, language=Language.JA,
            password_hash=hash_password(PASSWORD),
        )  # fmt: skip
        taro = User(
            email=OTHER_EMAIL, name="Taro Sato", role=Role.TRAINEE, language=Language.EN,
            password_hash=hash_password(PASSWORD),
        )  # fmt: skip
        session.add_all([cohort, hanako, taro])
        session.flush()
        session.add_all([Enrollment(user_id=u.id, cohort_id=cohort.id, role=Role.TRAINEE) for u in (hanako, taro)])


@pytest.fixture
def site(
    worker_env: dict[str, str],
    database_url: str,
    synthetic_set: DataSet,
    smtp_server: SmtpServer,
    celery_worker_factory: WorkerFactory,
    tmp_path: Path,
) -> Iterator[Site]:
    env = {**os.environ, **worker_env, "KATAKANA_SECRET_KEY": "e2e-secret-key-that-is-long-enough-0123456789"}
    imported = subprocess.run(
        [sys.executable, "-m", "app.cli", "import-testset", str(synthetic_set.small_data),
         str(synthetic_set.small_label), "--version", "synthetic-small"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stdout + imported.stderr
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    _people(sessions)
    worker = celery_worker_factory(worker_env)

    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if server.poll() is not None:
            pytest.fail(f"uvicorn exited:\n{log_path.read_text()[-5000:]}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, "the site to answer")
    try:
        yield Site(url=url, env=env, worker=worker, smtp=smtp_server, sessions=sessions)
    finally:
        server.terminate()
        server.wait(timeout=30)
        engine.dispose()
        sys.stderr.write(log_path.read_text()[-5000:])
