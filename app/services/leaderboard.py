"""The cohort leaderboard: read from the database, kept in memory, ranked, filtered, sorted and paged here.

Every figure comes from the cohort's ``trainee_scores`` rows (count, last submission, best accuracy
and when it was first reached, latest scored accuracy), which :mod:`app.services.trainee_scores`
keeps exact whenever a submission is written; no request aggregates the submissions themselves.

The database gives a cohort's active trainees with their summaries in one read; a web process
ranks them and keeps that ranked board in memory under the cohort's version token
(:class:`app.models.LeaderboardVersion`), which triggers replace whenever anything the board shows
changes. A request reads the version alone and, while the token is unchanged, filters, sorts and
cuts pages from memory: at 2,000 trainees, reading and ranking them on PostgreSQL for each page cost
more than the 50 ms a page may take, most of it the database joining the same rows again. After
a trainee's change (a result, a rename, an enrolment), the next request reads that trainee's row
again and puts it back in rank order (or a few trainees', however many results came in since the
last page); after anything else, it reads the whole board.

Sorting by another column keeps ties in rank order and empty values last in both directions, so
the order is total and pages never overlap or skip a row. Every row's rank is its place in the
ranked board, whichever view shows it. Names sort by their reading in 五十音 order
(:func:`app.folding.name_order`), never by the code points of kanji.

Only ``succeeded`` submissions give an accuracy; failed ones still count as submissions.
"""

from __future__ import annotations

import datetime as dt
import statistics
import threading
from bisect import insort
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import itemgetter
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, Connection, DateTime, Select, func, select, type_coerce
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.folding import fold, name_order
from app.models import Cohort, Enrollment, LeaderboardVersion, Role, Submission, TraineeScore, User


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
    reading: str  # フリガナ, "" when not given
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


# One active trainee of the cohort as the ranked board holds them: a row of :func:`ranked_query`
# (no summary row: never submitted, no score), as a plain tuple, read through the positions below.
# Plain, not a named tuple: the collector stops tracking a plain tuple of plain values, while every
# named tuple of every board kept in memory stays tracked, and full collections walking them made
# one page in twenty take 30-45 ms longer. Nor the database's row: reading its fields by name cost
# ten times more, and views read every row's. Timestamps as the driver gives them (see _plain).
Summary = tuple[int, str, str, str, int, dt.datetime | None, float | None, dt.datetime | None, float | None, str]
USER_ID: Final = 0
NAME: Final = 1
EMAIL: Final = 2
SEARCH_KEY: Final = 3
SUBMISSIONS: Final = 4
LAST_AT: Final = 5
BEST: Final = 6
BEST_AT: Final = 7
LATEST: Final = 8
READING: Final = 9


View = tuple[SortKey, bool, Standing | None, bool, float | None]  # column, descending, filter, scored only, pass mark


@dataclass(slots=True)
class Ranked:
    """A cohort's active trainees in rank order, as the database had them under one version token."""

    rows: list[Summary]
    ranks: dict[int, int]  # user id → rank, for the trainees with a scored best
    views: dict[View, list[Summary]] = field(default_factory=dict)  # each sorted and filtered once

    @classmethod
    def of(cls, rows: list[Summary]) -> Ranked:
        """``rows`` in rank order (:func:`rank_key`): the scored trainees come first, so a scored
        row's rank is its place."""
        return cls(rows, {row[USER_ID]: n for n, row in enumerate(rows, start=1) if row[BEST] is not None})


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def _active_trainees(query: _Query, in_cohort: ColumnElement[bool]) -> _Query:
    """``query`` over the active trainees enrolled where ``in_cohort`` says, each with their summary
    row, outer-joined (a trainee who never submitted has none)."""
    has_summary = (TraineeScore.cohort_id == Enrollment.cohort_id) & (TraineeScore.user_id == User.id)
    query = query.select_from(Enrollment).join(User, User.id == Enrollment.user_id).outerjoin(TraineeScore, has_summary)
    return query.where(in_cohort, Enrollment.role == Role.TRAINEE, User.is_active.is_(True))


def _plain(column: InstrumentedAttribute[dt.datetime | None]) -> ColumnElement[dt.datetime | None]:
    """The timestamp as the driver reads it, without :class:`app.models.UTCDateTime`'s conversion
    of every value (4,000 calls, a fifth of reading the board): naive UTC on SQLite, any zone on
    PostgreSQL. :func:`_utc` converts the few an entry shows."""
    return type_coerce(column, DateTime(timezone=True))


def _utc(at: dt.datetime | None) -> dt.datetime | None:
    if at is None:
        return None
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def ranked_query(cohort_id: int) -> Select[*tuple[Any, ...]]:
    """The cohort's active trainees with their summaries, unordered (:func:`rank_key` orders them).
    Public so that the tests and the benchmark can ask the database how it runs it (EXPLAIN)."""
    query = select(
        User.id.label("user_id"),
        User.name.label("name"),
        User.email.label("email"),
        User.search_key.label("search_key"),
        func.coalesce(TraineeScore.submissions, 0).label("submissions"),
        _plain(TraineeScore.last_submission_at).label("last_at"),
        TraineeScore.best_accuracy.label("best"),
        _plain(TraineeScore.best_reached_at).label("best_at"),
        TraineeScore.latest_accuracy.label("latest"),
        User.reading.label("reading"),
    )
    return _active_trainees(query, Enrollment.cohort_id == cohort_id)


def rank_key(row: Summary) -> tuple[Any, ...]:
    """Rank order: best accuracy first, ties to whoever reached it first, then name (by reading,
    :func:`app.folding.name_order`), then id; no score: last, by name. Ranked here rather than by
    the database so that a row re-read after a change lands where a full read would put it,
    whatever the database's collation; the database sorting 2,000 rows cost as much as this does."""
    best, at = row[BEST], row[BEST_AT]
    return (best is None, -best if best is not None else 0.0, at is None, at, _name_key(row), row[USER_ID])


def _name_key(row: Summary) -> tuple[int, str, str]:
    return name_order(row[NAME], row[READING])


@dataclass(frozen=True, slots=True)
class _Kept:
    """A ranked board and the version it was read under (see :class:`app.models.LeaderboardVersion`)."""

    board: Ranked
    previous: str | None
    changed: str | None  # ",12,57,": users whose rows changed since ``previous``, in order


class _RankedCache:
    """The ranked boards this process read last, by cohort and version token. A token is never
    reused, so an entry is either current or never asked for again; the oldest make room."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._boards: OrderedDict[tuple[int, str], _Kept] = OrderedDict()
        self._lock = threading.Lock()  # pages are served from a thread pool

    def get(self, cohort_id: int, token: str) -> Ranked | None:
        with self._lock:
            kept = self._boards.get((cohort_id, token))
            if kept is None:
                return None
            self._boards.move_to_end((cohort_id, token))
            return kept.board

    def since(self, cohort_id: int, previous: str, changed: str) -> tuple[Ranked, set[int]] | None:
        """A board this version grew from, and the users whose rows changed since it: the board of
        ``previous`` itself (every user listed), or one read under the same ``previous`` when the
        list had fewer users (those appended since). None: neither is here."""
        with self._lock:
            for (cohort, token), kept in reversed(self._boards.items()):
                if cohort != cohort_id:
                    continue
                if token == previous:
                    grown = _users(changed)
                elif kept.previous == previous and kept.changed and changed.startswith(kept.changed):
                    grown = _users(changed[len(kept.changed) :])
                else:
                    continue
                self._boards.move_to_end((cohort, token))  # still a source for the next pages
                return kept.board, grown
        return None

    def put(self, cohort_id: int, token: str, kept: _Kept) -> None:
        with self._lock:
            self._boards[(cohort_id, token)] = kept
            self._boards.move_to_end((cohort_id, token))
            while len(self._boards) > self._size:
                self._boards.popitem(last=False)


def _users(changed: str) -> set[int]:
    return {int(user_id) for user_id in changed.split(",") if user_id}


# About 1 MB each at 2,000 trainees; boards patched from one another share their rows.
_CACHE = _RankedCache(size=16)


def _core(db: Session) -> Connection:
    """The session's connection, in its transaction: the board reads plain columns, never entities,
    and the ORM's result handling cost a third of reading 2,000 rows. Flushed first, as the
    session's own ``execute`` would, so pending changes (and the token their triggers replace)
    are seen."""
    db.flush()
    return db.connection()


def ranked(db: Session, cohort: Cohort) -> Ranked:
    """The cohort's ranked board: from memory while its version token is unchanged; after changes
    to a few trainees (results, a rename, an enrolment), a board kept from before them with those
    trainees' rows read again; else read whole.

    The version is read before the rows. Another transaction committing in between can only make
    the rows newer than the token they are kept under, never older: whoever reads the version after
    that commit finds the new token and reads again what changed."""
    conn = _core(db)
    version = conn.execute(
        select(LeaderboardVersion.token, LeaderboardVersion.previous, LeaderboardVersion.changed_users).where(
            LeaderboardVersion.cohort_id == cohort.id
        )
    ).first()
    if version is None:  # not kept: read each time (a cohort always has a version; this is a fallback)
        return _read(conn, cohort.id)
    token, previous, changed = version
    board = _CACHE.get(cohort.id, token)
    if board is None:
        grown = _CACHE.since(cohort.id, previous, changed) if previous is not None and changed else None
        board = _read(conn, cohort.id) if grown is None else _reread(conn, cohort.id, *grown)
        _CACHE.put(cohort.id, token, _Kept(board, previous, changed))
    return board


def _read(conn: Connection, cohort_id: int) -> Ranked:
    rows = conn.execute(ranked_query(cohort_id)).all()  # all at once: a third cheaper than row by row
    return Ranked.of(sorted(map(tuple, rows), key=rank_key))


def _reread(conn: Connection, cohort_id: int, before: Ranked, user_ids: set[int]) -> Ranked:
    """``before`` with some users' rows read again: changed, gone (left, deactivated, deleted) or new."""
    fresh: list[Summary] = [tuple(row) for row in conn.execute(ranked_query(cohort_id).where(User.id.in_(user_ids)))]
    rows = [row for row in before.rows if row[USER_ID] not in user_ids]
    for row in fresh:
        insort(rows, row, key=rank_key)
    return Ranked.of(rows)


def _passed(row: Summary, pass_mark: float | None) -> bool:
    """A trainee passes with a scored best on or above the pass mark; nobody passes without one."""
    best = row[BEST]
    return pass_mark is not None and best is not None and best >= pass_mark


def _standing(row: Summary, pass_mark: float | None) -> Standing:
    if _passed(row, pass_mark):
        return Standing.PASSED
    return Standing.NOT_YET if row[SUBMISSIONS] > 0 else Standing.NEVER


def _sort_value(sort: SortKey, pass_mark: float | None) -> Callable[[Summary], Any]:
    values: dict[SortKey, Callable[[Summary], Any]] = {
        SortKey.NAME: _name_key,  # 五十音 by reading; full-width letters with plain ones
        SortKey.BEST: itemgetter(BEST),
        SortKey.LATEST: itemgetter(LATEST),
        SortKey.SUBMISSIONS: itemgetter(SUBMISSIONS),
        SortKey.LAST: itemgetter(LAST_AT),
        SortKey.PASSED: lambda row: _passed(row, pass_mark),
    }
    return values[sort]


def _ordered(board: Ranked, sort: SortKey, descending: bool, pass_mark: float | None) -> list[Summary]:
    """Every row in the chosen order: by the column (empty values last either way), ties in rank
    order (a stable sort of the ranked rows; ``reverse`` keeps it stable too). Rank order reversed
    runs from the last rank to the first, those without a score still last, by name."""
    if sort == SortKey.RANK:
        scored = len(board.ranks)
        return board.rows[scored - 1 :: -1] + board.rows[scored:] if descending and scored else board.rows
    value = _sort_value(sort, pass_mark)
    present = [row for row in board.rows if value(row) is not None]
    present.sort(key=value, reverse=descending)
    return present + [row for row in board.rows if value(row) is None]


def _view(
    board: Ranked,
    cohort: Cohort,
    standing: Standing | None,
    sort: SortKey,
    descending: bool,
    search: str | None,
    scored_only: bool,
) -> list[Summary]:
    """The rows a view shows, sorted and filtered once per board (the same page again, or its next
    page, costs a lookup); a search then keeps the few rows that match."""
    pass_mark = cohort.pass_threshold
    key: View = (sort, descending, standing, scored_only, pass_mark)
    rows = board.views.get(key)
    if rows is None:
        rows = _ordered(board, sort, descending, pass_mark)
        if standing is not None:
            rows = [row for row in rows if _standing(row, pass_mark) == standing]
        if scored_only:
            rows = [row for row in rows if row[BEST] is not None]
        board.views[key] = rows
    if search:  # name, e-mail or reading, folded alike (app.folding): ｈａｎａ finds hana, やまだ ヤマダ
        needle = fold(search.strip()).replace("\n", " ")  # the key's one line break parts name and e-mail
        rows = [row for row in rows if needle in row[SEARCH_KEY]]
    return rows


def _entries(board: Ranked, rows: Sequence[Summary], pass_mark: float | None) -> list[Entry]:
    entries = []
    for row in rows:
        user_id, name, email, _search_key, submissions, last_at, best, best_at, latest, reading = row
        standing = _standing(row, pass_mark)
        entries.append(
            Entry(
                user_id=user_id,
                name=name,
                email=email,
                reading=reading,
                rank=board.ranks.get(user_id),
                best_accuracy=best,
                best_reached_at=_utc(best_at),
                latest_accuracy=latest,
                submissions=int(submissions),
                last_submission_at=_utc(last_at),
                passed=standing == Standing.PASSED,
                standing=standing,
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
    ranked_board = ranked(db, cohort)
    rows = _view(ranked_board, cohort, standing, sort, descending, search, scored_only)
    return _entries(ranked_board, rows, cohort.pass_threshold)


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
    """One page of the board; only its rows become entries. A page past the end shows the last
    one (``clamped`` says so)."""
    ranked_board = ranked(db, cohort)
    rows = _view(ranked_board, cohort, standing, sort, descending, search, scored_only)
    total = len(rows)
    pages = max(1, -(-total // per_page))
    asked = max(1, page)
    shown = min(asked, pages)
    offset = (shown - 1) * per_page
    entries = _entries(ranked_board, rows[offset : offset + per_page], cohort.pass_threshold)
    return BoardPage(entries, total, shown, pages, asked)


def rank_of(db: Session, cohort: Cohort, user_id: int) -> int | None:
    """The trainee's rank (None: no scored submission yet, or not an active trainee here)."""
    return ranked(db, cohort).ranks.get(user_id)


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
