"""Asking before an upload is spent on a zip that scored near chance on the public smoke images.

Such a zip runs, so the pre-flight accepts it; but a model that gets its own training images about
as right as guessing is almost surely fed differently than in training, and the trainee would lose
an upload to learn that. The upload page asks once; the answer "upload it anyway" is remembered
per trainee and zip (its SHA-256), so the same zip does not ask twice.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.models import SmokeConfirmation
from app.services.preflight.verdict import PreflightVerdict

CONFIRM_FIELD = "confirm_near_chance"


def confirmed_in_form(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "on", "true", "yes")


def needs_confirmation(
    factory: sessionmaker[Session],
    user_id: int,
    sha256: str,
    verdict: PreflightVerdict,
    threshold: float,
    confirmed_now: bool,
) -> bool:
    """True when this upload must stop and ask; records a confirmation given now (blocking: run in a thread)."""
    if not verdict.near_chance(threshold):
        return False
    with factory() as db:
        if db.get(SmokeConfirmation, (user_id, sha256)) is not None:
            return False
        if not confirmed_now:
            return True
        db.add(SmokeConfirmation(user_id=user_id, zip_sha256=sha256))
        try:
            db.commit()
        except IntegrityError:  # the same confirmation arrived twice at once
            db.rollback()
    return False
