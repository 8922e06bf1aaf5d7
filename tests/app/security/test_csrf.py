"""CSRF: every unsafe request of the site needs the token; a token from elsewhere does not pass."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.security.csrf import CSRF_COOKIE
from tests.app.conftest import People, csrf, login


def _api_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """(full path, route) for every endpoint, through FastAPI's included routers."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((prefix + route.path, route))
        nested = getattr(route, "original_router", None)
        if nested is not None:
            found += _api_routes(nested.routes, prefix + route.include_context.prefix)
    return found


def _unsafe_routes(app: FastAPI) -> list[tuple[str, str]]:
    return [
        (method, path.replace("{submission_id}", "1"))
        for path, route in _api_routes(app.routes)
        if not path.startswith("/api/")  # the JSON API authenticates by bearer token, not cookie
        for method in sorted(route.methods - {"GET", "HEAD", "OPTIONS"})
    ]


def test_every_unsafe_site_route_refuses_a_request_without_the_token(
    app: FastAPI, client: TestClient, people: People
) -> None:
    login(client, people.trainee.email)
    routes = _unsafe_routes(app)
    assert ("POST", "/upload") in routes and ("POST", "/login") in routes
    for method, path in routes:
        response = client.request(
            method, path, data={"email": "x@example.com", "password": "x"}, follow_redirects=False
        )
        assert response.status_code == 403, (method, path, response.status_code)
        assert "再読み込み" in response.text  # says what to do


@pytest.mark.parametrize("token", ["", "not-the-cookie", "forged.signature"])
def test_login_with_a_wrong_token_is_refused(client: TestClient, people: People, token: str) -> None:
    csrf(client)
    response = client.post("/login", data={"email": people.trainee.email, "password": "x", "csrf_token": token})
    assert response.status_code == 403


def test_a_token_not_signed_by_this_server_is_refused(client: TestClient, people: People) -> None:
    client.cookies.set(CSRF_COOKIE, "planted")
    response = client.post("/login", data={"email": people.trainee.email, "password": "x", "csrf_token": "planted"})
    assert response.status_code == 403


def test_header_token_is_accepted_for_scripts(client: TestClient, people: People) -> None:
    login(client, people.trainee.email)
    response = client.post("/logout", headers={"X-CSRF-Token": csrf(client)}, follow_redirects=False)
    assert response.status_code == 303
