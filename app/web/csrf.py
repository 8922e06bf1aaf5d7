"""Wiring of the CSRF token (see :mod:`app.security.csrf`) into requests and responses.

:class:`CSRFCookieMiddleware` makes sure every browser has the signed cookie and exposes its value to
templates as ``request.state.csrf_token``. :func:`verify_csrf` is a dependency on every router of the
site: it refuses any unsafe request whose form field or header does not repeat the cookie. The
streamed upload checks the same rule itself, after parsing its form (see ``app.web.uploads``).
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.security.csrf import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SAFE_METHODS,
    new_csrf_cookie,
    tokens_match,
    valid_cookie,
)
from app.settings import Settings


class CSRFRejected(Exception):
    """Answered with 403 and a message asking to reload the page."""


class CSRFCookieMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie_header = b"; ".join(v for k, v in scope["headers"] if k == b"cookie").decode("latin-1")
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except Exception:  # a malformed Cookie header: treat as no cookie
            jar = SimpleCookie()
        current = jar[CSRF_COOKIE].value if CSRF_COOKIE in jar else None
        fresh = None if valid_cookie(current, self.settings) else new_csrf_cookie(self.settings)
        scope.setdefault("state", {})["csrf_token"] = fresh or current

        async def send_with_cookie(message: Message) -> None:
            if fresh and message["type"] == "http.response.start":
                secure = "; Secure" if self.settings.is_production else ""
                value = f"{CSRF_COOKIE}={fresh}; Path=/; SameSite=Lax; HttpOnly{secure}"
                message.setdefault("headers", []).append((b"set-cookie", value.encode("latin-1")))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


async def verify_csrf(request: Request) -> None:
    if request.method in SAFE_METHODS:
        return
    settings: Settings = request.app.state.settings
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            submitted = value if isinstance(value, str) else None
    if not tokens_match(request.cookies.get(CSRF_COOKIE), submitted, settings):
        raise CSRFRejected
