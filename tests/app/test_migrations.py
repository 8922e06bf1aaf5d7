"""The schema comes only from Alembic: upgrade from empty, no drift from the models, clean downgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from app.models import Base
from tests.fixtures.db import alembic_config


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    return str(request.getfixturevalue("postgres_empty_database"))


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_check_and_downgrade(empty_url: str) -> None:
    config = alembic_config(empty_url)
    command.upgrade(config, "head")
    assert _tables(empty_url) == {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
    command.check(config)  # raises if the models and the migrations disagree
    command.downgrade(config, "base")
    assert _tables(empty_url) == {"alembic_version"}
    command.upgrade(config, "head")  # and back up again: the downgrade left nothing behind


def test_the_summary_migration_backfills_what_the_refresh_computes(empty_url: str) -> None:
    """Existing submissions get their leaderboard summary in the migration itself, with the same
    values (ties, failures, the latest scored run) as the application's refresh."""
    from sqlalchemy import text

    from app.services.trainee_scores import summary_values

    config = alembic_config(empty_url)
    command.upgrade(config, "0002")
    engine = create_engine(empty_url)
    insert = text(
        "INSERT INTO submissions (user_id, cohort_id, status, created_at, quota_day, counts_toward_limit,"
        " original_filename, zip_sha256, zip_size, storage_key, attempts, accuracy)"
        " VALUES (:u, 1, :status, :at, '2026-10-01', true, 'a.zip', 'x', 1, 'k', 1, :acc)"
    )
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO cohorts (id, name, title, daily_limit, timezone, leaderboard_visible, archived)"
                          " VALUES (1, 'c', '', 3, 'Asia/Tokyo', false, false)"))  # fmt: skip
        for user_id in (1, 2, 3):
            conn.execute(text("INSERT INTO users (id, email, name, role, language, is_active, created_at)"
                              " VALUES (:i, :e, 'n', 'trainee', 'ja', true, '2026-10-01 00:00:00')"),
                         {"i": user_id, "e": f"u{user_id}@example.com"})  # fmt: skip
        runs = [
            (1, "succeeded", "2026-10-01 01:00:00", 0.9),
            (1, "succeeded", "2026-10-01 02:00:00", 0.95),
            (1, "succeeded", "2026-10-01 03:00:00", 0.95),
            (1, "failed", "2026-10-01 04:00:00", None),
            (2, "failed", "2026-10-01 01:00:00", None),
        ]
        for user_id, status, at, accuracy in runs:
            conn.execute(insert, {"u": user_id, "status": status, "at": at, "acc": accuracy})
    command.upgrade(config, "head")
    with engine.connect() as conn:
        rows = {r.user_id: r for r in conn.execute(text("SELECT * FROM trainee_scores"))}
        assert set(rows) == {1, 2}  # user 3 never submitted
        for user_id in (1, 2):
            expected = summary_values(conn, user_id, 1)
            assert expected is not None
            row = rows[user_id]
            assert (row.submissions, row.best_accuracy, row.best_submission_id, row.latest_submission_id) == (
                expected["submissions"], expected["best_accuracy"], expected["best_submission_id"],
                expected["latest_submission_id"],
            )  # fmt: skip
        assert rows[1].submissions == 4 and rows[1].best_submission_id == 2 and rows[1].latest_submission_id == 3
    engine.dispose()


def test_the_search_key_migration_folds_the_users_already_there(empty_url: str) -> None:
    """Users written before the key existed are found by the search like those written after."""
    from sqlalchemy import text

    from app.folding import search_key

    config = alembic_config(empty_url)
    command.upgrade(config, "upload_check_confirmation_expiry")
    engine = create_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, email, name, role, language, is_active, created_at)"
                              " VALUES (1, 'ｙａｍａｄａ@example.com', 'ＹＡＭＡＤＡ 太郎', 'trainee', 'ja', true,"
                              " '2026-10-01 00:00:00')"))  # fmt: skip
        command.upgrade(config, "head")
        with engine.connect() as conn:
            key = conn.execute(text("SELECT search_key FROM users WHERE id = 1")).scalar_one()
        assert key == search_key("ＹＡＭＡＤＡ 太郎", "ｙａｍａｄａ@example.com") == "yamada 太郎\nyamada@example.com"
    finally:
        engine.dispose()


def test_the_leaderboard_versions_migration_gives_each_cohort_already_there_its_own_token(empty_url: str) -> None:
    """A cohort created before the versions existed is cached and invalidated like a new one."""
    from sqlalchemy import text

    config = alembic_config(empty_url)
    command.upgrade(config, "users_search_key")
    engine = create_engine(empty_url)
    try:
        with engine.begin() as conn:
            for cohort_id in (1, 2):
                conn.execute(text("INSERT INTO cohorts (id, name, title, daily_limit, timezone, leaderboard_visible,"
                                  " archived) VALUES (:id, :name, '', 3, 'Asia/Tokyo', false, false)"),
                             {"id": cohort_id, "name": f"dl_{cohort_id}"})  # fmt: skip
        command.upgrade(config, "head")
        with engine.begin() as conn:
            tokens = dict(conn.execute(text("SELECT cohort_id, token FROM leaderboard_versions")).all())
            assert set(tokens) == {1, 2} and tokens[1] != tokens[2]
            conn.execute(text("UPDATE cohorts SET title = 'x' WHERE id = 1"))  # the board does not show titles
            conn.execute(
                text(
                    "INSERT INTO users (id, email, name, role, language, is_active, created_at)"
                    " VALUES (1, 'a@example.com', 'a', 'trainee', 'ja', true, '2026-10-01 00:00:00')"
                )
            )
            enrol = "INSERT INTO enrollments (user_id, cohort_id, role) VALUES (1, 1, 'trainee')"
            conn.execute(text(enrol))
            after = dict(conn.execute(text("SELECT cohort_id, token FROM leaderboard_versions")).all())
        assert after[1] != tokens[1] and after[2] == tokens[2]  # the enrolment changed cohort 1's board only
    finally:
        engine.dispose()


def test_cohorts_already_there_keep_numpy_only_and_their_leaderboard_trigger(empty_url: str) -> None:
    """The runtimes column: cohorts from before it stay NumPy only; a new cohort (through the model)
    allows both; adding the column leaves the cohorts table's insert trigger in place."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from app.models import Cohort

    config = alembic_config(empty_url)
    command.upgrade(config, "leaderboard_versions")
    engine = create_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO cohorts (id, name, title, daily_limit, timezone, leaderboard_visible,"
                              " archived) VALUES (1, 'dl_1', '', 3, 'Asia/Tokyo', false, false)"))  # fmt: skip
        command.upgrade(config, "head")
        with Session(engine) as session, session.begin():
            session.add(Cohort(id=2, name="dl_2"))
        with Session(engine) as session:
            assert {c.id: c.runtimes for c in session.query(Cohort)} == {1: ["numpy"], 2: ["numpy", "tensorflow"]}
            versions = session.execute(text("SELECT cohort_id FROM leaderboard_versions")).scalars().all()
        assert sorted(versions) == [1, 2]  # cohort 2's token came from the insert trigger
    finally:
        engine.dispose()


def test_the_readings_migration_keeps_the_boards_triggers_and_folds_kana(empty_url: str) -> None:
    """Adding the reading rebuilds ``users`` on SQLite, which drops its triggers: after it, a change
    to a user (the reading too) still replaces the board's token, and kana in names already there
    are searched in either script."""
    from sqlalchemy import text

    config = alembic_config(empty_url)
    command.upgrade(config, "leaderboard_versions")
    engine = create_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO cohorts (id, name, title, daily_limit, timezone, leaderboard_visible,"
                    " archived) VALUES (1, 'dl_1', '', 3, 'Asia/Tokyo', false, false)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO users (id, email, name, role, language, is_active, created_at, search_key)"
                    " VALUES (1, 'a@example.com', 'サクラ', 'trainee', 'ja', true, '2026-10-01 00:00:00',"
                    " 'サクラ\na@example.com')"
                )
            )
            conn.execute(text("INSERT INTO enrollments (user_id, cohort_id, role) VALUES (1, 1, 'trainee')"))
        command.upgrade(config, "head")
        token = "SELECT token FROM leaderboard_versions WHERE cohort_id = 1"
        with engine.begin() as conn:
            assert conn.execute(text("SELECT search_key FROM users WHERE id = 1")).scalar_one() == (
                "さくら\na@example.com"
            )
            before = conn.execute(text(token)).scalar_one()
            conn.execute(text("UPDATE users SET reading = 'サクラ' WHERE id = 1"))
            after_reading = conn.execute(text(token)).scalar_one()
            conn.execute(text("UPDATE users SET name = 'さくら' WHERE id = 1"))
            after_name = conn.execute(text(token)).scalar_one()
        assert len({before, after_reading, after_name}) == 3
    finally:
        engine.dispose()
