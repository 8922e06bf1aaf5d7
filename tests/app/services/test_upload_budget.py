"""Each trainee's storage budget: what counts, which support copies make room, and when it refuses."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_sessionmaker
from app.models import Preflight, Submission, SubmissionStatus
from app.services import upload_budget
from app.services.storage import path_for
from app.settings import Settings
from tests.app.conftest import People

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
KB = 1000
NEW = dt.timedelta()


@pytest.fixture
def budget(settings: Settings) -> Settings:
    """4 KB a trainee, uploads of at most 2 KB."""
    return settings.model_copy(update={"upload_storage_budget_bytes": 4 * KB, "upload_max_bytes": 2 * KB})


def _sessions(db: Session) -> sessionmaker[Session]:
    engine = db.get_bind()
    assert isinstance(engine, Engine)
    return make_sessionmaker(engine)


def _check(
    db: Session,
    settings: Settings,
    people: People,
    name: str,
    state: str,
    size: int,
    *,
    age: dt.timedelta = dt.timedelta(),
) -> str:
    """A check of ``people.trainee`` with its zip of ``size`` bytes in the store; its key."""
    key = f"zips/{name[:2]}/{name}.zip"
    assert settings.storage_dir is not None
    path = path_for(settings.storage_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"z" * size)
    at = NOW - age
    db.add(
        Preflight(
            user_id=people.trainee.id, cohort_id=people.cohort.id, state=state, storage_key=key, zip_sha256=name,
            zip_size=size, original_filename=f"{name}.zip", created_at=at, updated_at=at,
        )
    )  # fmt: skip
    db.commit()
    return key


def _stored(settings: Settings, key: str) -> bool:
    assert settings.storage_dir is not None
    return path_for(settings.storage_dir, key).exists()


def test_pending_and_recent_support_copies_count_once_each(db: Session, budget: Settings, people: People) -> None:
    pending = _check(db, budget, people, "aa1", "needs_confirmation", KB)
    _check(db, budget, people, "aa1", "needs_confirmation", KB)  # the same zip asked twice: one file
    _check(db, budget, people, "bb1", "checking", KB)
    support = _check(db, budget, people, "cc1", "refused", KB)
    _check(db, budget, people, "dd1", "refused", KB, age=dt.timedelta(days=2))  # past the retention
    _check(db, budget, people, "ee1", "expired", KB)  # its zip went with it
    named = _check(db, budget, people, "ff1", "accepted", KB)
    db.add(
        Submission(
            user_id=people.trainee.id, cohort_id=people.cohort.id, status=SubmissionStatus.QUEUED, created_at=NOW,
            quota_day=NOW.date(), original_filename="ff1.zip", zip_sha256="ff1", zip_size=KB, storage_key=named,
        )
    )  # fmt: skip
    _check(db, budget, people, "ff1", "refused", KB)  # the same bytes a submission keeps anyway
    held = {h.key: h.pending for h in upload_budget.held_zips(db, people.trainee.id, budget, NOW)}
    assert held == {pending: True, "zips/bb/bb1.zip": True, support: False}


def test_support_copies_make_room_oldest_first(db: Session, budget: Settings, people: People) -> None:
    oldest = _check(db, budget, people, "aa1", "refused", 2 * KB, age=dt.timedelta(hours=3))
    older = _check(db, budget, people, "bb1", "failed", KB, age=dt.timedelta(hours=2))
    newer = _check(db, budget, people, "cc1", "refused", KB, age=dt.timedelta(hours=1))
    went = upload_budget.make_room(
        _sessions(db), people.trainee.id, "zips/dd/dd1.zip", KB + 1, budget, NOW, written_before=time.time() + 1
    )
    assert went == 1  # 4 KB held + 1 KB new: the oldest 2 KB go, and that is enough
    assert not _stored(budget, oldest) and _stored(budget, older) and _stored(budget, newer)


def test_the_same_bytes_again_take_no_more_room(db: Session, budget: Settings, people: People) -> None:
    key = _check(db, budget, people, "aa1", "needs_confirmation", 2 * KB)
    _check(db, budget, people, "bb1", "needs_confirmation", 2 * KB)
    upload_budget.make_room(_sessions(db), people.trainee.id, key, 2 * KB, budget, NOW, written_before=time.time())
    assert _stored(budget, key)


def test_pending_zips_that_leave_no_room_refuse_with_the_time_it_would_fit(
    db: Session, budget: Settings, people: People
) -> None:
    _check(db, budget, people, "aa1", "needs_confirmation", 2 * KB, age=dt.timedelta(hours=5))
    _check(db, budget, people, "bb1", "needs_confirmation", KB, age=dt.timedelta(hours=1))
    support = _check(db, budget, people, "cc1", "refused", KB)
    with pytest.raises(upload_budget.OverBudget) as refused:
        upload_budget.make_room(
            _sessions(db), people.trainee.id, "zips/dd/dd1.zip", 2 * KB, budget, NOW, written_before=time.time() + 1
        )
    # 3 KB pending + 2 KB new > 4 KB: it fits once the older question (2 KB) expires, 24 h after it was asked.
    assert refused.value.held == 3 * KB and refused.value.limit == 4 * KB
    assert refused.value.retry_at == NOW - dt.timedelta(hours=5) + dt.timedelta(hours=24)
    assert _stored(budget, support)  # refused: nothing was deleted for it
    with pytest.raises(upload_budget.OverBudget):  # asked from the declared length, before the body
        upload_budget.peek(_sessions(db), people.trainee.id, 2 * KB, budget, NOW)
    upload_budget.peek(_sessions(db), people.trainee.id, KB, budget, NOW)  # 1 KB would fit


def test_a_budget_below_one_upload_is_refused_at_start(settings: Settings) -> None:
    with pytest.raises(ValueError, match="KATAKANA_UPLOAD_STORAGE_BUDGET_BYTES"):
        Settings.model_validate({**settings.model_dump(), "upload_storage_budget_bytes": 10, "upload_max_bytes": 11})
