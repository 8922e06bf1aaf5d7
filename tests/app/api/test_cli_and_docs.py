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
    # Schemas under names a reader would give them, and only the API's (not the site's forms).
    schemas = set(doc["components"]["schemas"])
    assert {"CohortOutPage", "ImportTestsetVersionForm", "PutPublicSetForm"} <= schemas
    assert not [name for name in schemas if name.startswith(("Body_", "Page_"))]
    assert not {"LoginForm", "ProfileSaveForm"} & schemas and "Body_login" not in str(doc)
    page = client.get("/docs")
    assert page.status_code == 200 and "POST /api/v1/cohorts" in page.text
    assert_self_contained(page.text)
    # A page of the site: its layout and navigation, the OpenAPI link, worked examples.
    assert 'class="site-header"' in page.text and 'data-testid="page-api-docs"' in page.text
    assert 'href="/openapi.json"' in page.text and "管理 API リファレンス" in page.text
    for example in ("me", "cohort", "enrol", "leaderboard", "error"):
        assert f'data-testid="example-{example}"' in page.text, example
    assert "山田 花子,hanako@example.ac.jp" in page.text  # Japanese data in the examples
    assert "4 行目" in page.text and "line 4" in page.text  # the error body in both languages
    assert "`" not in page.text.split('id="reference"')[1].split('id="schemas"')[0]  # no literal backticks
    assert "<code>" in page.text
    english = client.get("/docs", cookies={"katakana_lang": "en"}).text
    assert "Admin API reference" in english and "Examples" in english
