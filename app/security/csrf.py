"""CSRF protection: a signed double-submit token, checked on every unsafe request of the site.

A random value lives in a signed cookie; every form repeats it in a hidden ``csrf_token`` field
(JavaScript sends it as the ``X-CSRF-Token`` header). A cross-site page can make the browser send
the cookie but cannot read it, so it cannot repeat it. Signing stops a value planted by a sibling
sub-domain. Anonymous forms (login, password reset) are covered too, which a session-bound token
would not do.
"""

from __future__ import annotations

import hmac
import secrets

from itsdangerous import BadSignature, URLSafeSerializer

from app.settings import Settings

CSRF_COOKIE = "katakana_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret_key.get_secret_value(), salt="csrf")


def new_csrf_cookie(settings: Settings) -> str:
    return _serializer(settings).dumps(secrets.token_urlsafe(24))


def valid_cookie(cookie: str | None, settings: Settings) -> bool:
    if not cookie:
        return False
    try:
        _serializer(settings).loads(cookie)
    except BadSignature:
        return False
    return True


def tokens_match(cookie: str | None, submitted: str | None, settings: Settings) -> bool:
    """The submitted token equals the (validly signed) cookie."""
    if not submitted or not valid_cookie(cookie, settings):
        return False
    assert cookie is not None
    return hmac.compare_digest(cookie.encode(), submitted.encode())
