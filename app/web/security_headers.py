"""Response headers that make the browser refuse what the site never does itself.

- ``Content-Security-Policy``: scripts, styles and everything else only from this site's own files
  (``/static``), no inline script or style and no ``eval``. An injected ``<script>`` or ``onerror=``
  in, say, a trainee's name or a zip's file name would then not run even if escaping failed once.
  ``frame-ancestors 'none'`` (and the older ``X-Frame-Options: DENY``) stops the site from being
  framed, so a page elsewhere cannot trick a trainee into clicking "upload" or "log out" (clickjacking).
- ``X-Content-Type-Options: nosniff``: a downloaded log or zip is never reinterpreted as HTML/script.
- ``Referrer-Policy: same-origin``: a page whose address carries a secret (the password link) does
  not hand it to another site.
- ``Strict-Transport-Security`` in production only: there the site is served over HTTPS, and a
  browser that has seen it never tries plain HTTP again. On a development machine it would make the
  browser refuse ``http://127.0.0.1``.

Plain ASGI (not ``BaseHTTPMiddleware``): it only adds headers to ``http.response.start``. A response
that sets one of these headers itself keeps its own value.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if settings.is_production and settings.hsts_max_age_s > 0:
        headers.append((b"strict-transport-security", f"max-age={settings.hsts_max_age_s}; includeSubDomains".encode()))
    return headers


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = security_headers(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in self.headers if name not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
