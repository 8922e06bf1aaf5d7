"""API tokens: created by an admin (API or CLI), shown once, stored as a SHA-256, revocable.

A random 32-byte secret has enough entropy that a plain SHA-256 is the right hash (a slow password
hash would add nothing but latency to every API call). The ``kt_`` prefix makes a leaked token easy
to recognise in logs and secret scanners; the stored ``prefix`` lets an admin tell tokens apart.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiToken, Role, TokenScope, User, utcnow
from app.security.tokens import token_hash

TOKEN_PREFIX = "kt_"  # noqa: S105 - a marker, not a secret
SHOWN_PREFIX_LENGTH = 10


class TokenRefused(ValueError):
    """The token cannot be created; ``code`` is an i18n key (``api_token_scope_too_wide``…)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class IssuedToken:
    row: ApiToken
    secret: str  # shown once, never stored


def allowed_scopes(user: User) -> set[TokenScope]:
    if not user.is_active:
        return set()
    if user.role == Role.ADMIN:
        return {TokenScope.ADMIN, TokenScope.INSTRUCTOR}
    if user.role == Role.INSTRUCTOR:
        return {TokenScope.INSTRUCTOR}
    return set()


def create_token(
    db: Session,
    user: User,
    scope: TokenScope,
    name: str,
    *,
    created_by: User | None = None,
    now: dt.datetime | None = None,
) -> IssuedToken:
    """A new token for ``user``; refused when the user's role does not reach the scope."""
    if scope not in allowed_scopes(user):
        raise TokenRefused("api_token_scope_too_wide")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=token_hash(secret),
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        scope=scope,
        created_at=now or utcnow(),
        created_by_id=created_by.id if created_by else None,
    )
    db.add(row)
    db.flush()
    return IssuedToken(row, secret)


def authenticate(db: Session, secret: str, now: dt.datetime | None = None) -> ApiToken | None:
    """The live token for ``secret``: not revoked, and its owner still active and still allowed its scope."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(secret)))
    if row is None or row.revoked_at is not None or row.scope not in allowed_scopes(row.user):
        return None
    row.last_used_at = now or utcnow()
    return row


def revoke(db: Session, token: ApiToken, now: dt.datetime | None = None) -> None:
    if token.revoked_at is None:
        token.revoked_at = now or utcnow()
