"""Blame from the parent's own observations: the trusted prefix of the result channel, never after it.

These feed ``classify_run`` the exact bytes and terminations a run can produce (the hostile corpus,
tests/scorer/hostile/, drives the same routes through the real sandbox).
"""

from __future__ import annotations

import json
import random

import pytest

from scorer.errors import Blame, ErrorCode
from scorer.sandbox.types import Isolation, Limits, SandboxOutcome, Termination
from scorer.verdict import channel_complete, classify_run, parse_channel, signal_name

LIMITS = Limits(wall_seconds=10, memory_bytes=1024**3)
HELLO = b'{"event": "hello", "python": "3.11.2"}\n'
IMPORTING = b'{"event": "importing"}\n'


def outcome(
    result: bytes, termination: Termination = Termination.EXITED, exit_code: int | None = 0, sig: int | None = None
) -> SandboxOutcome:
    return SandboxOutcome(
        termination=termination,
        exit_code=exit_code,
        signal=sig,
        isolation=Isolation.BWRAP,
        log_head=b"",
        log_tail=b"",
        log_total_bytes=0,
        result=result,
        duration_s=1.0,
        cpu_s=1.0,
        peak_memory_bytes=50 * 1024**2,
    )


def line(**fields: object) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def verdict(data: bytes, **kwargs: object) -> tuple[ErrorCode | None, Blame | None, dict[str, object]]:
    run = outcome(data, **kwargs)  # type: ignore[arg-type]
    error = classify_run(run, parse_channel(data), LIMITS)
    return (error.code, error.code.blame, error.params) if error else (None, None, {})


def test_only_the_prefix_before_the_import_can_blame_the_server() -> None:
    error = line(event="error", code="internal_error", params={}, traceback="")
    assert verdict(HELLO + error)[:2] == (ErrorCode.INTERNAL_ERROR, Blame.SERVER)
    assert verdict(HELLO + IMPORTING + error)[:2] == (ErrorCode.HARNESS_DISRUPTED, Blame.SUBMISSION)
    forged = line(event="error", code="sandbox_unavailable")
    assert verdict(HELLO + IMPORTING + forged)[:2] == (ErrorCode.HARNESS_DISRUPTED, Blame.SUBMISSION)
    unknown = line(event="error", code="refund_me_please")
    assert verdict(HELLO + IMPORTING + unknown)[:2] == (ErrorCode.HARNESS_DISRUPTED, Blame.SUBMISSION)


def test_a_run_that_never_said_hello_is_the_servers() -> None:
    assert verdict(b"", termination=Termination.SETUP_FAILED, exit_code=1)[0] is ErrorCode.SANDBOX_UNAVAILABLE
    assert verdict(b"", termination=Termination.SIGNALLED, exit_code=None, sig=9)[0] is ErrorCode.INTERNAL_ERROR
    assert verdict(HELLO, exit_code=1)[:2] == (ErrorCode.INTERNAL_ERROR, Blame.SERVER)  # died before importing


def test_a_setup_failure_claimed_after_the_harness_started_is_not_believed() -> None:
    code, blame, _ = verdict(HELLO + IMPORTING, termination=Termination.SETUP_FAILED, exit_code=1)
    assert blame is Blame.SUBMISSION and code is ErrorCode.SUBMISSION_EXITED


@pytest.mark.parametrize(
    ("termination", "exit_code", "sig", "reason"),
    [
        (Termination.EXITED, 0, None, "exit code 0"),
        (Termination.EXITED, 3, None, "exit code 3"),
        (Termination.SIGNALLED, None, 32, "killed by signal 32"),  # os._exit(160) through timeout: 128 + 32
        (Termination.SIGNALLED, None, 35, "killed by signal 35"),  # SIGRTMIN+1: signal.Signals(35) raises
        (Termination.SIGNALLED, None, 11, "killed by SIGSEGV"),
        (Termination.SIGNALLED, None, 1000, "killed by signal 1000"),
    ],
)
def test_every_exit_and_signal_after_the_import_is_the_submissions(
    termination: Termination, exit_code: int | None, sig: int | None, reason: str
) -> None:
    code, blame, params = verdict(HELLO + IMPORTING, termination=termination, exit_code=exit_code, sig=sig)
    assert (code, blame) == (ErrorCode.SUBMISSION_EXITED, Blame.SUBMISSION)
    assert params["reason"] == reason


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json at all\n",
        b'{"event": ["a", "list"]}\n',
        b'["event", "error"]\n',
        line(event="result", kind="labels", bytes="lots"),
        line(event="result", kind="labels", bytes=10**9),
        line(event="result", kind="labels", bytes=True),
        line(event="result", kind="labels", bytes=-5),
        b'{"event": "error", "code": "internal_error"',  # no newline
        b"[" * 100_000 + b"\n",  # deep nesting
    ],
)
def test_malformed_events_after_the_import_are_the_submissions_and_never_raise(garbage: bytes) -> None:
    code, blame, _ = verdict(HELLO + IMPORTING + garbage)
    assert blame is Blame.SUBMISSION
    assert code in (ErrorCode.HARNESS_DISRUPTED, ErrorCode.SUBMISSION_EXITED)


def test_odd_field_types_in_a_forged_error_do_not_raise() -> None:
    for params in (["a"], "text", 5, None, {"reason": {"nested": [1, 2]}}):
        forged = line(event="error", code="predict_exception", params=params, traceback=["x"], peak_rss_kib="big")
        code, blame, _ = verdict(HELLO + IMPORTING + forged)
        assert (code, blame) == (ErrorCode.PREDICT_EXCEPTION, Blame.SUBMISSION)


def test_random_bytes_on_the_channel_never_raise_and_never_blame_the_server() -> None:
    rng = random.Random(0)
    pieces = [HELLO, IMPORTING, b"\n", b"{", b"}", b'"event"', b":", b'"error"', b'"result"', b'"bytes"', b"7", b","]
    for _ in range(2000):
        tail = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) + rng.randbytes(rng.randint(0, 20))
        termination = rng.choice(list(Termination))
        _, blame, _ = verdict(HELLO + IMPORTING + tail, termination=termination, exit_code=rng.randint(0, 255))
        assert blame in (Blame.SUBMISSION, None)


@pytest.mark.parametrize(
    ("termination", "code", "limit"),
    [
        (Termination.OUTPUT_LIMIT, ErrorCode.OUTPUT_TOO_LARGE, "8 MiB"),  # stdout and stderr
        (Termination.RESULT_LIMIT, ErrorCode.OUTPUT_TOO_LARGE, "64 MiB"),  # the result channel, fd 3
        (Termination.DISK_LIMIT, ErrorCode.DISK_LIMIT, "256 MiB"),  # the writable mounts together
    ],
)
def test_a_limit_the_parent_stopped_the_run_at_is_stated_as_that_limit(
    termination: Termination, code: ErrorCode, limit: str
) -> None:
    # Even when the run claims something else on its channel afterwards.
    forged = line(event="error", code="predict_exception", params={"reason": "x"})
    assert verdict(HELLO + IMPORTING + forged, termination=termination, exit_code=None) == (
        code,
        Blame.SUBMISSION,
        {"limit": limit},
    )


def test_a_complete_result_after_the_import_is_accepted() -> None:
    payload = b"\x93NUMPY..."
    data = HELLO + IMPORTING + line(event="result", kind="labels", bytes=len(payload), predict_seconds=0.5) + payload
    channel = parse_channel(data)
    assert channel.payload == payload and channel.predict_seconds == 0.5
    assert classify_run(outcome(data), channel, LIMITS) is None


def test_a_run_is_complete_only_once_its_final_event_is_whole() -> None:
    """Every prefix of a result is incomplete (the run goes on); the whole result, or an error, ends it."""
    payload = b"\x93NUMPY" + bytes(range(40))
    data = HELLO + IMPORTING + line(event="result", kind="labels", bytes=len(payload)) + payload
    assert not any(channel_complete(data[:end]) for end in range(len(data)))
    assert channel_complete(data)
    assert channel_complete(HELLO + line(event="error", code="entry_not_found"))  # the harness's own, before import
    assert channel_complete(HELLO + IMPORTING + line(event="error", code="predict_exception"))
    assert not channel_complete(HELLO + IMPORTING + line(event="loaded", seconds=1.0))


def test_a_completed_run_with_a_forged_server_fault_is_the_submissions() -> None:
    """Ended on its final event, a run is still judged by it: a forged server fault gains nothing."""
    forged = HELLO + IMPORTING + line(event="error", code="internal_error", params={}, traceback="")
    assert channel_complete(forged)
    code, blame, _ = verdict(forged, termination=Termination.COMPLETED, exit_code=None)
    assert (code, blame) == (ErrorCode.HARNESS_DISRUPTED, Blame.SUBMISSION)


def test_signal_names_never_raise() -> None:
    assert signal_name(9) == "SIGKILL"
    assert signal_name(32) == "signal 32"
    assert signal_name(-1) == "signal -1"
