"""The cohort leaderboard: one query per page, ranked, filtered and sorted in memory.

The query reads the cohort's trainees with their ``trainee_scores`` row (count, last submission,
best accuracy and when it was first reached — ties rank the earlier one higher — and the latest
scored accuracy), which :mod:`app.services.trainee_scores` keeps exact whenever a submission is
written; no request aggregates the submissions themselves. A cohort has a few thousand trainees
at most, so ranking, filtering and sorting those rows in Python costs microseconds, and every sort
order and filter shares one query plan.

Only ``succeeded`` submissions give an accuracy; failed ones still count as submissions.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Cohort, Enrollment, Role, Submission, TraineeScore, User


class Standing(StrEnum):
    PASSED = "passed"
    NOT_YET = "not_yet"  # submitted, not (yet) above the threshold
    NEVER = "never"  # no submission at all


class SortKey(StrEnum):
    RANK = "rank"
    NAME = "name"
    BEST = "best"
    LATEST = "latest"
    SUBMISSIONS = "submissions"
    LAST = "last"
    PASSED = "passed"


@dataclass(frozen=True, slots=True)
class Entry:
    user_id: int
    name: str
    email: str
    rank: int | None  # None until the trainee has a scored submission
    best_accuracy: float | None
    best_reached_at: dt.datetime | None
    latest_accuracy: float | None
    submissions: int
    last_submission_at: dt.datetime | None
    passed: bool
    standing: Standing


def _rows(db: Session, cohort_id: int) -> list[Any]:
    """One statement: the cohort's active trainees with their summary row (none: never submitted)."""
    query = (
        select(
            User.id,
            User.name,
            User.email,
            TraineeScore.submissions,
            TraineeScore.last_submission_at,
            TraineeScore.best_accuracy,
            TraineeScore.best_reached_at,
            TraineeScore.latest_accuracy,
        )
        .select_from(Enrollment)
        .join(User, User.id == Enrollment.user_id)
        .outerjoin(TraineeScore, (TraineeScore.cohort_id == cohort_id) & (TraineeScore.user_id == User.id))
        .where(Enrollment.cohort_id == cohort_id, Enrollment.role == Role.TRAINEE, User.is_active.is_(True))
    )
    return list(db.execute(query).all())


_FAR = dt.datetime.max.replace(tzinfo=dt.UTC)


def leaderboard(db: Session, cohort: Cohort) -> list[Entry]:
    """Every active trainee of the cohort, in rank order (trainees without a score last, by name).

    The rows are sorted as plain tuples and each entry is built once, with its rank: thousands of
    trainees are ranked on every page view, so no per-row copies.
    """
    threshold = cohort.pass_threshold
    rows = _rows(db, cohort.id)
    rows.sort(key=lambda r: (r[5] is None, -(r[5] or 0.0), r[6] or _FAR, r[1], r[0]))
    entries = []
    rank = 0
    for user_id, name, email, n, last_at, best, best_at, latest in rows:
        if best is not None:
            rank += 1
        passed = best is not None and threshold is not None and best >= threshold
        entries.append(
            Entry(
                user_id=user_id,
                name=name,
                email=email,
                rank=rank if best is not None else None,
                best_accuracy=best,
                best_reached_at=best_at,
                latest_accuracy=latest,
                submissions=n or 0,
                last_submission_at=last_at,
                passed=passed,
                standing=Standing.PASSED if passed else Standing.NOT_YET if n else Standing.NEVER,
            )
        )
    return entries


_SORT_VALUES: dict[SortKey, Callable[[Entry], Any]] = {
    SortKey.RANK: lambda e: e.rank,
    SortKey.NAME: lambda e: e.name.casefold(),
    SortKey.BEST: lambda e: e.best_accuracy,
    SortKey.LATEST: lambda e: e.latest_accuracy,
    SortKey.SUBMISSIONS: lambda e: e.submissions,
    SortKey.LAST: lambda e: e.last_submission_at,
    SortKey.PASSED: lambda e: e.passed,
}


def arrange(
    entries: list[Entry], *, standing: Standing | None = None, sort: SortKey = SortKey.RANK, descending: bool = False
) -> list[Entry]:
    """Filter by standing and sort by one column; empty values stay last in both directions.

    The sort is stable over the rank order, so equal values keep the ranking between them.
    """
    chosen = [e for e in entries if standing is None or e.standing == standing]
    value = _SORT_VALUES[sort]
    present = [e for e in chosen if value(e) is not None]
    missing = [e for e in chosen if value(e) is None]
    present.sort(key=value, reverse=descending)
    return present + missing


@dataclass(frozen=True)
class Overview:
    trainees: int
    submitted: int
    passed: int
    never_submitted: list[Entry]
    histogram: list[tuple[str, int]]  # (bin label, trainees whose best accuracy falls in it)
    per_day: list[tuple[dt.date, int]]  # submissions per local day, oldest first

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.trainees if self.trainees else None


HISTOGRAM_EDGES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98, 1.0)


def histogram(values: list[float], edges: Sequence[float] = HISTOGRAM_EDGES) -> list[tuple[str, int]]:
    """Counts per bin [low, high); the last bin includes 1.0. Finer bins near the top, where most trainees are."""
    counts: Counter[int] = Counter()
    for value in values:
        for i in range(len(edges) - 1):
            last = i == len(edges) - 2
            if edges[i] <= value < edges[i + 1] or (last and value >= edges[i + 1]):
                counts[i] += 1
                break
    return [(f"{edges[i] * 100:g}–{edges[i + 1] * 100:g}%", counts[i]) for i in range(len(edges) - 1)]


def submissions_per_day(db: Session, cohort_id: int) -> list[tuple[dt.date, int]]:
    rows = db.execute(
        select(Submission.quota_day, func.count())
        .where(Submission.cohort_id == cohort_id)
        .group_by(Submission.quota_day)
        .order_by(Submission.quota_day)
    ).all()
    return [(day, int(n)) for day, n in rows]


def overview(db: Session, cohort: Cohort, entries: list[Entry] | None = None) -> Overview:
    entries = leaderboard(db, cohort) if entries is None else entries
    return Overview(
        trainees=len(entries),
        submitted=sum(1 for e in entries if e.submissions),
        passed=sum(1 for e in entries if e.passed),
        never_submitted=[e for e in entries if e.standing == Standing.NEVER],
        histogram=histogram([e.best_accuracy for e in entries if e.best_accuracy is not None]),
        per_day=submissions_per_day(db, cohort.id),
    )


@dataclass(frozen=True)
class CohortFigures:
    """The line a cohort gets in an instructor's cohort list."""

    trainees: int
    submitted: int
    passed: int
    best: float | None
    median: float | None  # of the trainees' best accuracies (those with a scored submission)


def cohort_figures(db: Session, cohorts: Sequence[Cohort]) -> dict[int, CohortFigures]:
    """One query for every listed cohort, from the same summary rows as the leaderboard."""
    thresholds = {c.id: c.pass_threshold for c in cohorts}
    rows = db.execute(
        select(Enrollment.cohort_id, TraineeScore.submissions, TraineeScore.best_accuracy)
        .select_from(Enrollment)
        .join(User, User.id == Enrollment.user_id)
        .outerjoin(TraineeScore, (TraineeScore.cohort_id == Enrollment.cohort_id) & (TraineeScore.user_id == User.id))
        .where(Enrollment.cohort_id.in_(thresholds), Enrollment.role == Role.TRAINEE, User.is_active.is_(True))
    ).all()
    counts: dict[int, list[int]] = {cid: [0, 0, 0] for cid in thresholds}
    bests: dict[int, list[float]] = {cid: [] for cid in thresholds}
    for cohort_id, n, best in rows:
        figures = counts[cohort_id]
        figures[0] += 1
        figures[1] += 1 if n else 0
        threshold = thresholds[cohort_id]
        figures[2] += 1 if best is not None and threshold is not None and best >= threshold else 0
        if best is not None:
            bests[cohort_id].append(best)
    return {
        cid: CohortFigures(
            trainees=t,
            submitted=s,
            passed=p,
            best=max(bests[cid], default=None),
            median=statistics.median(bests[cid]) if bests[cid] else None,
        )
        for cid, (t, s, p) in counts.items()
    }
