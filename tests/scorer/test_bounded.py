"""Work on trainee input in a bounded child (scorer/bounded.py): its answer comes back, its excess
does not reach the worker, and nothing of it is left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from scorer.bounded import StaticLimits, run_bounded
from scorer.errors import ErrorCode, ScoringError
from scorer.sandbox.types import MiB

LIMITS = StaticLimits(memory_bytes=128 * MiB, cpu_seconds=2, wall_seconds=30.0)


def peak_rss_bytes() -> int:
    """This process's resident high-water mark (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def our_children() -> set[int]:
    """This process's children now. A test compares before and after: in a pytest worker, fixtures
    of earlier tests may keep children of their own (servers, warm sandboxes)."""
    return {int(pid) for pid in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()}


def add(a: int, b: int) -> int:
    return a + b


def refuse() -> None:
    raise ScoringError(ErrorCode.SYNTAX_ERROR, {"file": "x.py", "line": "line 3", "reason": "bad"}, "detail")


def hog_memory() -> int:
    return len(bytearray(1024 * MiB))  # far past the child's 128 MiB


def spin() -> None:
    while True:
        pass


def sleep() -> None:
    time.sleep(600)


def crash() -> None:
    os._exit(3)  # gone without an answer, as a crash in C code would leave it


def test_the_answer_and_the_exception_come_back_whole() -> None:
    assert run_bounded(add, 2, 3, limits=LIMITS) == 5
    with pytest.raises(ScoringError) as raised:
        run_bounded(refuse, limits=LIMITS)
    assert raised.value.code is ErrorCode.SYNTAX_ERROR
    assert raised.value.params["line"] == "line 3" and raised.value.detail == "detail"


def test_memory_past_the_bound_is_refused_and_never_reaches_the_worker() -> None:
    before = peak_rss_bytes()
    with pytest.raises(ScoringError) as raised:
        run_bounded(hog_memory, limits=LIMITS)
    assert raised.value.code is ErrorCode.CHECK_LIMIT
    assert raised.value.params == {"limit": "128 MiB"}
    assert peak_rss_bytes() - before < 64 * MiB


@pytest.mark.parametrize(
    ("function", "limits", "limit"),
    [
        # Spinning meets the CPU limit whatever the load (the wall limit is only a safety net here);
        # sleeping never does, and meets the wall limit.
        (spin, StaticLimits(memory_bytes=128 * MiB, cpu_seconds=1, wall_seconds=600.0), "1 s"),
        (sleep, StaticLimits(memory_bytes=128 * MiB, cpu_seconds=1, wall_seconds=2.0), "2 s"),
    ],
)
def test_time_past_the_bound_is_refused_and_the_child_is_gone(
    function: object, limits: StaticLimits, limit: str
) -> None:
    before = our_children()
    with pytest.raises(ScoringError) as raised:
        run_bounded(function, limits=limits)  # type: ignore[arg-type]
    assert raised.value.code is ErrorCode.CHECK_LIMIT
    assert raised.value.params == {"limit": limit}
    assert our_children() - before == set()  # reaped: no zombie, nothing still running


def test_a_crash_is_not_blamed_on_the_submission() -> None:
    before = our_children()
    with pytest.raises(RuntimeError, match="without an answer"):
        run_bounded(crash, limits=LIMITS)
    assert our_children() - before == set()
