"""Schemathesis against the API's own OpenAPI document, in-process, with an admin token.

Every operation gets a bounded number of generated requests (valid and invalid); the checks are no
server error and responses that match the documented schemas. Runs on SQLite: the point is the
API's handling of odd input, which the database does not change (the API tests run on both).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from sqlalchemy.orm import Session

from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.models import Cohort, Enrollment, Role, TokenScope, User
from app.services.api_tokens import create_token
from app.settings import Settings
from tests.app.conftest import in_process_importer

EXAMPLES = 15  # per operation: ~30 operations stay well under a minute


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    from tests.fixtures.db import migrate

    tmp: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{tmp / 'fuzz.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as db:
        secret = _seed(db)
    engine.dispose()
    settings_ = Settings(
        environment="test", database_url=url, data_dir=tmp / "var", preflight=False,
        secret_key="fuzz-secret-key-0123456789abcdef0123456789", _env_file=None,  # type: ignore[call-arg]
    )  # fmt: skip
    app = create_app(
        settings_,
        enqueue=lambda _id: None,
        deliver_email=lambda _id: None,
        testset_importer=in_process_importer(settings_),
    )
    with TestClient(app):  # runs the lifespan: the engine lives on app.state while the module runs
        yield app, secret


def _seed(db: Session) -> str:
    admin = User(email="admin@example.com", name="管理者", role=Role.ADMIN)
    trainee = User(email="t@example.com", name="受講生", role=Role.TRAINEE)
    cohort = Cohort(name="dl_tokyo_2", timezone="Asia/Tokyo")
    db.add_all([admin, trainee, cohort])
    db.flush()
    db.add(Enrollment(user_id=trainee.id, cohort_id=cohort.id, role=Role.TRAINEE))
    secret = create_token(db, admin, TokenScope.ADMIN, "fuzz").secret
    db.commit()
    return secret


@pytest.fixture(scope="module")
def api_schema(fuzz_app: tuple[FastAPI, str]) -> schemathesis.BaseSchema:
    app, _secret = fuzz_app
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_api_never_errors(api_schema: schemathesis.BaseSchema, fuzz_app: tuple[FastAPI, str]) -> None:
    """Each operation in turn (schemathesis' pytest plugin does not support this pytest yet)."""
    _app, secret = fuzz_app
    headers = {"Authorization": f"Bearer {secret}"}
    failures: dict[str, str] = {}
    calls: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def run(case: schemathesis.Case) -> None:
            calls.append(case.operation.label)
            case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])

        try:
            run()
        except Exception as exc:  # collect every failing operation, not just the first
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert len(set(calls)) == len(operations) and len(calls) >= 5 * len(operations)
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
