"""The live service for fault tests: uvicorn, a real Celery worker, Redis, SMTP, the imported test set.

It generalises ``tests/e2e/conftest.py``'s ``site`` fixture: ``service(extra_env)`` starts the same
stack with extra ``KATAKANA_*`` settings given to the site *and* the worker (a storage folder on a
tiny file system, say), so each fault test sets up only what differs. Uploads are small zips whose
``predict`` answers at once: these tests are about what the service does around scoring.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker
from app.models import Cohort, EmailOutbox, Submission, SubmissionStatus, TestSet
from tests.e2e.conftest import PASSWORD, TRAINEE_EMAIL, _people
from tests.fixtures.artifacts import DataSet
from tests.fixtures.services import REPO, SmtpServer, WorkerFactory, WorkerProcess, free_port, wait_for
from tests.worker.conftest import PREDICT_ZEROS, settings_from_env, zip_with
from worker.embedded import RedisServer

SECRET = "reliability-secret-key-that-is-long-enough-0123456789"
FINAL = (SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLite, unless a test parametrizes this fixture indirectly with ``"postgresql"``."""
    kind = getattr(request, "param", "sqlite")
    return str(request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url"))


ON_BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@dataclass
class Service:
    url: str
    env: dict[str, str]
    worker_env: dict[str, str]
    worker: WorkerProcess
    redis: RedisServer
    smtp: SmtpServer
    sessions: sessionmaker[Session]
    server: subprocess.Popen[bytes]
    log_path: Path

    @property
    def settings_env(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if k.startswith("KATAKANA_")}

    def settings(self):  # type: ignore[no-untyped-def]
        return settings_from_env(self.settings_env)

    def login(self, email: str = TRAINEE_EMAIL) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=120)
        client.get("/login")
        response = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": client.cookies["katakana_csrf"]},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        return client

    def alive(self) -> bool:
        return self.server.poll() is None

    def set_daily_limit(self, limit: int) -> None:
        with self.sessions.begin() as session:
            session.execute(update(Cohort).values(daily_limit=limit))

    def submissions(self) -> list[Submission]:
        with self.sessions() as session:
            return list(session.scalars(select(Submission).order_by(Submission.id)))

    def outbox(self) -> list[EmailOutbox]:
        with self.sessions() as session:
            return list(session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))

    def active_testset(self) -> TestSet:
        with self.sessions() as session:
            row = session.scalars(select(TestSet).where(TestSet.is_active)).one()
            return row

    def wait_all_final(self, timeout: float = 300) -> list[Submission]:
        def done() -> list[Submission] | None:
            rows = self.submissions()
            return rows if rows and all(r.status in FINAL for r in rows) else None

        result: list[Submission] = wait_for(done, "every submission to be final", timeout=timeout)
        return result

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def upload_bytes(client: httpx.Client, data: bytes, filename: str = "submission.zip") -> httpx.Response:
    return client.post(
        "/upload",
        files={"file": (filename, data, "application/zip")},
        data={"csrf_token": client.cookies["katakana_csrf"]},
        headers={"Accept": "application/json"},
    )


QUICK_ZIP = zip_with(PREDICT_ZEROS)

ServiceFactory = Callable[..., Service]


@pytest.fixture
def service_factory(
    worker_env: dict[str, str],
    database_url: str,
    synthetic_set: DataSet,
    smtp_server: SmtpServer,
    redis_server: RedisServer,
    celery_worker_factory: WorkerFactory,
    tmp_path: Path,
) -> Iterator[ServiceFactory]:
    started: list[Service] = []
    engines = []

    def start(extra_env: dict[str, str] | None = None) -> Service:
        wenv = {**worker_env, "KATAKANA_WORKER_PRESENCE_TTL_S": "3", **(extra_env or {})}
        env = {**os.environ, **wenv, "KATAKANA_SECRET_KEY": SECRET}
        imported = subprocess.run(
            [sys.executable, "-m", "app.cli", "import-testset", str(synthetic_set.small_data),
             str(synthetic_set.small_label), "--version", "synthetic-small"],
            cwd=REPO, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stdout + imported.stderr
        engine = make_engine(database_url)
        engines.append(engine)
        sessions = make_sessionmaker(engine)
        _people(sessions)
        worker = celery_worker_factory(wenv)
        port = free_port()
        log_path = tmp_path / f"uvicorn-{port}.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1",
                 "--port", str(port), "--log-level", "warning"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        service = Service(
            url=f"http://127.0.0.1:{port}", env=env, worker_env=wenv, worker=worker, redis=redis_server,
            smtp=smtp_server, sessions=sessions, server=server, log_path=log_path,
        )  # fmt: skip
        started.append(service)

        def up() -> bool:
            if server.poll() is not None:
                pytest.fail(f"uvicorn exited:\n{service.log()[-5000:]}")
            try:
                return httpx.get(f"{service.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, "the site to answer")
        return service

    yield start
    for service in started:
        service.server.terminate()
        try:
            service.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.server.kill()
            service.server.wait()
        sys.stderr.write(service.log()[-5000:])
    for engine in engines:
        engine.dispose()


@pytest.fixture
def service(service_factory: ServiceFactory) -> Service:
    return service_factory()
