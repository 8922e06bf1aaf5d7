"""The ranked board a web process keeps in memory is never stale: the database replaces a cohort's
version token on every write the board shows, whoever writes it.

Each write here comes from another connection in raw SQL, as a worker, an admin script or a
cascade would make it, never through the session that reads the board, so nothing but the
triggers can tell the cached board that it changed. After each, the board must equal what the
database says when asked directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from app.db import make_engine
from app.models import Cohort, Enrollment, LeaderboardVersion, Role, User
from app.services.leaderboard import NAME, SUBMISSIONS, USER_ID, Ranked, leaderboard, rank_of, ranked, ranked_query
from app.settings import Settings
from tests.app.api.conftest import T0, add_submission
from tests.app.conftest import People

Shown = list[tuple[int, str, str, str, int | None, float | None, int]]


@pytest.fixture
def other(settings: Settings) -> Iterator[Engine]:
    """Another engine on the same database, set up as the worker's is (on SQLite: foreign keys, so
    deletes cascade): the writer the board's reader knows nothing about."""
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def cohort(db: Session, people: People) -> Cohort:
    """Hanako 0.9 and Taro 0.8 scored; Jiro enrolled, never submitted; Saburo not enrolled."""
    cohort = people.cohort
    add_submission(db, people.trainee, cohort, accuracy=0.9, at=T0)
    add_submission(db, people.other_trainee, cohort, accuracy=0.8, at=T0)
    jiro = User(email="jiro@example.com", name="jiro", role=Role.TRAINEE)
    saburo = User(email="saburo@example.com", name="saburo", role=Role.TRAINEE)
    db.add_all([jiro, saburo])
    db.flush()
    db.add(Enrollment(user_id=jiro.id, cohort_id=cohort.id, role=Role.TRAINEE))
    db.commit()
    return cohort


def _ids(db: Session) -> dict[str, int]:
    return {name: user_id for user_id, name in db.execute(select(User.id, User.name))}


def _shown(db: Session, cohort: Cohort) -> Shown:
    """The board as the service serves it (from memory while the token is unchanged)."""
    board = leaderboard(db, cohort)
    return [(e.user_id, e.name, e.email, e.reading, e.rank, e.best_accuracy, e.submissions) for e in board]


def _in_database(db: Session, cohort: Cohort) -> Shown:
    """The board as the database has it now, read past the service's memory and ranked by the
    database (no two trainees here tie on a score, and those without one have no reading and
    lower-case Latin names, which the service too orders by code point)."""
    q = ranked_query(cohort.id).subquery()
    order = (q.c.best.is_(None), q.c.best.desc(), q.c.best_at.is_(None), q.c.best_at, q.c.name, q.c.user_id)
    rows = db.connection().execute(select(q).order_by(*order)).all()
    ranks = {row.user_id: n for n, row in enumerate((row for row in rows if row.best is not None), start=1)}
    return [
        (row.user_id, row.name, row.email, row.reading, ranks.get(row.user_id), row.best, row.submissions)
        for row in rows
    ]


def _token(db: Session, cohort: Cohort) -> str | None:
    return db.scalar(select(LeaderboardVersion.token).where(LeaderboardVersion.cohort_id == cohort.id))


# Each write changes what the board shows; ``:name`` parameters are the users' ids.
WRITES: dict[str, str] = {
    "a result raises a best": "UPDATE trainee_scores SET best_accuracy = 0.95 WHERE user_id = :taro",
    "a summary is deleted": "DELETE FROM trainee_scores WHERE user_id = :taro",
    "a first summary is written": "INSERT INTO trainee_scores (cohort_id, user_id, submissions, best_accuracy)"
    " VALUES (:cohort, :jiro, 1, 0.85)",  # no time it was reached: ranked after those with one
    "a trainee is renamed": "UPDATE users SET name = 'Aoki' WHERE id = :taro",
    "an e-mail changes": "UPDATE users SET email = 'new@example.com' WHERE id = :taro",
    "a reading is given": "UPDATE users SET reading = 'アオキ' WHERE id = :jiro",
    "a trainee is deactivated": "UPDATE users SET is_active = :no WHERE id = :taro",
    "a trainee is deleted": "DELETE FROM users WHERE id = :taro",
    "a trainee is enrolled": "INSERT INTO enrollments (user_id, cohort_id, role) VALUES (:saburo, :cohort, 'trainee')",
    "a trainee is unenrolled": "DELETE FROM enrollments WHERE user_id = :taro",
    "an enrolment becomes an instructor's": "UPDATE enrollments SET role = 'instructor' WHERE user_id = :taro",
}


def _run(engine: Engine, sql: str, params: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


@pytest.mark.parametrize("write", list(WRITES))
def test_every_write_the_board_shows_reaches_it_from_any_connection(
    db: Session, cohort: Cohort, other: Engine, write: str
) -> None:
    before = _shown(db, cohort)
    assert before == _in_database(db, cohort)
    token = _token(db, cohort)
    params = {"cohort": cohort.id, "no": False, **_ids(db)}
    db.rollback()  # end the read (on SQLite, a snapshot): the next one sees the other connection's commit
    _run(other, WRITES[write], params)
    after = _shown(db, cohort)
    assert after != before  # the write is one the board shows…
    assert after == _in_database(db, cohort)  # …and the board shows it
    assert _token(db, cohort) != token


def test_an_unchanged_board_is_served_from_memory_and_other_writes_leave_it(
    db: Session, cohort: Cohort, other: Engine, people: People
) -> None:
    first = ranked(db, cohort)
    db.rollback()
    assert ranked(db, cohort) is first  # nothing changed: the same board, not read again
    token = _token(db, cohort)
    trainee, cohort_id = {"id": people.trainee.id}, {"id": cohort.id}
    db.rollback()
    _run(other, "UPDATE users SET password_hash = 'changed' WHERE id = :id", trainee)
    _run(other, "UPDATE users SET name = name WHERE id = :id", trainee)  # the same name
    _run(other, "UPDATE cohorts SET title = 'renamed' WHERE id = :id", cohort_id)
    assert _token(db, cohort) == token
    assert ranked(db, cohort) is first


def test_the_pass_mark_is_read_with_the_cohort_not_from_memory(db: Session, cohort: Cohort, people: People) -> None:
    """The pass mark is a cohort setting no trigger watches: standing is worked out per request."""
    cohort.pass_threshold = 0.85
    db.commit()
    assert [e.passed for e in leaderboard(db, cohort)] == [True, False, False]
    cohort.pass_threshold = 0.75
    db.commit()
    assert [e.passed for e in leaderboard(db, cohort)] == [True, True, False]


def test_the_session_sees_its_own_uncommitted_writes_and_not_after_a_rollback(
    db: Session, cohort: Cohort, people: People
) -> None:
    db.get(User, people.other_trainee.id).name = "Aoki"  # type: ignore[union-attr]
    assert "Aoki" in {e.name for e in leaderboard(db, cohort)}  # flushed, seen in this transaction
    db.rollback()
    assert "Aoki" not in {e.name for e in leaderboard(db, cohort)}
    assert _shown(db, cohort) == _in_database(db, cohort)


def test_a_cohort_gets_its_own_token_and_loses_it_with_the_cohort(db: Session, cohort: Cohort, other: Engine) -> None:
    new = Cohort(name="dl_osaka_1", title="DL Osaka 1")
    db.add(new)
    db.commit()
    assert _token(db, new) is not None and _token(db, new) != _token(db, cohort)
    assert leaderboard(db, new) == [] and rank_of(db, new, 1) is None
    new_id = new.id
    db.rollback()
    _run(other, "DELETE FROM cohorts WHERE id = :id", {"id": new_id})
    assert db.scalar(select(LeaderboardVersion.token).where(LeaderboardVersion.cohort_id == new_id)) is None


def _kept(before: Ranked, after: Ranked) -> set[int]:
    """The users whose rows ``after`` took over from ``before`` as they were (not read again)."""
    old = {id(row): row[USER_ID] for row in before.rows}
    return {old[id(row)] for row in after.rows if id(row) in old}


def test_after_one_trainees_change_only_their_row_is_read_again(
    db: Session, cohort: Cohort, other: Engine, people: People
) -> None:
    before = ranked(db, cohort)
    taro, everyone = people.other_trainee.id, {row[USER_ID] for row in before.rows}
    db.rollback()
    _run(other, "UPDATE trainee_scores SET best_accuracy = 0.95 WHERE user_id = :id", {"id": taro})
    after = ranked(db, cohort)
    assert _kept(before, after) == everyone - {taro}
    assert _shown(db, cohort) == _in_database(db, cohort)
    assert after.rows[0][USER_ID] == taro


def test_a_run_of_changes_to_one_trainee_is_one_step_from_where_it_started(
    db: Session, cohort: Cohort, other: Engine, people: People
) -> None:
    """A reader that missed the middle of the run still re-reads that trainee only; one that saw it
    re-reads from the board before the run, which it still holds."""
    start = ranked(db, cohort)
    taro = {"id": people.other_trainee.id}
    db.rollback()
    _run(other, "UPDATE trainee_scores SET best_accuracy = 0.95 WHERE user_id = :id", taro)
    middle = ranked(db, cohort)
    db.rollback()
    _run(other, "UPDATE users SET name = 'Aoki' WHERE id = :id", taro)
    _run(other, "UPDATE trainee_scores SET submissions = 7 WHERE user_id = :id", taro)
    end = ranked(db, cohort)
    assert _kept(start, end) == {row[USER_ID] for row in start.rows} - {taro["id"]}
    assert middle is not end
    assert _shown(db, cohort) == _in_database(db, cohort)
    assert (end.rows[0][NAME], end.rows[0][SUBMISSIONS]) == ("Aoki", 7)


def test_changes_to_several_trainees_between_two_pages_re_read_those_trainees_only(
    db: Session, cohort: Cohort, other: Engine, people: People
) -> None:
    before = ranked(db, cohort)
    everyone = {row[USER_ID] for row in before.rows}
    jiro = _ids(db)["jiro"]
    db.rollback()
    _run(other, "UPDATE trainee_scores SET best_accuracy = 1.0 - best_accuracy", {})  # 0.9 → 0.1, 0.8 → 0.2
    _run(other, "UPDATE users SET name = 'Jiro' WHERE id = :id", {"id": jiro})  # another transaction
    after = ranked(db, cohort)
    assert _kept(before, after) == everyone - {people.trainee.id, people.other_trainee.id, jiro}
    assert _shown(db, cohort) == _in_database(db, cohort)
    assert [row[USER_ID] for row in after.rows][:2] == [people.other_trainee.id, people.trainee.id]


def test_a_change_whose_trainee_is_not_known_reads_the_whole_board(
    db: Session, cohort: Cohort, other: Engine, people: People
) -> None:
    """An enrolment handed from one user to another: the trigger names nobody, so nothing is kept."""
    before = ranked(db, cohort)
    params = {"taro": people.other_trainee.id, "saburo": _ids(db)["saburo"]}
    db.rollback()
    _run(other, "UPDATE enrollments SET user_id = :saburo WHERE user_id = :taro", params)
    after = ranked(db, cohort)
    assert _kept(before, after) == set()
    assert _shown(db, cohort) == _in_database(db, cohort)


def test_changes_to_more_trainees_than_the_list_holds_read_the_whole_board(
    db: Session, cohort: Cohort, other: Engine
) -> None:
    many = [User(email=f"many{i}@example.com", name=f"many {i:03d}", role=Role.TRAINEE) for i in range(300)]
    db.add_all(many)
    db.flush()
    db.add_all(Enrollment(user_id=user.id, cohort_id=cohort.id, role=Role.TRAINEE) for user in many)
    db.commit()
    before = ranked(db, cohort)
    db.rollback()
    _run(other, "UPDATE users SET name = name || '.' WHERE name LIKE 'many %'", {})
    after = ranked(db, cohort)
    assert _kept(before, after) == set()
    assert _shown(db, cohort) == _in_database(db, cohort)
    assert sum(row[NAME].endswith(".") for row in after.rows) == 300


def test_a_row_read_again_lands_where_a_whole_read_puts_it_among_ties(
    db: Session, cohort: Cohort, other: Engine, people: People
) -> None:
    """Equal best reached at the same moment: the name decides, before and after a rename."""
    tie = {"hanako": people.trainee.id, "taro": people.other_trainee.id}
    _run(other, "UPDATE trainee_scores SET best_accuracy = 0.9 WHERE user_id = :taro", tie)
    assert [e.name for e in leaderboard(db, cohort)][:2] == ["hanako", "taro"]
    db.rollback()
    _run(other, "UPDATE users SET name = 'zz hanako' WHERE id = :hanako", tie)
    assert [e.name for e in leaderboard(db, cohort)][:2] == ["taro", "zz hanako"]
    assert _shown(db, cohort) == _in_database(db, cohort)
