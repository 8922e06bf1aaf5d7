"""The cohort leaderboard: ranked, filtered, sorted and cut into pages by the database.

Every figure comes from the cohort's ``trainee_scores`` rows (count, last submission, best accuracy
and when it was first reached, latest scored accuracy), which :mod:`app.services.trainee_scores`
keeps exact whenever a submission is written; no request aggregates the submissions themselves.

One statement answers a page: a window function numbers the cohort's trainees in rank order (best
accuracy, ties to the one who reached it first, then name), the standing is a ``CASE`` on the pass
mark, and the outer query filters, sorts by the chosen column (empty values last in both
directions, ties in rank order, so the order is total and pages never overlap or skip a row) and
returns one page with the filtered total (``count(*) OVER ()``). Only the rows shown reach Python:
ranking 2,000 trainees and building 2,000 entries in Python on every view cost most of a request.

Only ``succeeded`` submissions give an accuracy; failed ones still count as submissions.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, and_, case, func, literal, select
from sqlalchemy.orm import Session

from app.db import fold, folded
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


PER_PAGE = 100


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs several times more, ×2,000 rows
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


@dataclass(frozen=True, slots=True)
class BoardPage:
    entries: list[Entry]
    total: int  # trainees matching the filter, on every page
    page: int  # the page shown
    pages: int
    asked: int  # the page asked for: larger than ``pages`` when it was out of range

    @property
    def clamped(self) -> bool:
        return self.asked != self.page


def _summary(cohort: Cohort, *, numbered: bool) -> Select[Any]:
    """The cohort's active trainees with their summary (none: never submitted) and their standing;
    ``numbered`` adds their position in rank order (trainees without a scored submission follow,
    by name) as a window function, else the column is a placeholder."""
    best = TraineeScore.best_accuracy
    scored = best.is_not(None)
    position: ColumnElement[Any] = func.row_number().over(order_by=_rank_order()) if numbered else literal(0)
    if cohort.pass_threshold is None:
        passed: ColumnElement[Any] = literal(0)
    else:
        passed = case((and_(scored, best >= cohort.pass_threshold), 1), else_=0)
    submissions = func.coalesce(TraineeScore.submissions, 0)
    standing = case(
        (passed == 1, Standing.PASSED.value),
        (submissions > 0, Standing.NOT_YET.value),
        else_=Standing.NEVER.value,
    )
    return (
        select(
            User.id.label("user_id"),
            User.name.label("name"),
            User.email.label("email"),
            submissions.label("submissions"),
            TraineeScore.last_submission_at.label("last_at"),
            best.label("best"),
            TraineeScore.best_reached_at.label("best_at"),
            TraineeScore.latest_accuracy.label("latest"),
            position.label("position"),
            passed.label("passed"),
            standing.label("standing"),
        )
        .select_from(Enrollment)
        .join(User, User.id == Enrollment.user_id)
        .outerjoin(TraineeScore, (TraineeScore.cohort_id == Enrollment.cohort_id) & (TraineeScore.user_id == User.id))
        .where(Enrollment.cohort_id == cohort.id, Enrollment.role == Role.TRAINEE, User.is_active.is_(True))
    )


def _rank_order() -> tuple[Any, ...]:
    """Best accuracy first, ties to whoever reached it first, then name; no score: last."""
    best = TraineeScore.best_accuracy
    return (best.is_(None), best.desc(), TraineeScore.best_reached_at, User.name, User.id)


def _ranked(cohort: Cohort) -> Subquery:
    return _summary(cohort, numbered=True).subquery("ranked")


def _sort_value(ranked: Subquery, sort: SortKey) -> ColumnElement[Any]:
    c = ranked.c
    return {
        SortKey.RANK: case((c.best.is_not(None), c.position)),
        SortKey.NAME: func.lower(c.name),
        SortKey.BEST: c.best,
        SortKey.LATEST: c.latest,
        SortKey.SUBMISSIONS: c.submissions,
        SortKey.LAST: c.last_at,
        SortKey.PASSED: c.passed,
    }[sort]


def board_query(
    cohort: Cohort,
    *,
    standing: Standing | None,
    sort: SortKey,
    descending: bool,
    search: str | None,
    scored_only: bool,
    with_total: bool = True,
) -> Select[Any]:
    """Filtered and sorted; empty values last in both directions, ties in rank order. Public so
    that the tests and the benchmark can ask the database how it runs it (EXPLAIN)."""
    ranked = _ranked(cohort)
    c = ranked.c
    value = _sort_value(ranked, sort)
    # The filtered total rides along with each page's rows (one statement); the CSV, which reads
    # every row anyway, skips that second pass over the window.
    total = func.count().over() if with_total else literal(0)
    query = select(ranked, total.label("total")).order_by(
        value.is_(None), value.desc() if descending else value.asc(), c.position
    )
    if standing is not None:
        query = query.where(c.standing == standing.value)
    if scored_only:
        query = query.where(c.best.is_not(None))
    if search:  # full-width letters match their plain ones on both databases (see app.db.fold)
        needle = fold(search.strip())
        query = query.where(
            folded(c.name).contains(needle, autoescape=True) | folded(c.email).contains(needle, autoescape=True)
        )
    return query


_STANDINGS = {s.value: s for s in Standing}


def _entries(rows: Sequence[Any]) -> list[Entry]:
    """Rows unpacked as plain tuples: reading a result row's fields by name costs tens of
    microseconds a field, which the CSV's 2,000 rows would feel."""
    entries = []
    for user_id, name, email, submissions, last_at, best, best_at, latest, position, passed, standing, _ in rows:
        entries.append(
            Entry(
                user_id=user_id,
                name=name,
                email=email,
                rank=position if best is not None else None,
                best_accuracy=best,
                best_reached_at=best_at,
                latest_accuracy=latest,
                submissions=int(submissions),
                last_submission_at=last_at,
                passed=bool(passed),
                standing=_STANDINGS[standing],
            )
        )
    return entries


def board(
    db: Session,
    cohort: Cohort,
    *,
    standing: Standing | None = None,
    sort: SortKey = SortKey.RANK,
    descending: bool = False,
    search: str | None = None,
    scored_only: bool = False,
) -> list[Entry]:
    """Every matching trainee in the chosen order (the CSV, the overview, the API)."""
    query = board_query(
        cohort,
        standing=standing,
        sort=sort,
        descending=descending,
        search=search,
        scored_only=scored_only,
        with_total=False,
    )
    return _entries(db.execute(query).all())


def board_page(
    db: Session,
    cohort: Cohort,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
    standing: Standing | None = None,
    sort: SortKey = SortKey.RANK,
    descending: bool = False,
    search: str | None = None,
    scored_only: bool = False,
) -> BoardPage:
    """One page of the board. A page past the end shows the last one (``clamped`` says so)."""
    if sort == SortKey.RANK and not descending and standing in (None, Standing.PASSED) and not search:
        passed_only = standing is not None
        return _rank_order_page(
            db, cohort, page=page, per_page=per_page, passed_only=passed_only, scored_only=scored_only
        )
    query = board_query(
        cohort, standing=standing, sort=sort, descending=descending, search=search, scored_only=scored_only
    )
    asked = max(1, page)
    rows = db.execute(query.offset((asked - 1) * per_page).limit(per_page)).all()
    if rows:
        total = int(rows[0].total)
    else:  # an empty board, or a page past the end: count, then show the last page
        total = int(db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0)
    pages = max(1, -(-total // per_page))
    shown = min(asked, pages)
    if not rows and total:
        rows = db.execute(query.offset((shown - 1) * per_page).limit(per_page)).all()
    return BoardPage(_entries(rows), total, shown, pages, asked)


def _rank_order_page(
    db: Session, cohort: Cohort, *, page: int, per_page: int, passed_only: bool, scored_only: bool
) -> BoardPage:
    """The board's default view (and the trainees' one) without the window function. In rank
    order the scored trainees come first and the passed ones before the rest, so with or without
    those filters a row's rank is its offset: the database only finds the first rows of one
    ordered scan (on SQLite a quarter of the time of numbering all 2,000 rows), plus a count."""
    query = _summary(cohort, numbered=False)
    if scored_only:
        query = query.where(TraineeScore.best_accuracy.is_not(None))
    if passed_only:
        if cohort.pass_threshold is None:  # nobody passes without a pass mark
            return BoardPage([], 0, 1, 1, max(1, page))
        query = query.where(TraineeScore.best_accuracy >= cohort.pass_threshold)
    total = int(db.scalar(select(func.count()).select_from(query.subquery())) or 0)
    pages = max(1, -(-total // per_page))
    asked = max(1, page)
    shown = min(asked, pages)
    offset = (shown - 1) * per_page
    rows = db.execute(query.order_by(*_rank_order()).offset(offset).limit(per_page)).all()
    numbered = [(*row[:8], offset + i + 1, *row[9:], total) for i, row in enumerate(rows)]
    return BoardPage(_entries(numbered), total, shown, pages, asked)


def rank_of(db: Session, cohort: Cohort, user_id: int) -> int | None:
    """The trainee's rank (None: no scored submission yet, or not an active trainee here)."""
    ranked = _ranked(cohort)
    row = db.execute(select(ranked.c.position, ranked.c.best).where(ranked.c.user_id == user_id)).first()
    return int(row.position) if row is not None and row.best is not None else None


def leaderboard(db: Session, cohort: Cohort) -> list[Entry]:
    """Every active trainee of the cohort, in rank order (trainees without a score last, by name)."""
    return board(db, cohort)


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
