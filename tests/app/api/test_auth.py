"""Token authentication: no token, a bad or revoked one, a trainee's session, demoted owners."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiToken, Role, User
from tests.app.api.conftest import World, assert_error, call
from tests.app.conftest import login


def test_no_token_is_401_json_with_both_languages(client: TestClient, world: World) -> None:
    response = call(client, "GET", "/cohorts", None)
    error = assert_error(response, 401, "api_unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in str(error["message_en"]) and "トークン" in str(error["message_ja"])


def test_message_follows_accept_language(client: TestClient, world: World) -> None:
    response = client.get("/api/v1/me", headers={"Accept-Language": "en-GB"})
    assert response.json()["error"]["message"] == response.json()["error"]["message_en"]


def test_wrong_and_malformed_tokens_are_refused(client: TestClient, world: World) -> None:
    assert_error(call(client, "GET", "/me", "kt_not-a-real-token"), 401, "api_unauthenticated")
    assert_error(call(client, "GET", "/me", world.admin_token[3:]), 401, "api_unauthenticated")
    basic = client.get("/api/v1/me", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert_error(basic, 401, "api_unauthenticated")


def test_me_reports_owner_and_scope(client: TestClient, world: World) -> None:
    body = call(client, "GET", "/me", world.instructor_token).json()
    assert body["user"]["email"] == "sensei@example.com" and body["scope"] == "instructor"


def test_a_trainee_session_cannot_use_the_api(client: TestClient, world: World) -> None:
    login(client, world.people.trainee.email)
    assert_error(client.get("/api/v1/cohorts"), 401, "api_unauthenticated")
    assert_error(client.post("/api/v1/cohorts", json={"name": "x"}), 401, "api_unauthenticated")


def test_an_admin_session_cannot_use_the_api_either(client: TestClient, world: World) -> None:
    """Sessions never authenticate the API: no cross-site request can drive it."""
    login(client, world.people.admin.email)
    assert_error(client.get("/api/v1/users"), 401, "api_unauthenticated")


def test_instructor_token_cannot_use_admin_endpoints(client: TestClient, world: World) -> None:
    assert_error(call(client, "GET", "/users", world.instructor_token), 403, "api_admin_only")
    assert_error(call(client, "POST", "/cohorts", world.instructor_token, json={"name": "new"}), 403, "api_admin_only")
    assert_error(call(client, "GET", "/testsets", world.instructor_token), 403, "api_admin_only")
    assert_error(call(client, "POST", "/tokens", world.instructor_token, json={"name": "x"}), 403, "api_admin_only")


def test_token_of_someone_demoted_to_trainee_stops_working(client: TestClient, world: World, db: Session) -> None:
    instructor = db.get(User, world.people.instructor.id)
    assert instructor is not None
    instructor.role = Role.TRAINEE
    db.commit()
    assert_error(call(client, "GET", "/cohorts", world.instructor_token), 401, "api_unauthenticated")


def test_token_of_deactivated_user_stops_working(client: TestClient, world: World, db: Session) -> None:
    admin = db.get(User, world.people.admin.id)
    assert admin is not None
    admin.is_active = False
    db.commit()
    assert_error(call(client, "GET", "/me", world.admin_token), 401, "api_unauthenticated")


def test_use_is_recorded_and_only_the_hash_is_stored(client: TestClient, world: World, db: Session) -> None:
    assert call(client, "GET", "/me", world.admin_token).status_code == 200
    rows = db.scalars(select(ApiToken)).all()
    assert all(world.admin_token not in (row.token_hash, row.prefix) for row in rows)
    used = [row for row in rows if row.last_used_at is not None]
    assert [row.name for row in used] == ["admin"]


def test_unknown_api_paths_and_methods_answer_in_json(client: TestClient) -> None:
    missing = client.get("/api/v1/no-such-thing", headers={"Accept": "text/html"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = client.delete("/api/v1/cohorts")
    assert wrong.status_code == 405
    body = wrong.json()["error"]
    assert body["code"] == "method_not_allowed" and body["message_ja"] and body["message_en"]
