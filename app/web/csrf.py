"""Wiring of the CSRF token (see :mod:`app.security.csrf`) into requests and responses.

:class:`CSRFCookieMiddleware` makes sure every browser has the signed cookie and exposes its value to
templates as ``request.state.csrf_token``. :func:`verify_csrf` is a dependency on every router of the
site: it refuses any unsafe request whose form field or header does not repeat the cookie. The
streamed pre-flights the same rule itself, after parsing its form (see ``app.web.uploads``).
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from fastapi import Request, Response
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
from app.security.sessions import SESSION_COOKIE
from app.settings import Settings
from app.web.deps import SettingsDep


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
        session = jar[SESSION_COOKIE].value if SESSION_COOKIE in jar else None
        valid = valid_cookie(current, self.settings, session)
        fresh = None if valid else new_csrf_cookie(self.settings, session)
        scope.setdefault("state", {})["csrf_token"] = fresh or current

        async def send_with_cookie(message: Message) -> None:
            if fresh and message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                prefix = f"{CSRF_COOKIE}=".encode()
                # Login and logout set their own, rotated token: that one wins.
                if not any(k.lower() == b"set-cookie" and v.startswith(prefix) for k, v in headers):
                    headers.append((b"set-cookie", _cookie_header(fresh, self.settings).encode("latin-1")))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookie_header(value: str, settings: Settings) -> str:
    secure = "; Secure" if settings.is_production else ""
    return f"{CSRF_COOKIE}={value}; Path=/; SameSite=Lax; HttpOnly{secure}"


def rotate_csrf(response: Response, settings: Settings, session_cookie: str | None) -> None:
    """Give the browser a new token bound to ``session_cookie`` (``None``: signed out).

    Called when the session changes (login, logout): a token seen before no longer works after.
    """
    response.headers.append("set-cookie", _cookie_header(new_csrf_cookie(settings, session_cookie), settings))


async def verify_csrf(request: Request, settings: SettingsDep) -> None:
    if request.method in SAFE_METHODS:
        return
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            submitted = value if isinstance(value, str) else None
    if not tokens_match(request.cookies.get(CSRF_COOKIE), submitted, settings, request.cookies.get(SESSION_COOKIE)):
        raise CSRFRejected
