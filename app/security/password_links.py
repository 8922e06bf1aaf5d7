"""One-time links to set a password: "forgot my password" and an admin's invitation.

The link carries a random token; the database keeps its SHA-256, an expiry and when it was used, so
a link works once, for a limited time, and a copy of the database cannot be turned into links.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import PasswordToken, TokenPurpose, User, utcnow
from app.security.passwords import hash_password
from app.security.sessions import end_all_sessions
from app.security.tokens import new_token, token_hash
from app.settings import Settings


def lifetime(purpose: TokenPurpose, settings: Settings) -> dt.timedelta:
    """How long a link works: a reset link a day, an invitation (default) a week."""
    if purpose == TokenPurpose.INVITE:
        return dt.timedelta(days=settings.invite_token_ttl_days)
    return dt.timedelta(seconds=settings.password_token_ttl_s)


def issue(db: Session, user: User, purpose: TokenPurpose, settings: Settings) -> str:
    """A new token for ``user`` (earlier unused ones stop working); returns the plain token."""
    now = utcnow()
    db.execute(
        update(PasswordToken)
        .where(PasswordToken.user_id == user.id, PasswordToken.used_at.is_(None))
        .values(used_at=now)
    )
    token = new_token()
    db.add(
        PasswordToken(
            user_id=user.id,
            token_hash=token_hash(token),
            purpose=purpose,
            created_at=now,
            expires_at=now + lifetime(purpose, settings),
        )
    )
    db.flush()
    return token


MAX_LINKS_PER_HOUR = 3


def too_many_recent(db: Session, user: User, settings: Settings, now: dt.datetime | None = None) -> bool:
    """True after 3 links in an hour: the form cannot be used to flood someone's mailbox."""
    since = (now or utcnow()) - dt.timedelta(hours=1)
    recent = db.scalar(
        select(func.count())
        .select_from(PasswordToken)
        .where(PasswordToken.user_id == user.id, PasswordToken.created_at > since)
    )
    return (recent or 0) >= MAX_LINKS_PER_HOUR


def link(token: str, settings: Settings) -> str:
    return f"{settings.base_url}/password/set?token={token}"


def find_usable(db: Session, token: str, now: dt.datetime | None = None) -> PasswordToken | None:
    row = db.scalar(select(PasswordToken).where(PasswordToken.token_hash == token_hash(token)))
    now = now or utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now or not row.user.is_active:
        return None
    return row


def consume(db: Session, token: str, new_password: str) -> User | None:
    """Set the password if the token is usable, mark it used and end the user's other sessions.

    The ``used_at IS NULL`` condition is part of the UPDATE so two simultaneous uses of one link
    cannot both succeed.
    """
    row = find_usable(db, token)
    if row is None:
        return None
    claimed = db.execute(
        update(PasswordToken)
        .where(PasswordToken.id == row.id, PasswordToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row.user.password_hash = hash_password(new_password)
    end_all_sessions(db, row.user_id)
    return row.user
