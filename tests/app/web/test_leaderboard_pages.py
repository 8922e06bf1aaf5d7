"""The leaderboard at scale, on SQLite and PostgreSQL: the database ranks, the service filters,
sorts and cuts pages. The order a view gives is held to the Python reference (``arrange``) for
every column, direction and filter; pages concatenate to the whole board without overlap; a page
past the end shows the last one and says so; a trainee finds their own row; the plan never reads
the submissions table."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models import Cohort, Enrollment, Role, SubmissionStatus, User
from app.services.leaderboard import SortKey, Standing, board, board_page, leaderboard, rank_of, ranked_query
from tests.app.api.conftest import T0, add_submission
from tests.app.conftest import People, login
from tests.app.web.leaderboard_reference import arrange

H = dt.timedelta(hours=1)


def _trainees(db: Session, cohort: Cohort, count: int, prefix: str = "trainee") -> list[User]:
    """Trainees without a password (nobody logs in as them): hashing hundreds would dominate the test."""
    users = [
        User(email=f"{prefix}{i:03d}@example.com", name=f"{prefix} {i:03d}", role=Role.TRAINEE) for i in range(count)
    ]
    db.add_all(users)
    db.flush()
    db.add_all(Enrollment(user_id=u.id, cohort_id=cohort.id, role=Role.TRAINEE) for u in users)
    return users


@pytest.fixture
def crowd(db: Session, people: People) -> Cohort:
    """23 trainees beside the people fixture's two: ties on the best score (broken by who reached it
    first, then name), equal submission counts, failures only, never submitted, mixed-case names."""
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    cohort.pass_threshold = 0.9
    users = _trainees(db, cohort, 23)
    users[0].name, users[1].name = "Zeta", "alpha"  # casefolded order differs from the raw one
    for i, user in enumerate(users):
        if i % 7 == 6:
            continue  # never submitted
        if i % 5 == 4:
            add_submission(db, user, cohort, status=SubmissionStatus.FAILED, at=T0 + i * H)
            continue
        best = (0.85, 0.9, 0.93, 0.93)[i % 4]  # many equal bests, some on the pass mark itself
        add_submission(db, user, cohort, accuracy=best - 0.05, at=T0)
        add_submission(db, user, cohort, accuracy=best, at=T0 + (i % 3) * H)
    add_submission(db, people.trainee, cohort, accuracy=0.93, at=T0)
    db.commit()
    return cohort


def _ids(entries: list[object]) -> list[int]:
    return [e.user_id for e in entries]  # type: ignore[attr-defined]


def test_sql_order_matches_the_reference_for_every_column_direction_and_filter(db: Session, crowd: Cohort) -> None:
    ranked = leaderboard(db, crowd)
    assert len(ranked) == 25
    assert [e.rank for e in ranked if e.rank is not None] == list(range(1, 1 + sum(e.rank is not None for e in ranked)))
    for sort, descending, standing in itertools.product(SortKey, (False, True), (None, *Standing)):
        expected = _ids(arrange(ranked, standing=standing, sort=sort, descending=descending))
        got = _ids(board(db, crowd, standing=standing, sort=sort, descending=descending))
        assert got == expected, (sort, descending, standing)


def test_pages_concatenate_to_the_whole_board_without_overlap(db: Session, crowd: Cohort) -> None:
    for sort, descending in itertools.product(SortKey, (False, True)):
        whole = _ids(board(db, crowd, sort=sort, descending=descending))
        first = board_page(db, crowd, page=1, per_page=4, sort=sort, descending=descending)
        assert (first.total, first.pages) == (25, 7)
        pages = [first] + [
            board_page(db, crowd, page=n, per_page=4, sort=sort, descending=descending) for n in range(2, 8)
        ]
        assert [len(p.entries) for p in pages] == [4, 4, 4, 4, 4, 4, 1]  # the last page holds the rest
        assert [i for p in pages for i in _ids(p.entries)] == whole, (sort, descending)


def test_the_rank_order_pages_match_the_whole_board_with_each_filter(db: Session, crowd: Cohort) -> None:
    """The default view numbers rows by their offset: the same rows and ranks as the whole board,
    filtered to passed or to scored trainees too."""
    for filters in ({}, {"standing": Standing.PASSED}, {"scored_only": True}):
        whole = board(db, crowd, **filters)  # type: ignore[arg-type]
        shown = [board_page(db, crowd, page=n, per_page=3, **filters) for n in range(1, 10)]  # type: ignore[arg-type]
        got = [e for p in shown if not p.clamped for e in p.entries]
        assert [(e.user_id, e.rank) for e in got] == [(e.user_id, e.rank) for e in whole], filters
        assert {p.total for p in shown} == {len(whole)}
    crowd.pass_threshold = None
    assert board_page(db, crowd, standing=Standing.PASSED).total == 0 == len(board(db, crowd, standing=Standing.PASSED))


def test_every_view_gives_each_trainee_the_rank_of_the_ranked_board(db: Session, crowd: Cohort) -> None:
    """Ranks come three ways (a row's offset in rank order, counting who is ahead of a few searched
    rows, every ranked trainee's position); whichever a view uses, a trainee's rank is the same,
    ties on the best score and on the moment it was reached included."""
    expected = {e.user_id: e.rank for e in leaderboard(db, crowd)}
    views: list[dict[str, object]] = [
        {"sort": sort, "descending": descending, "standing": standing}
        for sort, descending, standing in itertools.product(SortKey, (False, True), (None, *Standing))
    ]
    views += [{"search": needle} for needle in ("trainee 00", "trainee 01", "trainee 012", "example.com", "zeta")]
    for view in views:
        for per_page in (2, 4, 100):  # pages of few ranked rows (counted) and of many (positions)
            for n in range(1, 14):
                shown = board_page(db, crowd, page=n, per_page=per_page, **view)  # type: ignore[arg-type]
                if shown.clamped:
                    break
                assert {e.user_id: e.rank for e in shown.entries} == {
                    e.user_id: expected[e.user_id] for e in shown.entries
                }, (view, per_page, n)
        assert {e.user_id: e.rank for e in board(db, crowd, **view)} == {  # type: ignore[arg-type]
            e.user_id: expected[e.user_id]
            for e in board(db, crowd, **view)  # type: ignore[arg-type]
        }, view
    for user_id, rank in expected.items():
        assert rank_of(db, crowd, user_id) == rank


def test_a_page_past_the_end_shows_the_last_page_and_says_so(db: Session, crowd: Cohort) -> None:
    last = board_page(db, crowd, page=7, per_page=4)
    beyond = board_page(db, crowd, page=50, per_page=4)
    assert (beyond.page, beyond.pages, beyond.asked, beyond.clamped) == (7, 7, 50, True)
    assert _ids(beyond.entries) == _ids(last.entries) and not last.clamped
    sorted_beyond = board_page(db, crowd, page=50, per_page=4, sort=SortKey.NAME)  # ranked by position
    assert (sorted_beyond.page, sorted_beyond.clamped, len(sorted_beyond.entries)) == (7, True, 1)
    nobody = board_page(db, crowd, page=3, per_page=4, search="no such trainee")
    assert (nobody.entries, nobody.total, nobody.page, nobody.pages) == ([], 0, 1, 1)


def test_filters_and_search_count_what_they_keep(db: Session, crowd: Cohort, people: People) -> None:
    never = board_page(db, crowd, per_page=4, standing=Standing.NEVER)
    assert never.total == 4 and all(e.standing == Standing.NEVER for e in never.entries)  # 3 + taro
    found = board_page(db, crowd, search="TRAINEE 01")  # name or e-mail, any case
    assert sorted(e.name for e in found.entries) == [f"trainee {i:03d}" for i in range(10, 20)]
    assert _ids(board_page(db, crowd, search="hanako@").entries) == [people.trainee.id]
    assert board_page(db, crowd, search="%").total == 0  # LIKE's wildcards are literal characters
    scored = board_page(db, crowd, scored_only=True)
    assert all(e.rank is not None for e in scored.entries) and scored.total == len(
        [e for e in leaderboard(db, crowd) if e.rank is not None]
    )
    assert rank_of(db, crowd, people.trainee.id) == next(
        e.rank for e in leaderboard(db, crowd) if e.user_id == people.trainee.id
    )
    assert rank_of(db, crowd, people.other_trainee.id) is None  # never submitted


def test_the_plan_reads_the_summary_through_its_key_and_never_the_submissions(db: Session, crowd: Cohort) -> None:
    """With sequential scans priced out (on a small test table the planner rightly prefers them),
    PostgreSQL must still have an index that reaches the cohort's summary rows; neither database
    may read ``submissions`` at all."""
    query = ranked_query(crowd.id)
    conn = db.connection()
    sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + sql))
        # An index scan or a bitmap scan over the summary's key: both reach the rows through an index,
        # and which one the planner picks depends on the statistics it has gathered so far.
        reaches = r"Index (Only )?Scan using \w+ on trainee_scores|Bitmap Index Scan on pk_trainee_scores"
        assert re.search(reaches, plan), plan
    else:
        plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
        assert re.search(r"SEARCH trainee_scores USING (\w+ )?INDEX", plan), plan
    assert not re.search(r"(on|SCAN|SEARCH) submissions\b", plan), plan
    db.rollback()


@pytest.fixture
def big(db: Session, people: People) -> Cohort:
    """205 scored trainees (three pages of 100) plus the people fixture's two."""
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    cohort.pass_threshold = 0.5
    for i, user in enumerate(_trainees(db, cohort, 205, prefix="many")):
        add_submission(db, user, cohort, accuracy=round(0.2 + i * 0.003, 4), at=T0 + i * H)
    add_submission(db, people.trainee, cohort, accuracy=0.21, at=T0)  # rank 202 of 206 scored: page 3
    db.commit()
    return cohort


def _rows(page: str) -> list[str]:
    return re.findall(r'data-testid="leaderboard-row" data-user-id="(\d+)"', page)


def test_the_page_shows_100_rows_with_links_to_the_others(client: TestClient, big: Cohort, people: People) -> None:
    login(client, people.instructor.email)
    url = f"/cohorts/{big.id}/leaderboard"
    first, second, third = (
        client.get(url, params={"sort": "best", "order": "desc", "page": n}).text for n in (1, 2, 3)
    )
    assert [len(_rows(p)) for p in (first, second, third)] == [100, 100, 7]
    assert not set(_rows(first)) & set(_rows(second)) and len(set(_rows(first + second + third))) == 207
    assert 'data-testid="pager"' in first and 'data-testid="page-next"' in first and "page-prev" not in first
    # Page links keep the sort, the order and the filter.
    assert re.search(r'href="\?sort=best&amp;order=desc&amp;page=2" data-testid="page-link"', first)
    assert "1 / 3 ページ（207 人）" in first and "3 / 3 ページ（207 人）" in third
    clamped = client.get(url, params={"page": 99})
    assert clamped.status_code == 200 and 'data-testid="page-clamped"' in clamped.text
    assert "99 ページ目はありません（全 3 ページ）" in clamped.text and len(_rows(clamped.text)) == 7
    assert client.get(url, params={"page": 0}).status_code == 422
    found = client.get(url, params={"q": "many107"}).text
    assert len(_rows(found)) == 1 and 'data-testid="pager"' not in found and 'value="many107"' in found


def test_the_csv_holds_every_row_not_one_page(client: TestClient, big: Cohort, people: People) -> None:
    login(client, people.instructor.email)
    response = client.get(f"/cohorts/{big.id}/leaderboard.csv", params={"sort": "name"})
    assert response.status_code == 200 and response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 1 + 207
    names = [r[1] for r in rows[1:]]
    assert names == sorted(names, key=str.casefold)
    assert rows[0][0] == "順位" and all(r[0] for r in rows[1:] if r[1].startswith("many"))


def test_a_trainee_opens_on_the_page_with_their_own_row(
    client: TestClient, big: Cohort, people: People, db: Session
) -> None:
    big.leaderboard_visible = True
    db.commit()
    login(client, people.trainee.email)
    url = f"/cohorts/{big.id}/leaderboard"
    mine = client.get(url).text
    assert 'data-mine="true"' in mine and "3 / 3 ページ" in mine and 'data-testid="my-row-link"' not in mine
    top = client.get(url, params={"page": 1}).text
    assert 'data-mine="true"' not in top and top.count('data-testid="leaderboard-row"') == 100
    assert 'href="?page=3#mine" data-testid="my-row-link"' in top
    assert "many" not in top  # still anonymous
