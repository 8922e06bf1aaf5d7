"""A run that ends on its complete result: killed then, not waited for (SandboxRequest.result_complete).

Tearing down a process that imported TensorFlow takes most of a second, and it can no longer change
what the run produced, so a harness run ends as soon as its result channel holds a final event: the
output written before it is kept, the rest of the run is killed, and its reaping (with the sweep
that nothing is left) can wait for ``release``. Without a complete result the run goes on as before.
"""

from __future__ import annotations

import pytest

from scorer.runtime import Runtime
from scorer.sandbox import SandboxConfig, SandboxOutcome, SandboxRequest, Termination, run_sandboxed, start_sandboxed

from .conftest import SANDBOX_ENV, TEST_LIMITS, processes_with, wait_until

# Prints, writes its result in two parts, then lingers: a child that sleeps, and itself.
LINGERS = """\
import os, subprocess, sys, time
print("BEFORE THE RESULT", flush=True)
os.write(3, b"result:")
time.sleep(0.2)
os.write(3, b"done\\n")
subprocess.Popen(["sleep", sys.argv[1]])
time.sleep(600)
"""


def _complete(data: bytes) -> bool:
    return data.endswith(b"done\n")


def _request(runtime: Runtime, code: str, marker: str) -> SandboxRequest:
    return SandboxRequest(
        argv=[str(runtime.python), "-I", "-c", code, marker],
        binds=runtime.binds(),
        env=SANDBOX_ENV,
        limits=TEST_LIMITS,
        result_complete=_complete,
    )


@pytest.mark.parametrize("path", ["cold", "warm"])
def test_a_run_ends_on_its_complete_result_not_its_exit(
    path: str, runtime: Runtime, config: SandboxConfig, marker: str
) -> None:
    request = _request(runtime, LINGERS, marker)
    if path == "warm":
        started = start_sandboxed(request, config)
        assert not isinstance(started, SandboxOutcome), started
        outcome = started.hand_over()
    else:
        outcome = run_sandboxed(request, config)
    assert outcome.termination is Termination.COMPLETED, outcome
    assert outcome.result == b"result:done\n"
    assert "BEFORE THE RESULT" in outcome.log
    assert outcome.exit_code is None and outcome.signal is None  # it did not exit: it was ended
    assert wait_until(lambda: not processes_with(marker))


def test_a_completed_run_is_reaped_and_swept_at_release(runtime: Runtime, config: SandboxConfig, marker: str) -> None:
    """With ``sweep_later`` the killed run is left to ``release``, which leaves nothing of it."""
    started = start_sandboxed(_request(runtime, LINGERS, marker), config)
    assert not isinstance(started, SandboxOutcome), started
    try:
        outcome = started.hand_over(sweep_later=True)
        assert outcome.termination is Termination.COMPLETED, outcome
    finally:
        started.release()
    assert started.ended
    assert wait_until(lambda: not processes_with(marker))


def test_without_a_complete_result_the_run_ends_as_its_process_does(
    runtime: Runtime, config: SandboxConfig, marker: str
) -> None:
    code = "import os, sys\nos.write(3, b'result:')\nsys.exit(3)\n"
    outcome = run_sandboxed(_request(runtime, code, marker), config)
    assert outcome.termination is Termination.EXITED, outcome
    assert outcome.exit_code == 3
    assert outcome.result == b"result:"


def test_a_limit_reached_before_the_result_still_ends_the_run_as_that(
    runtime: Runtime, config: SandboxConfig, marker: str
) -> None:
    """Output over its limit before the result: the run ends as over it, not as COMPLETED."""
    flood = "import os, sys\nsys.stdout.write('x' * (16 * 1024 * 1024))\nsys.stdout.flush()\nos.write(3, b'done\\n')\n"
    outcome = run_sandboxed(_request(runtime, flood, marker), config)
    assert outcome.termination is Termination.OUTPUT_LIMIT, outcome
