"""The storage boundary bounds a run's output again, and stores every outcome, whatever report reaches it.

The pipeline already cuts a hidden-set run's output to the excerpt and makes its text storable;
these reports are built by hand as a faulty or older scorer could deliver them, to prove the row
cannot hold more, and that an outcome the database refuses is still recorded as the submission's.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy.exc import OperationalError

from app.db import make_engine, make_sessionmaker
from app.models import SubmissionStatus
from app.settings import Settings
from scorer.disclosure import RESERVED_BYTES, Disclosure, disclose
from scorer.errors import ErrorCode, ScoringError
from scorer.report import RunFacts, ScoreReport
from tests.fixtures.db import ON_BOTH_DATABASES
from tests.fixtures.services import refused_port
from tests.worker.conftest import World
from worker.results import refused_for_content, report_values, store_report

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def report(code: ErrorCode, log: str, params: dict[str, object]) -> ScoreReport:
    return ScoreReport(
        status="failed",
        error=ScoringError(code, params, detail=log),
        metrics=None,
        facts=RunFacts(log=log, run_id="r1"),
        runtime={},
        limits={},
        staff_log=log,
    )


def test_a_huge_report_is_stored_within_the_configured_bounds() -> None:
    settings = Settings(_env_file=None, hidden_run_excerpt_bytes=1000, hidden_run_stored_log_bytes=8000)  # type: ignore[call-arg]
    huge = "B64" * 2_000_000
    values = report_values(report(ErrorCode.PREDICT_EXCEPTION, huge, {"reason": huge}), None, NOW, settings)
    assert len(values["log"].encode()) <= 1000 + RESERVED_BYTES
    assert "withheld" in values["log"]
    result = values["result"]
    assert len(result["staff_log"].encode()) <= 8000 + RESERVED_BYTES
    assert len(result["error"]["detail"].encode()) <= 1000 + RESERVED_BYTES
    assert len(result["error"]["params"]["reason"]) <= 200
    assert len(json.dumps(result).encode()) < 8000 + 1000 + 4 * RESERVED_BYTES + 8192
    assert "counts_toward_limit" not in values  # the trainee's fault: the upload stays spent


def test_a_run_blamed_on_the_server_stores_no_output() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    leaky = report(ErrorCode.INTERNAL_ERROR, "TRAINEE-OUTPUT " * 100, {"x": "TRAINEE"})
    values = report_values(leaky, None, NOW, settings)
    assert values["counts_toward_limit"] is False
    assert values["log"] == ""
    assert "TRAINEE" not in json.dumps({k: v for k, v in values["result"].items() if k != "error"})
    assert values["result"]["error"]["params"] == {}
    assert len(values["result"]["error"]["detail"]) <= 4096 + RESERVED_BYTES  # the service's own diagnosis


# What a faulty scorer could hand over unescaped: PostgreSQL refuses the NUL in a text column, and
# SQLite's driver cannot encode the lone surrogate.
UNSTORABLE = "A\x00B boom \ud800"


def _running(world: World) -> int:
    return world.submit(status=SubmissionStatus.RUNNING, attempts=1, started_at=NOW, heartbeat_at=NOW)


def _scored(log: str) -> ScoreReport:
    scored = report(ErrorCode.PREDICT_EXCEPTION, log, {"reason": log})
    scored.error = None
    scored.status = "succeeded"
    return scored


@ON_BOTH_DATABASES
def test_an_outcome_the_database_refuses_is_stored_as_the_submissions_failure(world: World) -> None:
    """Never left running to be re-run and given back: the submission's failure, in our words, the
    slot spent, its email promised."""
    for unstorable in (report(ErrorCode.PREDICT_EXCEPTION, UNSTORABLE, {"reason": UNSTORABLE}), _scored(UNSTORABLE)):
        submission_id = _running(world)
        values, outbox_id = store_report(
            submission_id, unstorable, None, world.settings, NOW, attempt=1, factory=world.sessions
        )
        row = world.submission(submission_id)
        assert row.status == values["status"] == SubmissionStatus.FAILED
        assert (row.error_code, row.error_blame) == (ErrorCode.RESULT_NOT_STORED.value, "submission")
        assert row.counts_toward_limit  # not given back
        assert row.result["error"]["message_ja"] and row.result["error"]["message"] != row.result["error"]["message_ja"]
        assert "\x00" not in json.dumps(row.result) and row.log is None
        assert outbox_id is not None and any(m.submission_id == submission_id for m in world.outbox())


@ON_BOTH_DATABASES
def test_an_outcome_the_scorer_made_storable_is_stored_as_it_was(world: World) -> None:
    submission_id = _running(world)
    disclosed = disclose(report(ErrorCode.PREDICT_EXCEPTION, UNSTORABLE, {"reason": UNSTORABLE}), Disclosure())
    store_report(submission_id, disclosed, None, world.settings, NOW, attempt=1, factory=world.sessions)
    row = world.submission(submission_id)
    assert (row.status, row.error_code, row.error_blame) == (SubmissionStatus.FAILED, "predict_exception", "submission")
    assert "A\\x00B boom \\ud800" in row.log  # what the trainee printed, as visible escapes
    assert row.counts_toward_limit


@ON_BOTH_DATABASES
def test_a_database_outage_is_never_turned_into_the_submissions_failure(world: World) -> None:
    """Only a refusal of what was stored is the submission's: when the database cannot be reached,
    storing raises and the row stays running, for the sweeper to run again."""
    submission_id = _running(world)
    with refused_port() as port:
        unreachable = make_sessionmaker(make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/katakana"))
        with pytest.raises(OperationalError) as raised:
            store_report(submission_id, _scored(UNSTORABLE), None, world.settings, NOW, attempt=1, factory=unreachable)
    assert not refused_for_content(raised.value)
    assert world.status(submission_id) == SubmissionStatus.RUNNING
