"""The storage boundary bounds a run's output again, whatever report reaches it.

The pipeline already cuts a hidden-set run's output to the excerpt; these reports are built by hand
as a faulty or older scorer could deliver them, to prove the row cannot hold more.
"""

from __future__ import annotations

import datetime as dt
import json

from app.settings import Settings
from scorer.disclosure import RESERVED_BYTES
from scorer.errors import ErrorCode, ScoringError
from scorer.report import RunFacts, ScoreReport
from worker.results import report_values

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
