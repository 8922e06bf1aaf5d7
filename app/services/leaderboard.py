"""The cohort leaderboard: ranked, filtered, sorted and cut into pages by the database.

Every figure comes from the cohort's ``trainee_scores`` rows (count, last submission, best accuracy
and when it was first reached, latest scored accuracy), which :mod:`app.services.trainee_scores`
keeps exact whenever a submission is written; no request aggregates the submissions themselves.

A page is three short reads: the count of matching trainees, the page's rows (filtered, sorted by
the chosen column with empty values last in both directions and ties in rank order, so the order
is total and pages never overlap or skip a row) and, only when a row's rank is not its offset in
rank order (see :func:`_ranks_before`), the ranks: counted for the few rows a search finds, else
every ranked trainee's position in one narrow read. Only the rows shown reach Python. Numbering
every row in the page's own statement (``row_number() OVER``) made the database carry all 2,000
trainees' columns through two sorts; ranking and building 2,000 entries in Python before that cost
most of a request.

Only ``succeeded`` submissions give an accuracy; failed ones still count as submissions.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    ScalarSelect,
    Select,
    SQLColumnExpression,
    and_,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from app.folding import fold
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


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def _summary(cohort: Cohort) -> Select[Any]:
    """The cohort's active trainees with their summary (none: never submitted) and their standing."""
    best = TraineeScore.best_accuracy
    passed = _passed(cohort)
    submissions = func.coalesce(TraineeScore.submissions, 0)
    standing = case(
        (passed, Standing.PASSED.value),
        (submissions > 0, Standing.NOT_YET.value),
        else_=Standing.NEVER.value,
    )
    query = select(
        User.id.label("user_id"),
        User.name.label("name"),
        User.email.label("email"),
        submissions.label("submissions"),
        TraineeScore.last_submission_at.label("last_at"),
        best.label("best"),
        TraineeScore.best_reached_at.label("best_at"),
        TraineeScore.latest_accuracy.label("latest"),
        case((passed, 1), else_=0).label("passed"),
        standing.label("standing"),
    )
    return _active_trainees(query, Enrollment.cohort_id == cohort.id)


def _active_trainees(query: _Query, in_cohort: ColumnElement[bool], *, scored_only: bool = False) -> _Query:
    """``query`` over the active trainees enrolled where ``in_cohort`` says, each with their summary
    row: outer-joined (a trainee who never submitted has none), or only those with a scored best."""
    has_summary = (TraineeScore.cohort_id == Enrollment.cohort_id) & (TraineeScore.user_id == User.id)
    query = query.select_from(Enrollment).join(User, User.id == Enrollment.user_id)
    query = query.join(TraineeScore, has_summary) if scored_only else query.outerjoin(TraineeScore, has_summary)
    query = query.where(in_cohort, Enrollment.role == Role.TRAINEE, User.is_active.is_(True))
    return query.where(TraineeScore.best_accuracy.is_not(None)) if scored_only else query


def _passed(cohort: Cohort) -> ColumnElement[bool]:
    """A trainee passes with a scored best on or above the pass mark; nobody passes without one."""
    if cohort.pass_threshold is None:
        return literal(False)
    return TraineeScore.best_accuracy.is_not(None) & (TraineeScore.best_accuracy >= cohort.pass_threshold)


def _rank_order() -> tuple[Any, ...]:
    """Best accuracy first, ties to whoever reached it first, then name; no score: last, by name."""
    best = TraineeScore.best_accuracy
    return (best.is_(None), best.desc(), TraineeScore.best_reached_at, User.name, User.id)


def _rank_order_reversed() -> tuple[Any, ...]:
    """The ranked trainees from the last rank to the first; those without a score still last, by
    name (their name and id count only among themselves, through the ``CASE``)."""
    best = TraineeScore.best_accuracy
    unscored = best.is_(None)
    return (
        unscored,
        best.asc(),
        TraineeScore.best_reached_at.desc(),
        case((unscored, User.name)),
        case((unscored, User.id)),
        User.name.desc(),
        User.id.desc(),
    )


def _sort_value(sort: SortKey, cohort: Cohort) -> SQLColumnExpression[Any]:
    values: dict[SortKey, SQLColumnExpression[Any]] = {
        SortKey.NAME: func.lower(User.name),
        SortKey.BEST: TraineeScore.best_accuracy,
        SortKey.LATEST: TraineeScore.latest_accuracy,
        SortKey.SUBMISSIONS: func.coalesce(TraineeScore.submissions, 0),
        SortKey.LAST: TraineeScore.last_submission_at,
        SortKey.PASSED: case((_passed(cohort), 1), else_=0),
    }
    return values[sort]


def _order(cohort: Cohort, sort: SortKey, descending: bool) -> tuple[Any, ...]:
    """A total order: the chosen column (empty values last in both directions), ties in rank order,
    so pages never overlap or skip a row."""
    if sort == SortKey.RANK:
        return _rank_order_reversed() if descending else _rank_order()
    value = _sort_value(sort, cohort)
    return (value.is_(None), value.desc() if descending else value.asc(), *_rank_order())


def _filtered(
    cohort: Cohort, query: Select[Any], *, standing: Standing | None, search: str | None, scored_only: bool
) -> Select[Any]:
    if standing == Standing.PASSED:
        query = query.where(_passed(cohort))
    elif standing == Standing.NOT_YET:
        query = query.where(func.coalesce(TraineeScore.submissions, 0) > 0, ~_passed(cohort))
    elif standing == Standing.NEVER:
        query = query.where(func.coalesce(TraineeScore.submissions, 0) == 0)
    if scored_only:
        query = query.where(TraineeScore.best_accuracy.is_not(None))
    if search:  # name or e-mail, folded alike (see app.folding): full-width letters find plain ones
        needle = fold(search.strip()).replace("\n", " ")  # the key's one line break parts name and e-mail
        query = query.where(User.search_key.contains(needle, autoescape=True))
    return query


def board_query(
    cohort: Cohort,
    *,
    standing: Standing | None,
    sort: SortKey,
    descending: bool,
    search: str | None,
    scored_only: bool,
) -> Select[Any]:
    """The matching trainees in the chosen order, without their ranks (see :func:`_positions`).
    Public so that the tests and the benchmark can ask the database how it runs it (EXPLAIN)."""
    query = _filtered(cohort, _summary(cohort), standing=standing, search=search, scored_only=scored_only)
    return query.order_by(*_order(cohort, sort, descending))


def _core(db: Session) -> Connection:
    """The session's connection, in its transaction: the board reads plain columns, never entities,
    and the ORM's result handling cost a third of reading 2,000 rows (on PostgreSQL 4 of 12 ms).
    Flushed first, as the session's own ``execute`` would, so pending changes are seen."""
    db.flush()
    return db.connection()


def _positions(db: Session, cohort: Cohort) -> dict[int, int]:
    """Every ranked trainee's rank: their user ids in rank order, one narrow read of the summary's
    rows. Numbering in the page's own statement (``row_number() OVER``) made the database carry
    every row's columns through two sorts; here one sort carries one column."""
    ranked = _active_trainees(select(User.id), Enrollment.cohort_id == cohort.id, scored_only=True)
    ids = _core(db).scalars(ranked.order_by(*_rank_order()))
    return {user_id: n for n, user_id in enumerate(ids, start=1)}


_STANDINGS = {s.value: s for s in Standing}


Ranker = Callable[[int, int], int | None]  # (row's index, user id) → rank


def _entries(rows: Sequence[Any], rank: Ranker) -> list[Entry]:
    """Rows unpacked as plain tuples: reading a result row's fields by name costs tens of
    microseconds a field, which the CSV's 2,000 rows would feel. ``rank(i, user_id)`` numbers the
    i-th row (0-based) of those with a score."""
    entries = []
    for i, (user_id, name, email, submissions, last_at, best, best_at, latest, passed, standing) in enumerate(rows):
        entries.append(
            Entry(
                user_id=user_id,
                name=name,
                email=email,
                rank=rank(i, user_id) if best is not None else None,
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


def _ranks_before(
    db: Session, cohort: Cohort, sort: SortKey, descending: bool, standing: Standing | None, search: str | None
) -> int | None:
    """When the view lists its ranked rows in rank order, the rank of its first ranked row minus
    one (None when it does not). Sorted by best accuracy, highest first, is rank order itself (ties
    fall to rank order either way). In rank order the scored trainees come first and the passed ones
    before the rest: alone, or filtered to passed or to scored trainees, a row's rank is its
    offset; filtered to "not yet", every passed trainee is ahead of it."""
    in_rank_order = (sort == SortKey.RANK and not descending) or (sort == SortKey.BEST and descending)
    if not in_rank_order or search:
        return None
    if standing == Standing.NOT_YET:
        passed = _filtered(cohort, _summary(cohort), standing=Standing.PASSED, search=None, scored_only=False)
        return int(_core(db).scalar(select(func.count()).select_from(passed.subquery())) or 0)
    return 0


FEW = 3  # up to this many ranked rows (a search), each is ranked by counting who is ahead of it


def _ranker(db: Session, cohort: Cohort, rows: Sequence[Any], offset: int, before: Callable[[], int | None]) -> Ranker:
    """How the rows get their ranks: by their offset in rank order (``before()`` says how many
    ranks precede the view, when it is in rank order), by counting who is ahead of each of a few
    rows (one statement), or from every ranked trainee's position."""
    scored = [row for row in rows if row.best is not None]
    if not scored:
        return lambda _i, _user_id: None
    ahead = before()
    if ahead is not None:
        return lambda i, _user_id: ahead + offset + i + 1
    if len(scored) <= FEW and all(row.best_at is not None for row in scored):
        counts = _core(db).execute(select(*(_ahead_of(cohort, row) for row in scored))).one()
        ranks = {row.user_id: int(n) + 1 for row, n in zip(scored, counts, strict=True)}
        return lambda _i, user_id: ranks.get(user_id)
    positions = _positions(db, cohort)
    return lambda _i, user_id: positions.get(user_id)


def _ahead_of(cohort: Cohort, row: Any) -> ScalarSelect[int]:
    """How many ranked trainees come before ``row`` in rank order (:func:`_rank_order`)."""
    best, at = TraineeScore.best_accuracy, TraineeScore.best_reached_at
    ahead = or_(
        best > row.best,
        and_(best == row.best, at < row.best_at),
        and_(best == row.best, at == row.best_at, User.name < row.name),
        and_(best == row.best, at == row.best_at, User.name == row.name, User.id < row.user_id),
    )
    ranked = _active_trainees(select(func.count()), Enrollment.cohort_id == cohort.id, scored_only=True)
    return ranked.where(ahead).scalar_subquery()


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
        cohort, standing=standing, sort=sort, descending=descending, search=search, scored_only=scored_only
    )
    rows = _core(db).execute(query).all()
    before = partial(_ranks_before, db, cohort, sort, descending, standing, search)
    return _entries(rows, _ranker(db, cohort, rows, 0, before))


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
    """One page of the board, in three short reads: the count, the page's rows and (only when the
    rows are not in rank order) the ranks. A page past the end shows the last one (``clamped`` says so)."""
    if standing == Standing.PASSED and cohort.pass_threshold is None:  # nobody passes without a pass mark
        return BoardPage([], 0, 1, 1, max(1, page))
    query = board_query(
        cohort, standing=standing, sort=sort, descending=descending, search=search, scored_only=scored_only
    )
    total = int(_core(db).scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0)
    pages = max(1, -(-total // per_page))
    asked = max(1, page)
    shown = min(asked, pages)
    offset = (shown - 1) * per_page
    rows = _core(db).execute(query.offset(offset).limit(per_page)).all() if total else []
    before = partial(_ranks_before, db, cohort, sort, descending, standing, search)
    return BoardPage(_entries(rows, _ranker(db, cohort, rows, offset, before)), total, shown, pages, asked)


def rank_of(db: Session, cohort: Cohort, user_id: int) -> int | None:
    """The trainee's rank (None: no scored submission yet, or not an active trainee here)."""
    row = _core(db).execute(_summary(cohort).where(User.id == user_id)).first()
    if row is None or row.best is None:
        return None
    return _ranker(db, cohort, [row], 0, lambda: None)(0, user_id)


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
    summaries = select(Enrollment.cohort_id, TraineeScore.submissions, TraineeScore.best_accuracy)
    rows = db.execute(_active_trainees(summaries, Enrollment.cohort_id.in_(thresholds))).all()
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
