"""The leaderboard's per-trainee summary stays equal to what the submissions say, after every kind
of write: upload, result (the worker's Core UPDATE), rescoring, deletion (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from app.models import Cohort, SubmissionStatus, TraineeScore
from app.services.leaderboard import cohort_figures, leaderboard
from app.services.rescoring import rescore_cohort, reset_for_rescore
from app.services.trainee_scores import rebuild_cohort, summary_values
from app.settings import Settings
from tests.app.api.conftest import T0, add_submission
from tests.app.conftest import People

H = dt.timedelta(hours=1)
COLUMNS = (
    "submissions", "last_submission_at", "best_accuracy", "best_reached_at", "best_submission_id",
    "latest_accuracy", "latest_submission_id",
)  # fmt: skip


def stored(db: Session, user_id: int, cohort_id: int) -> dict[str, Any] | None:
    row = db.get(TraineeScore, (cohort_id, user_id), populate_existing=True)
    return None if row is None else {name: getattr(row, name) for name in COLUMNS}


def assert_exact(db: Session, user_id: int, cohort_id: int) -> dict[str, Any] | None:
    """The stored row equals a fresh computation from the submissions."""
    row = stored(db, user_id, cohort_id)
    assert row == summary_values(db.connection(), user_id, cohort_id)
    return row


def test_summary_follows_uploads_results_rescoring_and_deletion(db: Session, people: People) -> None:
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    me = people.trainee.id
    assert stored(db, me, cohort.id) is None  # never submitted: no row

    first = add_submission(db, people.trainee, cohort, accuracy=0.90, at=T0)
    best = add_submission(db, people.trainee, cohort, accuracy=0.95, at=T0 + H)
    again = add_submission(db, people.trainee, cohort, accuracy=0.95, at=T0 + 2 * H)  # ties rank the earlier
    queued = add_submission(db, people.trainee, cohort, status=SubmissionStatus.QUEUED, at=T0 + 3 * H)
    db.commit()
    row = assert_exact(db, me, cohort.id)
    assert row is not None
    assert (row["submissions"], row["best_accuracy"], row["best_submission_id"]) == (4, 0.95, best.id)
    assert row["best_reached_at"] == T0 + H and row["last_submission_at"] == T0 + 3 * H
    assert (row["latest_accuracy"], row["latest_submission_id"]) == (0.95, again.id)

    # The queued one is scored through the ORM: it becomes the best and the latest.
    queued.status, queued.accuracy = SubmissionStatus.SUCCEEDED, 0.97
    db.commit()
    row = assert_exact(db, me, cohort.id)
    assert row is not None and (row["best_submission_id"], row["latest_submission_id"]) == (queued.id, queued.id)

    # Rescoring clears the result: the best falls back to the earlier 0.95.
    reset_for_rescore(db, queued, requested_by_id=None)
    db.commit()
    row = assert_exact(db, me, cohort.id)
    assert row is not None and (row["best_submission_id"], row["submissions"]) == (best.id, 4)

    # Deleting the best leaves the tie's second submission as the best, reached later.
    db.delete(best)
    db.commit()
    row = assert_exact(db, me, cohort.id)
    assert row is not None and (row["best_submission_id"], row["best_reached_at"]) == (again.id, T0 + 2 * H)

    for submission in (first, again, queued):
        db.delete(submission)
    db.commit()
    assert stored(db, me, cohort.id) is None


def test_cohort_rescore_and_rebuild_agree_with_the_submissions(db: Session, people: People) -> None:
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    for i, accuracy in enumerate((0.91, 0.96, 0.93)):
        add_submission(db, people.trainee, cohort, accuracy=accuracy, at=T0 + i * H)
    add_submission(db, people.other_trainee, cohort, status=SubmissionStatus.FAILED, at=T0)
    db.commit()
    rescore_cohort(db, cohort.id, requested_by_id=None)
    db.commit()
    for user in (people.trainee, people.other_trainee):
        row = assert_exact(db, user.id, cohort.id)
        assert row is not None and row["best_accuracy"] is None  # everything is queued again
    # A rebuild (what the bench runs after bulk inserts) writes exactly what the refreshes wrote.
    before = [stored(db, u.id, cohort.id) for u in (people.trainee, people.other_trainee)]
    rebuild_cohort(db.connection(), cohort.id)
    db.commit()
    assert [stored(db, u.id, cohort.id) for u in (people.trainee, people.other_trainee)] == before


def test_the_workers_result_update_refreshes_the_summary(db: Session, people: People, settings: Settings) -> None:
    from worker.results import finish

    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    add_submission(db, people.trainee, cohort, accuracy=0.90, at=T0)
    running = add_submission(db, people.trainee, cohort, status=SubmissionStatus.RUNNING, at=T0 + H)
    db.commit()
    now = T0 + 2 * H
    values = {"status": SubmissionStatus.SUCCEEDED, "accuracy": 0.98, "correct": 98, "total": 100, "finished_at": now}
    assert finish(db, running.id, values, settings, now, attempt=running.attempts) is not None
    db.commit()
    row = assert_exact(db, people.trainee.id, cohort.id)
    assert row is not None and (row["best_accuracy"], row["latest_submission_id"]) == (0.98, running.id)
    [entry] = [e for e in leaderboard(db, cohort) if e.user_id == people.trainee.id]
    assert (entry.best_accuracy, entry.latest_accuracy, entry.submissions) == (0.98, 0.98, 2)


def test_cohort_list_figures(db: Session, people: People) -> None:
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    cohort.pass_threshold = 0.95
    add_submission(db, people.trainee, cohort, accuracy=0.96, at=T0)
    add_submission(db, people.other_trainee, cohort, accuracy=0.90, at=T0)
    db.commit()
    figures = cohort_figures(db, [cohort])[cohort.id]
    assert (figures.trainees, figures.submitted, figures.passed) == (2, 2, 1)
    assert figures.best == 0.96 and figures.median is not None and abs(figures.median - 0.93) < 1e-9
