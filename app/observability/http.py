"""The web process's observability: request context for logs, one access line per request, ``/metrics``.

:class:`RequestContextMiddleware` is plain ASGI (not ``BaseHTTPMiddleware``) so the endpoint runs in
the middleware's own context: a submission id the upload route binds once the row exists is still
bound when the access line is written after the response, and ``anyio.to_thread`` carries it into the
threads the route uses. Routes that name a submission in their path (``/submissions/42/…``,
``/api/v1/submissions/42``) or a pre-flight (``/uploads/preflights/7/…``) are bound from the path
before the route runs, so their access line names it even when the route ran on a thread.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import ProcessCollector
from prometheus_client.registry import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.models import Role
from app.observability import structured_logs
from app.observability.metrics import make_registry, render
from app.observability.redis_client import redis_for
from app.security.sessions import SESSION_COOKIE, session_user
from app.settings import Settings

access_log = logging.getLogger("app.access")
_SUBMISSION_PATH = re.compile(r"^(?:/api/v\d+)?/submissions/(\d+)(?:/|$)")
_PREFLIGHT_PATH = re.compile(r"^/uploads/(?:preflights|checks)/(\d+)(?:/|$)")
_QUIET_PATHS = ("/healthz", "/readyz", "/metrics", "/static/")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        fields: dict[str, Any] = {"request_id": uuid.uuid4().hex[:12]}
        match = _SUBMISSION_PATH.match(path)
        if match:
            fields["submission_id"] = int(match.group(1))
        match = _PREFLIGHT_PATH.match(path)
        if match:
            fields["preflight_id"] = int(match.group(1))
        token = structured_logs.bind(**fields)
        status = 500
        started = time.perf_counter()

        async def send_and_remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_remember)
        finally:
            if not path.startswith(_QUIET_PATHS) or status >= 500:
                access_log.info(
                    "%s %s %s",
                    scope.get("method", ""),
                    path,
                    status,
                    extra={
                        "method": scope.get("method", ""),
                        "path": path,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
            structured_logs.unbind(token)


def broker_url(settings: Settings) -> str:
    """The same URL the worker uses (without importing Celery into the web process)."""
    from app.embedded_redis import embedded_url

    return settings.redis_url or embedded_url(settings.data_dir)


def metrics_registry(request: Request) -> CollectorRegistry:
    app = request.app
    registry: CollectorRegistry | None = getattr(app.state, "metrics_registry", None)
    if registry is None:
        url = broker_url(app.state.settings)
        registry = make_registry(lambda: app.state.sessionmaker, lambda: redis_for(url))
        ProcessCollector(registry=registry)  # this web process's RSS and CPU: is memory flat?
        app.state.metrics_registry = registry
    return registry


metrics_router = APIRouter()


def metrics_allowed(request: Request) -> bool:
    """``/metrics`` tells how busy the service is and how many trainees failed: not for everyone.

    Open only when configured so (``metrics_public``); otherwise a scraper sends the configured
    ``metrics_token`` as a Bearer token, or an admin looks at it in a signed-in browser.
    """
    settings: Settings = request.app.state.settings
    if settings.metrics_public:
        return True
    expected = settings.metrics_token.get_secret_value()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if expected and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode()):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return False
    with request.app.state.sessionmaker() as db:
        user = session_user(db, cookie, settings)
        return user is not None and user.role == Role.ADMIN


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if not await anyio.to_thread.run_sync(metrics_allowed, request):
        return Response(
            "metrics need a token (Authorization: Bearer ...) or an admin session\n",
            status_code=401,
            media_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    registry = metrics_registry(request)
    body, content_type = await anyio.to_thread.run_sync(render, registry)
    return Response(body, media_type=content_type)
