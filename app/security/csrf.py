"""CSRF protection: a signed double-submit token, bound to the browser's session.

A random value lives in a signed cookie; every form repeats it in a hidden ``csrf_token`` field
(JavaScript sends it as the ``X-CSRF-Token`` header). A cross-site page can make the browser send
the cookie but cannot read it, so it cannot repeat it. Signing stops a value planted by a sibling
sub-domain. Anonymous forms (login, password reset) are covered too, which a token stored in the
session row would not do.

The signed value also carries a digest of the session cookie it was issued with (empty when signed
out), and is valid only next to that cookie. A token learnt before logging in (or one an attacker
obtained for their own session, or for a signed-out browser) is therefore worthless once the
victim's session exists: logging in and out issues a new token (:func:`app.web.csrf.rotate_csrf`),
and a token that does not match the current session is replaced on the next page.
"""

from __future__ import annotations

import hashlib
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


def session_binding(session_cookie: str | None) -> str:
    """What ties a token to a session: a digest of its cookie (never the cookie itself)."""
    return hashlib.sha256(session_cookie.encode()).hexdigest()[:32] if session_cookie else ""


def new_csrf_cookie(settings: Settings, session_cookie: str | None) -> str:
    return _serializer(settings).dumps([secrets.token_urlsafe(24), session_binding(session_cookie)])


def valid_cookie(cookie: str | None, settings: Settings, session_cookie: str | None) -> bool:
    """Signed by us, and issued for the session cookie sent with it."""
    if not cookie:
        return False
    try:
        payload = _serializer(settings).loads(cookie)
    except BadSignature:
        return False
    if not (isinstance(payload, list) and len(payload) == 2 and all(isinstance(p, str) for p in payload)):
        return False
    return hmac.compare_digest(payload[1], session_binding(session_cookie))


def tokens_match(cookie: str | None, submitted: str | None, settings: Settings, session_cookie: str | None) -> bool:
    """The submitted token equals the cookie, which is validly signed and bound to this session."""
    if not submitted or not valid_cookie(cookie, settings, session_cookie):
        return False
    assert cookie is not None
    return hmac.compare_digest(cookie.encode(), submitted.encode())
