"""Structured log lines carry the bound submission id, in key=value and in JSON, across threads."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import pytest

from app.observability.structured_logs import StructuredFormatter, bind, bound, unbind
from tests.fixtures.logs import CapturedLog, structured_lines


@pytest.fixture
def captured() -> Iterator[CapturedLog]:
    with structured_lines("app.test_structured", "web") as log:
        yield log


def test_lines_about_a_submission_name_it_and_others_do_not(captured: CapturedLog) -> None:
    logger, stream = captured.logger, captured.stream
    with bound(submission_id=42):
        logger.info('scoring "my model.zip"\nsecond line')
    logger.info("unrelated")
    first, second = stream.getvalue().splitlines()
    assert "service=web" in first and "submission_id=42 " in first
    assert first.endswith('msg=scoring "my model.zip"\\nsecond line')  # one line, as written
    assert "submission_id" not in second and second.endswith("msg=unrelated")


def test_json_lines_parse_and_keep_the_id(captured: CapturedLog) -> None:
    logger, stream, handler = captured.logger, captured.stream, captured.handler
    handler.setFormatter(StructuredFormatter("worker", "json"))
    token = bind(submission_id=7, task_id="abc")
    try:
        logger.warning("受講生 %s", "花子")
    finally:
        unbind(token)
    record = json.loads(stream.getvalue())
    assert record["submission_id"] == 7 and record["task_id"] == "abc"
    assert record["msg"] == "受講生 花子" and record["level"] == "warning" and record["service"] == "worker"


def test_the_id_follows_work_handed_to_a_thread(captured: CapturedLog) -> None:
    """The upload route binds the id, then enqueues from a worker thread (anyio copies the context)."""
    logger, stream = captured.logger, captured.stream

    async def route() -> None:
        bind(submission_id=9)
        await anyio.to_thread.run_sync(logger.info, "enqueued")

    anyio.run(route)
    assert "submission_id=9 " in stream.getvalue()
