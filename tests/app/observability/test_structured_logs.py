"""Structured log lines carry the bound submission id, in key=value and in JSON, across threads."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import anyio
import pytest

from app.observability.structured_logs import ContextFilter, StructuredFormatter, bind, bound, unbind


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(StructuredFormatter("web"))
    logger = logging.getLogger("app.test_structured")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_lines_about_a_submission_name_it_and_others_do_not(captured: tuple) -> None:  # type: ignore[type-arg]
    logger, stream, _ = captured
    with bound(submission_id=42):
        logger.info('scoring "my model.zip"\nsecond line')
    logger.info("unrelated")
    first, second = stream.getvalue().splitlines()
    assert "service=web" in first and "submission_id=42 " in first
    assert first.endswith('msg=scoring "my model.zip"\\nsecond line')  # one line, as written
    assert "submission_id" not in second and second.endswith("msg=unrelated")


def test_json_lines_parse_and_keep_the_id(captured: tuple) -> None:  # type: ignore[type-arg]
    logger, stream, handler = captured
    handler.setFormatter(StructuredFormatter("worker", "json"))
    token = bind(submission_id=7, task_id="abc")
    try:
        logger.warning("受講生 %s", "花子")
    finally:
        unbind(token)
    record = json.loads(stream.getvalue())
    assert record["submission_id"] == 7 and record["task_id"] == "abc"
    assert record["msg"] == "受講生 花子" and record["level"] == "warning" and record["service"] == "worker"


def test_the_id_follows_work_handed_to_a_thread(captured: tuple) -> None:  # type: ignore[type-arg]
    """The upload route binds the id, then enqueues from a worker thread (anyio copies the context)."""
    logger, stream, _ = captured

    async def route() -> None:
        bind(submission_id=9)
        await anyio.to_thread.run_sync(logger.info, "enqueued")

    anyio.run(route)
    assert "submission_id=9 " in stream.getvalue()
