"""Server-side sessions behind a signed cookie.

The cookie carries a random token (signed, so tampered cookies are refused without a database
look-up); the database stores only the token's hash. Logging out or setting a new password deletes
the rows, which ends the session everywhere — a purely client-side cookie could not do that.
"""

from __future__ import annotations

import datetime as dt

from fastapi import Response
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload

from app.models import User, UserSession, utcnow
from app.security.tokens import new_token, token_hash
from app.settings import Settings

SESSION_COOKIE = "katakana_session"


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret_key.get_secret_value(), salt="session")


def start_session(db: Session, user: User, response: Response, settings: Settings) -> str:
    """Start a session and set its cookie on ``response``; returns the cookie's value."""
    token = new_token()
    expires = utcnow() + dt.timedelta(seconds=settings.session_max_age_s)
    db.add(UserSession(token_hash=token_hash(token), user_id=user.id, expires_at=expires))
    cookie = _serializer(settings).dumps(token)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=settings.session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=settings.is_production,
        path="/",
    )
    return cookie


def session_user(db: Session, cookie: str | None, settings: Settings) -> User | None:
    """The active user a session cookie belongs to, or None (absent, forged, expired, logged out)."""
    if not cookie:
        return None
    try:
        token = _serializer(settings).loads(cookie)
    except BadSignature:
        return None
    if not isinstance(token, str):
        return None
    # The user comes in the same statement: every signed-in page asks, so one round trip, not two.
    row = db.scalar(
        select(UserSession).options(joinedload(UserSession.user)).where(UserSession.token_hash == token_hash(token))
    )
    if row is None or row.expires_at <= utcnow() or not row.user.is_active:
        return None
    return row.user


def forget_session(db: Session, cookie: str | None, settings: Settings) -> None:
    """Delete the session a cookie names (if any), leaving the browser's cookie to the caller."""
    if cookie:
        try:
            token = _serializer(settings).loads(cookie)
        except BadSignature:
            token = None
        if isinstance(token, str):
            db.execute(delete(UserSession).where(UserSession.token_hash == token_hash(token)))


def end_session(db: Session, cookie: str | None, response: Response, settings: Settings) -> None:
    forget_session(db, cookie, settings)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=settings.is_production)


def end_all_sessions(db: Session, user_id: int) -> None:
    db.execute(delete(UserSession).where(UserSession.user_id == user_id))


def purge_expired_sessions(db: Session, now: dt.datetime) -> int:
    """Delete sessions past their expiry; for the worker's periodic sweep."""
    result = db.execute(delete(UserSession).where(UserSession.expires_at <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
