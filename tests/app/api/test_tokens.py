"""``/api/v1/tokens``: issue (secret shown once), list, revoke; scopes bounded by the owner's role."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.app.api.conftest import World, assert_error, call


def test_issue_use_list_and_revoke(client: TestClient, world: World) -> None:
    response = call(client, "POST", "/tokens", world.admin_token,
                    json={"name": "講師用", "scope": "instructor", "user_id": world.other_instructor.id})  # fmt: skip
    assert response.status_code == 201, response.text
    issued = response.json()
    secret = issued["secret"]
    assert secret.startswith("kt_") and issued["prefix"] == secret[:10]
    assert call(client, "GET", "/me", secret).json()["user"]["email"] == "osaka-sensei@example.com"
    listed = call(client, "GET", f"/tokens?user_id={world.other_instructor.id}", world.admin_token).json()
    assert len(listed["items"]) == 2 and all("secret" not in t for t in listed["items"])
    revoked = call(client, "POST", f"/tokens/{issued['id']}/revoke", world.admin_token)
    assert revoked.json()["revoked_at"] is not None
    assert_error(call(client, "GET", "/me", secret), 401, "api_unauthenticated")


def test_scope_cannot_exceed_the_owners_role(client: TestClient, world: World) -> None:
    wide = call(client, "POST", "/tokens", world.admin_token,
                json={"name": "x", "scope": "admin", "user_id": world.people.instructor.id})  # fmt: skip
    assert_error(wide, 409, "api_token_scope_too_wide")
    trainee = call(client, "POST", "/tokens", world.admin_token,
                   json={"name": "x", "scope": "instructor", "user_id": world.people.trainee.id})  # fmt: skip
    assert_error(trainee, 409, "api_token_scope_too_wide")
    assert_error(call(client, "POST", "/tokens/999/revoke", world.admin_token), 404, "api_not_found")


def test_admins_own_instructor_token_sees_only_taught_cohorts(client: TestClient, world: World) -> None:
    secret = call(client, "POST", "/tokens", world.admin_token, json={"name": "narrow", "scope": "instructor"}).json()[
        "secret"
    ]
    assert call(client, "GET", "/cohorts", secret).json()["total"] == 0
    assert_error(call(client, "GET", "/users", secret), 403, "api_admin_only")
