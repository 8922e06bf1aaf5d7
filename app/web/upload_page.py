"""What the upload page shows besides the form: today's quota, the runtime's versions, the templates."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from app.i18n import Translator
from app.models import Cohort, User
from app.services.quota import QuotaStatus, quota_status
from app.settings import Settings

log = logging.getLogger(__name__)

SCORER_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "scorer" / "templates"


@dataclass(frozen=True)
class QuotaView:
    status: QuotaStatus
    remaining_text: str
    reset_text: str


def quota_view(db: Session, user: User, cohort: Cohort, now: dt.datetime, t: Translator) -> QuotaView:
    status = quota_status(db, user.id, cohort, now)
    return QuotaView(
        status,
        t("remaining_today", remaining=status.remaining, limit=status.limit),
        reset_text(status, now, t),
    )


def reset_text(status: QuotaStatus, now: dt.datetime, t: Translator) -> str:
    """ "resets 00:00 JST, in 3 h 12 min"."""
    local = status.resets_at.astimezone(ZoneInfo(status.timezone))
    return t(
        "resets_at",
        time=local.strftime("%H:%M"),
        tz=local.tzname() or status.timezone,
        remaining=t.duration(status.resets_in(now)),
    )


def runtime_key(settings: Settings) -> str | None:
    return str(settings.runtime_python) if settings.runtime_python else None


@functools.lru_cache(maxsize=4)
def runtime_versions(runtime_python: str | None) -> dict[str, str]:
    """The scoring runtime's Python and library versions ({} when it cannot be asked)."""
    try:
        from scorer.runtime import find_runtime

        return find_runtime(runtime_python).info().versions()
    except Exception:
        log.exception("cannot read the scoring runtime's versions")
        return {}


def template_files() -> list[str]:
    if not SCORER_TEMPLATES.is_dir():
        return []
    return sorted(p.name for p in SCORER_TEMPLATES.iterdir() if p.is_file() and not p.name.startswith("."))
