"""``python -m app.cli create-token`` and the API's documentation pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.cli import CommandError, create_admin, create_api_token
from app.db import make_engine, make_sessionmaker
from app.services.api_tokens import authenticate
from app.settings import Settings
from tests.app.api.conftest import World
from tests.fixtures.html import assert_self_contained


@pytest.fixture
def cli_settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", environment="test")  # type: ignore[call-arg]


def test_create_token_from_the_command_line(cli_settings: Settings) -> None:
    create_admin(cli_settings, "Root@Example.com", "管理者", None)
    secret = create_api_token(cli_settings, "root@example.com", "admin", "deploy")
    with make_sessionmaker(make_engine(cli_settings.database_url))() as session:
        token = authenticate(session, secret)
        assert token is not None and token.name == "deploy" and token.user.email == "root@example.com"
    with pytest.raises(CommandError, match="no user"):
        create_api_token(cli_settings, "nobody@example.com", "admin", "x")


def test_openapi_lists_only_the_api_and_docs_render_offline(client: TestClient, world: World) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["paths"] and all(path.startswith("/api/v1/") for path in doc["paths"])
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    assert "/api/v1/cohorts/{cohort_id}/leaderboard" in doc["paths"]
    page = client.get("/docs")
    assert page.status_code == 200 and "POST /api/v1/cohorts" in page.text
    assert_self_contained(page.text)
