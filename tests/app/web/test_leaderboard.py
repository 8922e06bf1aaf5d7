"""The leaderboard, the cohort overview and a trainee's history: ranking rules, filters, sorting,
the CSV, and who may see what (on SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Cohort, Enrollment, Role, SubmissionStatus, User
from app.services.leaderboard import SortKey, Standing, histogram, leaderboard, overview
from tests.app.api.conftest import T0, add_submission
from tests.app.conftest import Clock, People, add_user, login
from tests.app.web.leaderboard_reference import arrange
from tests.fixtures.html import assert_self_contained, without_tokens

H = dt.timedelta(hours=1)


@pytest.fixture
def board(db: Session, people: People) -> People:
    """hanako 0.95 reached second, taro 0.95 reached first, 山田 failed only, 未提出 never submitted."""
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    cohort.pass_threshold = 0.95
    yamada = add_user(db, "yamada@example.com")
    yamada.name = "山田 花子"
    never = add_user(db, "never@example.com")
    never.name = "未提出 太郎"
    for user in (yamada, never):
        db.add(Enrollment(user_id=user.id, cohort_id=cohort.id, role=Role.TRAINEE))
    add_submission(db, people.trainee, cohort, accuracy=0.90, at=T0)
    add_submission(db, people.trainee, cohort, accuracy=0.95, at=T0 + 3 * H)
    add_submission(db, people.trainee, cohort, accuracy=0.93, at=T0 + 4 * H)
    add_submission(db, people.trainee, cohort, status=SubmissionStatus.FAILED, at=T0 + 5 * H)
    add_submission(db, people.other_trainee, cohort, accuracy=0.95, at=T0 + 2 * H)
    add_submission(db, yamada, cohort, status=SubmissionStatus.FAILED, at=T0 + H)
    db.commit()
    return people


def _names(entries: list[object]) -> list[str]:
    return [e.name for e in entries]  # type: ignore[attr-defined]


def test_ranking_rules(db: Session, board: People) -> None:
    cohort = db.get(Cohort, board.cohort.id)
    assert cohort is not None
    entries = leaderboard(db, cohort)
    assert _names(entries) == ["taro", "hanako", "山田 花子", "未提出 太郎"]
    taro, hanako, yamada, never = entries
    assert (taro.rank, hanako.rank, yamada.rank, never.rank) == (1, 2, None, None)  # tie: earlier ranks higher
    assert hanako.best_accuracy == 0.95 and hanako.latest_accuracy == 0.93  # latest scored, not the failed one
    assert hanako.submissions == 4 and hanako.last_submission_at == T0 + 5 * H  # failures count as submissions
    assert hanako.best_reached_at == T0 + 3 * H
    assert (yamada.submissions, yamada.best_accuracy, yamada.standing) == (1, None, Standing.NOT_YET)
    assert (never.submissions, never.standing) == (0, Standing.NEVER)
    assert taro.passed and hanako.passed and not yamada.passed


def test_filter_and_sort(db: Session, board: People) -> None:
    cohort = db.get(Cohort, board.cohort.id)
    assert cohort is not None
    entries = leaderboard(db, cohort)
    assert _names(arrange(entries, standing=Standing.PASSED)) == ["taro", "hanako"]
    assert _names(arrange(entries, standing=Standing.NOT_YET)) == ["山田 花子"]
    assert _names(arrange(entries, standing=Standing.NEVER)) == ["未提出 太郎"]
    assert _names(arrange(entries, sort=SortKey.SUBMISSIONS, descending=True)) == [
        "hanako",
        "taro",
        "山田 花子",
        "未提出 太郎",
    ]
    # Empty values stay last in both directions.
    assert _names(arrange(entries, sort=SortKey.LATEST))[-2:] == ["山田 花子", "未提出 太郎"]
    assert _names(arrange(entries, sort=SortKey.LATEST, descending=True))[:2] == ["taro", "hanako"]
    assert _names(arrange(entries, sort=SortKey.LAST, descending=True))[0] == "hanako"


def test_overview_figures(db: Session, board: People) -> None:
    cohort = db.get(Cohort, board.cohort.id)
    assert cohort is not None
    summary = overview(db, cohort)
    assert (summary.trainees, summary.submitted, summary.passed) == (4, 3, 2)
    assert summary.pass_rate == 0.5
    assert [e.name for e in summary.never_submitted] == ["未提出 太郎"]
    assert sum(n for _, n in summary.histogram) == 2
    assert sum(n for _, n in summary.per_day) == 6
    assert histogram([0.0, 0.5, 0.999, 1.0])[-1] == ("98–100%", 2)


def test_instructor_sees_sorts_and_filters_the_page(client: TestClient, board: People) -> None:
    login(client, board.instructor.email)
    page = client.get(f"/cohorts/{board.cohort.id}/leaderboard")
    assert page.status_code == 200
    text = page.text
    assert text.index("taro") < text.index("hanako") < text.index("山田 花子")
    assert f"/cohorts/{board.cohort.id}/trainees/{board.trainee.id}" in text
    passed = client.get(f"/cohorts/{board.cohort.id}/leaderboard?standing=passed").text
    assert "山田 花子" not in passed and "taro" in passed
    by_name = client.get(f"/cohorts/{board.cohort.id}/leaderboard?sort=name&order=desc").text
    assert by_name.index("未提出 太郎") < by_name.index("taro")
    assert client.get(f"/cohorts/{board.cohort.id}/leaderboard?sort=nonsense").status_code == 422


def test_names_sort_by_reading_and_link_to_the_trainees_history(client: TestClient, board: People, db: Session) -> None:
    """By code point 山田 (U+5C71) came after 未提出 (U+672A); by reading, ヤマダ comes after ミテイシュツ
    and before the Latin names without a reading."""
    for user_id, reading in ((board.trainee.id, ""), (board.other_trainee.id, "")):
        assert db.get(User, user_id) is not None and reading == ""
    yamada = db.query(User).filter(User.email == "yamada@example.com").one()
    never = db.query(User).filter(User.email == "never@example.com").one()
    yamada.reading, never.reading = "ヤマダ ハナコ", "ミテイシュツ タロウ"
    db.commit()
    login(client, board.instructor.email)
    page = client.get(f"/cohorts/{board.cohort.id}/leaderboard?sort=name").text
    order = [page.index(name) for name in ("未提出 太郎", "山田 花子", "hanako", "taro")]
    assert order == sorted(order)
    assert 'data-testid="cell-reading">ヤマダ ハナコ</span>' in page
    history = f'href="/cohorts/{board.cohort.id}/trainees/{yamada.id}" data-testid="cell-name">山田 花子</a>'
    assert history in page
    found = client.get(f"/cohorts/{board.cohort.id}/leaderboard?q=やまだ").text
    assert "山田 花子" in found and "未提出 太郎" not in found


def test_csv_has_bom_and_japanese_names(client: TestClient, board: People) -> None:
    login(client, board.instructor.email)
    response = client.get(f"/cohorts/{board.cohort.id}/leaderboard.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][0] == "順位" and len(rows) == 5
    assert rows[1][:2] == ["1", "taro"] and rows[3][1] == "山田 花子"
    # Values as the page shows them: percentages, and 未提出 as its own state (not 未達).
    assert rows[0][2] == "フリガナ" and rows[1][2] == ""
    assert rows[1][4] == "95.00%" and rows[1][8] == "合格"
    assert rows[2][4:6] == ["95.00%", "93.00%"] and rows[3][4] == "" and rows[3][8] == "未達"
    assert rows[4][1] == "未提出 太郎" and rows[4][8] == "未提出"
    filtered = client.get(f"/cohorts/{board.cohort.id}/leaderboard.csv?standing=never").content.decode("utf-8-sig")
    assert len(list(csv.reader(io.StringIO(filtered)))) == 2


def test_csv_neutralises_formulas(client: TestClient, board: People, db: Session) -> None:
    user = db.get(User, board.other_trainee.id)
    assert user is not None
    user.name = '=HYPERLINK("http://evil")'
    db.commit()
    login(client, board.admin.email)
    text = client.get(f"/cohorts/{board.cohort.id}/leaderboard.csv").content.decode("utf-8-sig")
    assert "'=HYPERLINK" in text


def test_overview_and_history_pages(client: TestClient, board: People) -> None:
    login(client, board.instructor.email)
    page = client.get(f"/cohorts/{board.cohort.id}/overview").text
    assert 'data-testid="chart-histogram"' in page and 'data-testid="chart-per-day"' in page
    assert "未提出 太郎" in page and "50.0%" in page
    assert_self_contained(page)
    history = client.get(f"/cohorts/{board.cohort.id}/trainees/{board.trainee.id}").text
    assert history.count('data-testid="history-submission"') == 4
    assert 'data-testid="chart-history"' in history and "/file" in history and "scored" in history
    cohorts = client.get("/cohorts").text
    assert f"/cohorts/{board.cohort.id}/leaderboard" in cohorts


def test_instructor_cannot_open_another_cohort(client: TestClient, board: People, db: Session) -> None:
    other = Cohort(name="dl_osaka_1", timezone="Asia/Tokyo")
    db.add(other)
    db.commit()
    login(client, board.instructor.email)
    for path in ("leaderboard", "leaderboard.csv", "overview", f"trainees/{board.trainee.id}"):
        assert client.get(f"/cohorts/{other.id}/{path}").status_code == 404, path
    assert client.get(f"/cohorts/{board.cohort.id}/trainees/{board.instructor.id}").status_code == 404


def test_admin_sees_every_cohort(client: TestClient, board: People) -> None:
    login(client, board.admin.email)
    assert client.get(f"/cohorts/{board.cohort.id}/leaderboard").status_code == 200


def test_trainee_sees_anonymised_board_only_when_allowed(client: TestClient, board: People, db: Session) -> None:
    login(client, board.trainee.email)
    assert client.get(f"/cohorts/{board.cohort.id}/leaderboard").status_code == 404
    assert client.get(f"/cohorts/{board.cohort.id}/leaderboard.csv").status_code == 404
    assert client.get(f"/cohorts/{board.cohort.id}/trainees/{board.trainee.id}").status_code == 404
    cohort = db.get(Cohort, board.cohort.id)
    assert cohort is not None
    cohort.leaderboard_visible = True
    db.commit()
    page = client.get(f"/cohorts/{board.cohort.id}/leaderboard").text
    assert "taro" not in without_tokens(page) and "山田" not in page and "受講生 1" in page
    assert 'data-mine="true"' in page and page.count('data-testid="leaderboard-row"') == 2
    assert client.get(f"/cohorts/{board.cohort.id}/overview").status_code == 404


def test_instructors_find_the_leaderboard_in_the_navigation(client: TestClient, board: People) -> None:
    login(client, board.instructor.email)
    page = client.get("/cohorts").text
    assert 'href="/cohorts" data-testid="nav-cohorts"' in page
    # Staff cannot submit: no upload links, and no standing of their own anywhere.
    assert 'data-testid="nav-upload"' not in page and 'data-testid="nav-submissions"' not in page
    assert 'data-testid="standing"' not in client.get("/upload").text
    assert 'data-testid="standing"' not in client.get("/submissions").text
    client.cookies.clear()
    login(client, board.trainee.email)
    assert 'data-testid="nav-leaderboard"' not in client.get("/submissions").text


def test_trainees_find_their_anonymised_leaderboard_when_the_cohort_shows_it(
    client: TestClient, board: People, db: Session
) -> None:
    board.cohort.leaderboard_visible = True
    db.commit()
    login(client, board.trainee.email)
    page = client.get("/submissions").text
    link = f'href="/cohorts/{board.cohort.id}/leaderboard" data-testid="nav-leaderboard"'
    assert link in page
    assert client.get(f"/cohorts/{board.cohort.id}/leaderboard").status_code == 200


def test_overview_shows_the_cohorts_uploads_waiting_during_a_deadline(
    client: TestClient, board: People, db: Session, clock: Clock
) -> None:
    """Hanako waits with two uploads, Taro with one, another cohort's trainee with one; runs take
    60 s. Fair order: Hanako's first, Taro's and the other's, then Hanako's second: the cohort's
    last result is four runs away on the one worker assumed (none is seen: no Redis here)."""
    login(client, board.instructor.email)
    assert 'data-testid="ov-queue-empty"' in client.get(f"/cohorts/{board.cohort.id}/overview").text
    now = clock.now
    cohort = db.get(Cohort, board.cohort.id)
    other_cohort = Cohort(name="dl_osaka_1", title="DL 大阪 1 期")
    db.add(other_cohort)
    db.flush()
    elsewhere = add_user(db, "osaka@example.com")
    done = add_submission(db, board.other_trainee, cohort, accuracy=0.9, at=now - 30 * H)
    done.started_at, done.finished_at = now - 30 * H, now - 30 * H + dt.timedelta(seconds=60)
    for user, target, minutes in ((board.trainee, cohort, 5), (board.other_trainee, cohort, 2),
                                  (board.trainee, cohort, 1), (elsewhere, other_cohort, 3)):  # fmt: skip
        add_submission(db, user, target, status=SubmissionStatus.QUEUED, at=now - dt.timedelta(minutes=minutes))
    db.commit()
    page = client.get(f"/cohorts/{board.cohort.id}/overview").text
    assert 'data-testid="ov-queue-waiting" data-value="3"' in page
    assert "3 件、採点中 0 件（全コースで待ち 4 件）" in page
    assert 'data-testid="ov-queue-oldest" data-value="300.0"' in page and "5分00秒" in page
    assert 'data-testid="ov-queue-drain" data-value="240.0"' in page and "およそ 4分00秒 後" in page
