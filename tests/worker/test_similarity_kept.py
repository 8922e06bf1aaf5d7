"""The cohort answers a worker process keeps between similarity updates: an update from them stores
exactly what one that reads every prediction stores, also after a result is scored again or leaves
the cohort, and it reads no predictions but the new result's. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker
from app.models import Cohort, Role, SimilarityPair, Submission, SubmissionStatus, TestSet, User
from app.settings import Settings
from scorer.classes import NUM_CLASSES
from worker.similarity import forget_kept_cohorts, update_for_submission

IMAGES = 1500
TRAINEES = 8
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


class Models:
    """Independent models as real ones err: on hard images, towards each image's likely wrong class."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.labels = np.repeat(np.arange(NUM_CLASSES), IMAGES // NUM_CLASSES)
        self.difficulty = self.rng.beta(0.3, 3.0, size=IMAGES)
        self.likely = (self.labels + self.rng.integers(1, NUM_CLASSES, size=IMAGES)) % NUM_CLASSES

    def model(self, error_rate: float) -> bytes:
        wrong = self.rng.random(IMAGES) < np.clip(self.difficulty * error_rate / self.difficulty.mean(), 0, 1)
        other = (self.labels + self.rng.integers(1, NUM_CLASSES, size=IMAGES)) % NUM_CLASSES
        guess = np.where(self.rng.random(IMAGES) < 0.6, self.likely, other)
        return np.where(wrong, guess, self.labels).astype(np.uint8).tobytes()


@dataclass
class Cohort8:
    settings: Settings
    sessions: sessionmaker[Session]
    models: Models
    cohort_id: int
    testset_id: int
    users: list[int]
    finished: int = 0

    def submit(self, user_id: int, predictions: bytes) -> int:
        """A scored result, committed as the worker stores one (a finish time of its own)."""
        self.finished += 1
        with self.sessions.begin() as session:
            row = Submission(
                user_id=user_id, cohort_id=self.cohort_id, created_at=T0, quota_day=T0.date(),
                original_filename="submit.zip", zip_sha256=f"{self.finished:064x}", zip_size=1,
                storage_key="unused", status=SubmissionStatus.SUCCEEDED, testset_id=self.testset_id,
                finished_at=T0 + dt.timedelta(seconds=self.finished), predictions=predictions,
            )  # fmt: skip
            session.add(row)
            session.flush()
            return int(row.id)

    def pairs_after(self, submission_id: int, *, kept: bool) -> set[tuple[Any, ...]]:
        """Every stored pair after updating for ``submission_id``, then rolled back: from what this
        process keeps, or (``kept=False``) after forgetting it, reading every prediction."""
        if not kept:
            forget_kept_cohorts()
        with self.sessions() as session:
            update_for_submission(session, submission_id, self.settings, T0)
            stored = {
                (p.user_a_id, p.user_b_id, p.submission_a_id, p.submission_b_id, p.both_wrong, p.same_wrong,
                 p.agreement, p.expected_same_wrong, p.lift, p.lift_se, p.same_wrong_easy, p.reference_trainees)
                for p in session.scalars(select(SimilarityPair).where(SimilarityPair.cohort_id == self.cohort_id))
            }  # fmt: skip
            session.rollback()
        return stored


@pytest.fixture
def cohort(db_url: str, tmp_path: Path) -> Iterator[Cohort8]:
    settings = Settings(database_url=db_url, data_dir=tmp_path / "var", _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    models = Models()
    labels_path = tmp_path / "labels.npy"
    np.save(labels_path, models.labels)
    with sessions.begin() as session:
        testset = TestSet(
            version="kept", data_path="unused", labels_path=str(labels_path), sha256="k" * 64, n_images=IMAGES,
            class_counts=[IMAGES // NUM_CLASSES] * NUM_CLASSES, is_active=True,
        )  # fmt: skip
        group = Cohort(name="dl_kept", title="DL 保持")
        trainees = [User(email=f"t{i}@example.test", name=f"研修生 {i}", role=Role.TRAINEE) for i in range(TRAINEES)]
        session.add_all([testset, group, *trainees])
        session.flush()
        world = Cohort8(settings, sessions, models, group.id, testset.id, [t.id for t in trainees])
    forget_kept_cohorts()  # another test's cohort may have had the same ids
    for i, user_id in enumerate(world.users):  # two results each, every one folded in as it arrives
        for rate in (0.10 - 0.008 * i, 0.08 - 0.008 * i):
            submission_id = world.submit(user_id, models.model(rate))
            with sessions.begin() as session:
                update_for_submission(session, submission_id, settings, T0)
    yield world
    forget_kept_cohorts()
    engine.dispose()


@contextmanager
def _prediction_reads(cohort: Cohort8) -> Iterator[list[Any]]:
    """The parameters of every statement that reads stored predictions (selects the column)."""
    engine = cohort.sessions.kw["bind"]
    seen: list[Any] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "submissions.predictions" in statement.split("FROM")[0]:
            seen.append(parameters)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_an_update_from_the_kept_answers_stores_what_reading_everything_stores(cohort: Cohort8) -> None:
    new = cohort.submit(cohort.users[3], cohort.models.model(0.05))
    kept = cohort.pairs_after(new, kept=True)
    assert len(kept) == TRAINEES * (TRAINEES - 1) // 2
    assert kept == cohort.pairs_after(new, kept=False)


def test_a_warm_update_reads_only_the_new_results_predictions(cohort: Cohort8) -> None:
    cohort.pairs_after(cohort.submit(cohort.users[1], cohort.models.model(0.05)), kept=True)  # the process keeps it
    new = cohort.submit(cohort.users[2], cohort.models.model(0.05))
    with _prediction_reads(cohort) as seen:
        cohort.pairs_after(new, kept=True)
    # One read: the new row itself (its id the only parameter); no other submission's bytes.
    assert len(seen) == 1
    assert list(seen[0].values() if isinstance(seen[0], dict) else seen[0]) == [new]
    forget_kept_cohorts()
    with _prediction_reads(cohort) as seen:  # and the test can tell: a process that keeps nothing reads all
        cohort.pairs_after(new, kept=True)
    assert len(seen) == 2


def test_a_result_scored_again_or_gone_is_not_compared_from_memory(cohort: Cohort8) -> None:
    first = cohort.submit(cohort.users[5], cohort.models.model(0.05))
    cohort.pairs_after(first, kept=True)
    # Trainee 2's latest result is scored again and now answers as trainee 0's latest does.
    with cohort.sessions.begin() as session:
        latest = {
            user: max(session.scalars(select(Submission.id).where(Submission.user_id == user)))
            for user in (cohort.users[0], cohort.users[2])
        }
        copied = session.scalar(select(Submission.predictions).where(Submission.id == latest[cohort.users[0]]))
        session.execute(
            update(Submission)
            .where(Submission.id == latest[cohort.users[2]])
            .values(predictions=copied, finished_at=T0 + dt.timedelta(hours=1))
        )
    new = cohort.submit(cohort.users[0], cohort.models.model(0.04))
    kept = cohort.pairs_after(new, kept=True)
    assert kept == cohort.pairs_after(new, kept=False)
    # And a result that left the cohort's scored ones (back in the queue for a rescore).
    with cohort.sessions.begin() as session:
        session.execute(
            update(Submission).where(Submission.id == latest[cohort.users[2]]).values(status=SubmissionStatus.QUEUED)
        )
    later = cohort.submit(cohort.users[6], cohort.models.model(0.04))
    kept = cohort.pairs_after(later, kept=True)
    assert kept == cohort.pairs_after(later, kept=False)
    pair = {(p[0], p[1]): p for p in kept}[tuple(sorted((cohort.users[2], cohort.users[6])))]
    assert latest[cohort.users[2]] not in pair[2:4]
