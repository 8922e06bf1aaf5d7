"""Fixtures for the site's tests: settings on a real database, the app with recorded hand-offs,
a client, and people to log in as."""

from __future__ import annotations

import datetime as dt
import functools
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.models import Cohort, Enrollment, Language, Role, User
from app.security.csrf import CSRF_COOKIE
from app.security.passwords import hash_password
from app.services.preflight.verdict import PreflightVerdict
from app.services.testset_import import TestSetImporter, import_and_commit
from app.settings import Settings

PASSWORD = "correct horse battery"


@dataclass
class Clock:
    """The app's clock, moved by tests instead of sleeping."""

    now: dt.datetime = field(default_factory=lambda: dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def set_local(self, text: str, tz: str = "Asia/Tokyo") -> None:
        from zoneinfo import ZoneInfo

        self.now = dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


@dataclass
class Checker:
    """A pre-flight stand-in (the engine's own check is tested in tests/scorer): refuses zips that
    contain a file named ``broken.py``; counts runs."""

    calls: list[Path] = field(default_factory=list)
    server_down: bool = False  # answer as the engine does when the sandbox cannot start

    def __call__(self, zip_path: Path) -> PreflightVerdict:
        self.calls.append(zip_path)
        if self.server_down:
            error = {"code": "sandbox_unavailable", "blame": "server", "message": "down", "message_ja": "停止中"}
            return PreflightVerdict(ok=False, error=error)
        with zipfile.ZipFile(zip_path) as zf:
            if "broken.py" in zf.namelist():
                error = {
                    "code": "predict_missing",
                    "message": "submit_katakana.py does not define a function predict(test_data).",
                    "message_ja": "submit_katakana.py に関数 predict(test_data) が定義されていません。",
                }
                return PreflightVerdict(ok=False, error=error, log="static check failed")
        return PreflightVerdict(ok=True)


def make_zip(name: str = "submit_katakana.py", body: bytes = b"def predict(x):\n    return x\n") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(name, body)
    return buffer.getvalue()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=db_url,
        data_dir=tmp_path / "var",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        preflight=True,
        # Most tests assert the answers of an upload whose verdict arrives within the request; the
        # live path (the request answers before the verdict) sets 0 (tests/app/web/test_preflight_pages.py).
        preflight_inline_wait_s=60,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def checker() -> Checker:
    return Checker()


@pytest.fixture
def enqueued() -> list[int]:
    return []


@pytest.fixture
def delivered() -> list[int]:
    return []


def in_process_importer(settings: Settings) -> TestSetImporter:
    """The import the scoring worker runs for the API, run here instead (no worker in these tests;
    tests/worker/test_testsets.py sends it to a real one)."""

    def run(data: Path, labels: Path, version: str, activate: bool) -> int:
        assert settings.testset_dir is not None
        engine = make_engine(settings.database_url)
        try:
            sessions = make_sessionmaker(engine)
            return import_and_commit(sessions, data, labels, settings.testset_dir, version=version, activate=activate)
        finally:
            engine.dispose()

    return run


@pytest.fixture
def app(settings: Settings, clock: Clock, checker: Checker, enqueued: list[int], delivered: list[int]) -> FastAPI:
    return create_app(
        settings,
        clock=clock,
        preflight_checker=checker,
        enqueue=enqueued.append,
        deliver_email=delivered.append,
        testset_importer=in_process_importer(settings),
    )


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def db(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


@dataclass
class People:
    cohort: Cohort
    trainee: User
    other_trainee: User
    instructor: User
    admin: User


@functools.cache
def password_hash() -> str:
    """``PASSWORD``'s Argon2 hash, made once per test process: each hash costs 0.2 s of CPU on
    purpose, and the people fixture adds four users to most tests. Logging in still verifies it."""
    return hash_password(PASSWORD)


def add_user(db: Session, email: str, role: Role = Role.TRAINEE, language: Language = Language.JA) -> User:
    user = User(
        email=email,
        name=email.split("@")[0],
        password_hash=password_hash(),
        role=role,
        language=language,
    )
    db.add(user)
    db.flush()
    return user


@pytest.fixture
def people(db: Session) -> People:
    cohort = Cohort(name="dl_tokyo_2", title="DL Tokyo 2", daily_limit=3, timezone="Asia/Tokyo")
    db.add(cohort)
    trainee = add_user(db, "hanako@example.com")
    other = add_user(db, "taro@example.com")
    instructor = add_user(db, "sensei@example.com", Role.INSTRUCTOR)
    admin = add_user(db, "admin@example.com", Role.ADMIN)
    db.flush()
    db.add_all(
        [
            Enrollment(user_id=trainee.id, cohort_id=cohort.id, role=Role.TRAINEE),
            Enrollment(user_id=other.id, cohort_id=cohort.id, role=Role.TRAINEE),
            Enrollment(user_id=instructor.id, cohort_id=cohort.id, role=Role.INSTRUCTOR),
        ]
    )
    db.commit()
    return People(cohort, trainee, other, instructor, admin)


def csrf(client: TestClient) -> str:
    if CSRF_COOKIE not in client.cookies:
        client.get("/login")
    return str(client.cookies[CSRF_COOKIE])


def login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def upload(
    client: TestClient, data: bytes, filename: str = "submission.zip", validation: str = "", json: bool = True
) -> httpx.Response:
    headers = {"Accept": "application/json"} if json else {}
    return client.post(
        "/upload",
        files={"file": (filename, data, "application/zip")},
        data={"csrf_token": csrf(client), "validation_accuracy": validation},
        headers=headers,
        follow_redirects=False,
    )
