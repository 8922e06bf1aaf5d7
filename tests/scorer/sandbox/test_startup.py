"""The start-up bound: a command's start before it is ready is off the run's wall clock, bounded apart.

A harness sandbox's command (the interpreter, TensorFlow's import) may take longer to start on a
loaded machine than a short run's wall limit. With ``startup_seconds``, the hand-over waits for the
command's first write to its result channel (the harness's hello) and the wall clock starts there:
cold, warm and in the unsandboxed fallback alike. A command that is not ready in time is a setup
failure, and nothing of it is left running.
"""

from __future__ import annotations

import dataclasses

import pytest

from scorer.runtime import Runtime
from scorer.sandbox import (
    SandboxConfig,
    SandboxOutcome,
    SandboxRequest,
    Termination,
    run_sandboxed,
    start_sandboxed,
)

from .conftest import SANDBOX_ENV, TEST_LIMITS, processes_with, wait_until

# Ready after 3 s, then a job that takes no time: over a 1.5 s wall limit only if the start counts.
SLOW_START = "import os, sys, time\ntime.sleep(3)\nos.write(3, b'ready;')\nos.write(3, sys.stdin.buffer.read())\n"
WALL = 1.5


def _request(runtime: Runtime, code: str, *, startup: float, args: tuple[str, ...] = ()) -> SandboxRequest:
    return SandboxRequest(
        argv=[str(runtime.python), "-I", "-c", code, *args],
        binds=runtime.binds(),
        env=SANDBOX_ENV,
        limits=dataclasses.replace(TEST_LIMITS, wall_seconds=WALL),
        stdin=b"job",
        startup_seconds=startup,
    )


def _warm(request: SandboxRequest, config: SandboxConfig) -> SandboxOutcome:
    started = start_sandboxed(request, config)
    if isinstance(started, SandboxOutcome):
        return started
    return started.hand_over()


@pytest.mark.parametrize("path", ["cold", "warm", "unsandboxed"])
def test_a_slow_start_is_not_on_the_wall_clock(path: str, runtime: Runtime, config: SandboxConfig) -> None:
    request = _request(runtime, SLOW_START, startup=60.0)
    if path == "warm":
        outcome = _warm(request, config)
    else:
        outcome = run_sandboxed(request, SandboxConfig(mode="unsandboxed") if path == "unsandboxed" else config)
    assert outcome.termination is Termination.EXITED, outcome
    assert outcome.exit_code == 0
    assert outcome.result == b"ready;job"  # the job was handed over once it was ready
    assert outcome.duration_s < WALL  # measured from the hand-over


def test_without_a_start_up_bound_the_start_is_on_the_clock(runtime: Runtime, config: SandboxConfig) -> None:
    """What the bound changes: the same command, handed over at once, runs out of its wall limit."""
    outcome = run_sandboxed(_request(runtime, SLOW_START, startup=0.0), config)
    assert outcome.termination is Termination.WALL_TIMEOUT


@pytest.mark.parametrize("path", ["cold", "warm", "unsandboxed"])
def test_a_command_not_ready_in_time_is_a_setup_failure_and_leaves_nothing(
    path: str, runtime: Runtime, config: SandboxConfig, marker: str
) -> None:
    never_ready = "import subprocess, sys; subprocess.run(['sleep', sys.argv[1]])"
    request = _request(runtime, never_ready, startup=1.0, args=(marker,))
    if path == "warm":
        outcome = _warm(request, config)
    else:
        outcome = run_sandboxed(request, SandboxConfig(mode="unsandboxed") if path == "unsandboxed" else config)
    assert outcome.termination is Termination.SETUP_FAILED
    assert "not ready within 1 s" in outcome.setup_error
    assert wait_until(lambda: not processes_with(marker))


def test_a_command_that_dies_before_it_is_ready_is_reported_as_it_ended(
    runtime: Runtime, config: SandboxConfig
) -> None:
    """Its end (EOF on the result channel) ends the wait: no start-up bound to sit out."""
    outcome = run_sandboxed(_request(runtime, "import sys; sys.exit(5)", startup=60.0), config)
    assert outcome.termination is Termination.EXITED
    assert outcome.exit_code == 5
