"""What the upload page shows besides the form: the submission contract (with the runtime's real
libraries and limits), the trainee's standing, today's quota and why it changed, the templates."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.i18n import Translator
from app.models import Cohort, Submission, SubmissionStatus, UploadGrant, User
from app.services.quota import QuotaStatus, quota_status
from app.settings import Settings

log = logging.getLogger(__name__)

SCORER_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "scorer" / "templates"


@dataclass(frozen=True)
class QuotaView:
    status: QuotaStatus
    remaining_text: str
    reset_text: str
    grant_texts: tuple[str, ...] = ()  # why today's limit is above the cohort's: one line per grant


def quota_view(db: Session, user: User, cohort: Cohort, now: dt.datetime, t: Translator) -> QuotaView:
    status = quota_status(db, user.id, cohort, now)
    grants = db.scalars(
        select(UploadGrant)
        .where(UploadGrant.user_id == user.id, UploadGrant.day == status.day)
        .order_by(UploadGrant.created_at, UploadGrant.id)
    )
    # "2 / 4" next to a cohort limit of 3 reads as a bug unless the page says where the 4th came from.
    grant_texts = tuple(
        t("quota_grant_reason", extra=g.extra, reason=g.reason) if g.reason else t("quota_grant", extra=g.extra)
        for g in grants
    )
    return QuotaView(
        status,
        t("remaining_today", remaining=status.remaining, limit=status.limit),
        reset_text(status, now, t),
        grant_texts,
    )


@dataclass(frozen=True)
class Standing:
    best: float | None  # best test accuracy so far in this cohort (None: nothing scored yet)
    scored: int
    threshold: float | None
    best_id: int | None = None

    @property
    def passed(self) -> bool | None:
        if self.threshold is None or self.best is None:
            return None
        return self.best >= self.threshold


def standing(db: Session, user_id: int, cohort: Cohort) -> Standing:
    """The trainee's best score against the pass mark, shown wherever they decide to upload again."""
    scored = select(Submission).where(
        Submission.user_id == user_id,
        Submission.cohort_id == cohort.id,
        Submission.status == SubmissionStatus.SUCCEEDED,
        Submission.accuracy.is_not(None),
    )
    best = db.scalars(scored.order_by(Submission.accuracy.desc(), Submission.id).limit(1)).first()
    count = db.scalar(select(func.count()).select_from(scored.subquery())) or 0
    return Standing(best.accuracy if best else None, int(count), cohort.pass_threshold, best.id if best else None)


def reset_text(status: QuotaStatus, now: dt.datetime, t: Translator) -> str:
    """ "resets 00:00 JST, in 3 h 12 min"."""
    local = status.resets_at.astimezone(ZoneInfo(status.timezone))
    return t(
        "resets_at",
        time=local.strftime("%H:%M"),
        tz=local.tzname() or status.timezone,
        remaining=t.duration(status.resets_in(now)),
    )


# Frameworks trainees commonly reach for; the page says which of them the runtime lacks, from its probe.
FRAMEWORKS = (("torch", "PyTorch"), ("tensorflow", "TensorFlow"), ("keras", "Keras"), ("jax", "JAX"))
PACKAGE_NAMES = {"numpy": "NumPy", "scipy": "SciPy", "pandas": "pandas", "matplotlib": "matplotlib",
                 "sklearn": "scikit-learn", "PIL": "Pillow"}  # fmt: skip


@dataclass(frozen=True)
class RuntimeView:
    versions: dict[str, str]  # display name -> version, Python first
    unavailable: tuple[str, ...]  # frameworks no installed runtime offers
    keras: dict[str, str] | None = None  # the TensorFlow runtime's TensorFlow and Keras versions; None: not installed


def runtime_key(settings: Settings) -> str | None:
    return str(settings.runtime_python) if settings.runtime_python else None


def tensorflow_runtime_key(settings: Settings) -> str | None:
    return str(settings.tensorflow_runtime_python) if settings.tensorflow_runtime_python else None


@functools.lru_cache(maxsize=4)
def runtime_versions(runtime_python: str | None) -> dict[str, str]:
    """The scoring runtime's Python and library versions ({} when it cannot be asked)."""
    try:
        from scorer.runtime import find_runtime

        return find_runtime(runtime_python).info().versions()
    except Exception:
        log.exception("cannot read the scoring runtime's versions")
        return {}


@functools.lru_cache(maxsize=4)
def runtime_view(runtime_python: str | None, tensorflow_python: str | None = None) -> RuntimeView | None:
    """The libraries trainees may import (the NumPy runtime's; TensorFlow and Keras from the
    TensorFlow runtime when installed), and the frameworks they may not (None: probe failed)."""
    from scorer.runtime import find_runtime, find_tensorflow_runtime

    try:
        info = find_runtime(runtime_python).info()
    except Exception:
        log.exception("cannot probe the scoring runtime")
        return None
    try:  # a TensorFlow runtime that cannot be asked is shown as not installed (and logged)
        tensorflow = find_tensorflow_runtime(tensorflow_python)
        tf_info = tensorflow.info() if tensorflow is not None else None
    except Exception:
        log.exception("cannot probe the TensorFlow runtime")
        tf_info = None
    versions = {"Python": info.python}
    versions.update({PACKAGE_NAMES.get(k, k): v for k, v in info.packages.items()})
    modules = set(info.modules) | set(tf_info.modules if tf_info is not None else ())
    keras = None
    if tf_info is not None:
        keras = {label: tf_info.packages[name] for name, label in FRAMEWORKS if name in tf_info.packages}
    return RuntimeView(versions, tuple(label for name, label in FRAMEWORKS if name not in modules), keras)


@dataclass(frozen=True)
class LimitsView:
    wall: str
    memory: str
    chunk: int


def limits_view(t: Translator, settings: Settings) -> LimitsView:
    """The sandbox limits as the workers apply them (the same settings)."""
    from app.scoring_config import run_limits
    from scorer.errors import human_bytes
    from scorer.pipeline import ScoringConfig

    limits = run_limits(settings)
    minutes, seconds = divmod(int(limits.wall_seconds), 60)
    wall = t("limit_minutes", m=minutes) if not seconds else t("seconds", s=str(int(limits.wall_seconds)))
    return LimitsView(wall, human_bytes(limits.memory_bytes), ScoringConfig.chunk_size)


def template_files() -> list[str]:
    if not SCORER_TEMPLATES.is_dir():
        return []
    return sorted(p.name for p in SCORER_TEMPLATES.iterdir() if p.is_file() and not p.name.startswith("."))
