"""Old login attempts and expired sessions can be purged by the worker's periodic sweep."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import LoginAttempt, UserSession
from app.security.sessions import purge_expired_sessions
from app.security.throttle import purge_old_attempts
from app.settings import Settings
from tests.app.conftest import People

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def test_purges_only_what_no_longer_counts(db: Session, people: People, settings: Settings) -> None:
    db.add_all(
        [
            LoginAttempt(email="a@example.com", ip="1.2.3.4", succeeded=False, created_at=NOW - dt.timedelta(hours=1)),
            LoginAttempt(
                email="a@example.com", ip="1.2.3.4", succeeded=False, created_at=NOW - dt.timedelta(minutes=1)
            ),
            UserSession(token_hash="a" * 64, user_id=people.trainee.id, expires_at=NOW - dt.timedelta(seconds=1)),
            UserSession(token_hash="b" * 64, user_id=people.trainee.id, expires_at=NOW + dt.timedelta(days=1)),
        ]
    )
    db.commit()
    assert purge_old_attempts(db, settings, NOW) == 1
    assert purge_expired_sessions(db, NOW) == 1
    db.commit()
    assert db.scalar(select(func.count()).select_from(LoginAttempt)) == 1
    assert db.scalar(select(func.count()).select_from(UserSession)) == 1
