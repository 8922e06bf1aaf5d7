"""Two results of one pair of trainees whose similarity updates run at the same moment still pair.

Identical files are matched through ``submission_files`` rows that each update writes in its own
transaction. Here the first update is held open (its files written, not committed) while the second
runs in another thread on its own connection, on SQLite and on PostgreSQL. The second must wait for
the first to commit and then see its files; had it gone ahead, each would have missed the other.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, transaction
from app.models import Cohort, Role, SimilarityPair, Submission, SubmissionStatus, User
from app.settings import Settings
from tests.fixtures.services import wait_for
from worker.similarity import refresh_after_result, update_for_submission

WEIGHTS_SHA = "ab" * 32
NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class TwoResults:
    settings: Settings
    sessions: sessionmaker[Session]
    cohort_id: int
    first: int  # hanako's submission
    second: int  # taro's, with the same weights file under another name


def _submission(user: User, cohort: Cohort, name: str) -> Submission:
    return Submission(
        user_id=user.id, cohort_id=cohort.id, status=SubmissionStatus.SUCCEEDED, created_at=NOW,
        quota_day=NOW.date(), original_filename=f"{name}.zip", zip_sha256=name[0] * 64, zip_size=1,
        storage_key="unused", accuracy=0.9, file_hashes=[{"kind": "weights", "sha256": WEIGHTS_SHA, "name": name}],
    )  # fmt: skip


@pytest.fixture
def two_results(db_url: str, tmp_path: Path) -> Iterator[TwoResults]:
    settings = Settings(database_url=db_url, data_dir=tmp_path / "var", _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        cohort = Cohort(name="dl_tokyo_3", title="DL 東京 3 期")
        hanako = User(email="hanako@example.test", name="山田 花子", role=Role.TRAINEE)
        taro = User(email="taro@example.test", name="Taro Sato", role=Role.TRAINEE)
        session.add_all([cohort, hanako, taro])
        session.flush()
        first, second = _submission(hanako, cohort, "hanako.pkl"), _submission(taro, cohort, "taro.pkl")
        session.add_all([first, second])
        session.flush()
        ids = cohort.id, first.id, second.id
    yield TwoResults(settings, sessions, *ids)
    engine.dispose()


def _waiting_for_the_first(db_url: str, sent: list[str]) -> bool:
    """Whether the second update is held up by the first: on PostgreSQL a backend waits for an
    advisory lock; on SQLite the second sent ``BEGIN IMMEDIATE``, which cannot pass the first's
    write lock until it commits."""
    if db_url.startswith("sqlite"):
        return any(statement.startswith("BEGIN IMMEDIATE") for statement in sent)
    engine = make_engine(db_url)
    try:
        with engine.connect() as probe:
            waiting = probe.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))
    finally:
        engine.dispose()
    return bool(waiting)


def test_two_results_updated_at_the_same_moment_still_share_their_file(db_url: str, two_results: TwoResults) -> None:
    second_engine = make_engine(db_url)
    sent: list[str] = []

    @event.listens_for(second_engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    with transaction(two_results.sessions, write_lock=True) as first:
        update_for_submission(first, two_results.first, two_results.settings, NOW)  # files written, not committed
        second = threading.Thread(
            target=refresh_after_result,
            args=(two_results.second, two_results.settings, make_sessionmaker(second_engine)),
        )
        second.start()
        # Either the second is waiting for this transaction (as it must), or it already finished
        # without waiting; in that case it missed the first's files and the assertion below fails.
        wait_for(
            lambda: not second.is_alive() or _waiting_for_the_first(db_url, sent),
            "the second update to wait for the first (or to finish)",
        )
    second.join()
    second_engine.dispose()

    with two_results.sessions() as session:
        pairs = session.scalars(select(SimilarityPair).where(SimilarityPair.cohort_id == two_results.cohort_id)).all()
        assert len(pairs) == 1
        (pair,) = pairs
        assert pair.shared_count == 1
        (shared,) = pair.shared_files
        assert shared["sha256"] == WEIGHTS_SHA and shared["kind"] == "weights"
        assert {shared["name_a"], shared["name_b"]} == {"hanako.pkl", "taro.pkl"}
        assert {shared["submission_a_id"], shared["submission_b_id"]} == {two_results.first, two_results.second}
