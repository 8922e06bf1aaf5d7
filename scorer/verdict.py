"""Who is to blame for how a sandboxed run ended, decided only from what the parent saw itself.

Blame is a channel too: a run blamed on the server gives the trainee's upload back, so a submission
that could make its run *look* like a server fault would get unlimited runs on the hidden set. Once
trainee code has been imported it shares the harness's process: it can write anything to the
result descriptor (a forged ``{"event": "error", "code": "internal_error"}``, a malformed event),
exit with any status (``os._exit(160)`` looks like "killed by signal 32"), die of any signal, make
its exception's ``__str__`` raise, or replace functions the harness calls after ``predict``.

So the parent trusts the result descriptor only up to the harness's ``importing`` line, the last
one written before any trainee code runs. The server is blamed only for what that trusted prefix
or the parent's own observations prove: bubblewrap or the runtime did not start, the harness failed
before importing the entry. Everything after the import is the submission's, with the most precise
code available. Nothing here raises, whatever bytes arrive.
"""

from __future__ import annotations

import json
import math
import signal
from dataclasses import dataclass
from typing import Any

from scorer.errors import Blame, ErrorCode, ScoringError, human_bytes
from scorer.sandbox.types import Limits, SandboxOutcome, Termination

_MAX_LINE = 1024 * 1024  # an event line longer than this is not the harness's


@dataclass
class HarnessChannel:
    """What the result descriptor (fd 3 inside) said, split at the trust boundary."""

    hello: bool = False  # the harness started (no trainee code has run yet)
    importing: bool = False  # from here on, trainee code may have run: nothing below is trusted
    trusted_error: dict[str, Any] | None = None  # reported by the harness before the import
    error: dict[str, Any] | None = None  # the first error after the import (the trainee may have forged it)
    result: dict[str, Any] | None = None
    payload: bytes | None = None
    violation: str = ""  # why the channel stopped making sense after the import, if it did
    peak_rss_kib: int | None = None  # as reported with the final event (after the import: a hint only)
    predict_seconds: float | None = None

    @property
    def final(self) -> bool:
        """Whether it holds a final event (an error, or a result with its payload): whatever else
        comes, parse_channel reads no further."""
        return self.trusted_error is not None or self.error is not None or self.payload is not None


def channel_complete(data: bytes) -> bool:
    """Whether a result channel holding ``data`` ends its run (SandboxRequest.result_complete).

    Then the verdict no longer depends on how the run's processes exit: it is decided by the
    channel up to its final event, or by what the parent saw itself up to then (its memory,
    the clock, the output), never by an exit status or signal. A final event forged by trainee
    code (after the import) ends its run as the harness's would: a result of its own choosing, which
    predict could have returned, or an error that is the submission's (classify_run), and killed at
    once, so whatever it does after cannot count for it either.
    """
    return parse_channel(data).final


def parse_channel(data: bytes) -> HarnessChannel:
    """Read the harness's JSON lines (and the result payload); never raises."""
    channel = HarnessChannel()
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos, pos + _MAX_LINE)
        if end < 0:
            if channel.importing:
                channel.violation = "an unterminated or oversized line on the result channel (fd 3)"
            break
        event = _json_object(data[pos:end])
        pos = end + 1
        kind = event.get("event") if event is not None else None
        if event is None or not isinstance(kind, str):
            if channel.importing:
                channel.violation = "a malformed line on the result channel (fd 3)"
            break
        if not channel.importing:
            if kind == "hello" and not channel.hello:
                channel.hello = True
            elif kind == "importing" and channel.hello:
                channel.importing = True
            elif kind == "error" and channel.hello:
                channel.trusted_error = event
                break
            else:
                break  # the harness never writes anything else before the import
            continue
        if kind == "error":
            channel.error = event
            _note_final(channel, event)
            break
        if kind == "result":
            size = event.get("bytes")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or len(data) - pos < size:
                channel.violation = "a malformed result event on the result channel (fd 3)"
                break
            channel.result = event
            channel.payload = data[pos : pos + size]
            _note_final(channel, event)
            seconds = event.get("predict_seconds")
            if isinstance(seconds, int | float) and not isinstance(seconds, bool) and math.isfinite(seconds):
                channel.predict_seconds = max(0.0, float(seconds))
            break
        # "loaded", "progress" and anything else: informational
    return channel


def _json_object(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _note_final(channel: HarnessChannel, event: dict[str, Any]) -> None:
    peak = event.get("peak_rss_kib")
    if isinstance(peak, int) and not isinstance(peak, bool) and 0 <= peak < 2**50:
        channel.peak_rss_kib = peak


def signal_name(number: int) -> str:
    """SIGSEGV, or "signal 34" for numbers Python has no name for (real-time signals)."""
    try:
        return signal.Signals(number).name
    except (ValueError, TypeError):
        return f"signal {number}"


def limit_params(code: ErrorCode, limits: Limits) -> dict[str, Any]:
    if code is ErrorCode.TIME_LIMIT:
        return {"limit": f"{limits.wall_seconds:g} s"}
    if code is ErrorCode.MEMORY_LIMIT:
        return {"limit": human_bytes(limits.memory_bytes)}
    if code is ErrorCode.DISK_LIMIT:
        return {"limit": human_bytes(limits.writable_bytes)}
    if code is ErrorCode.OUTPUT_TOO_LARGE:
        return {"limit": human_bytes(limits.output_bytes)}
    return {}


def failure(code: ErrorCode, limits: Limits, params: dict[str, Any] | None = None, detail: str = "") -> ScoringError:
    return ScoringError(code, {**limit_params(code, limits), **(params or {})}, detail)


def _reported(event: dict[str, Any], limits: Limits, *, trusted: bool) -> ScoringError:
    """The error the harness (or, after the import, possibly the trainee) reported."""
    raw_code = event.get("code")
    try:
        code = ErrorCode(raw_code) if isinstance(raw_code, str) else None
    except ValueError:
        code = None
    params = event.get("params")
    params = dict(params) if isinstance(params, dict) else {}
    tb = event.get("traceback")
    detail = tb if isinstance(tb, str) else ""
    if trusted:
        if code is None:  # the harness only writes codes it knows: a corrupted harness is ours
            return failure(ErrorCode.INTERNAL_ERROR, limits, detail=f"harness reported {raw_code!r}")
        if code.blame is Blame.SERVER:
            return failure(code, limits, detail=detail)
        return failure(code, limits, params, detail)
    if code is None or code.blame is Blame.SERVER:
        why = "a report on the result channel (fd 3) claiming a server fault"
        if code is None:
            why = "a report on the result channel (fd 3) with an unknown code"
        return failure(ErrorCode.HARNESS_DISRUPTED, limits, {"reason": why}, detail)
    if code is ErrorCode.HARNESS_DISRUPTED:
        # The reason is the harness's own wording, but it came over a channel the trainee could write.
        params = {"reason": "the harness failed after your code was imported"}
    return failure(code, limits, params, detail)


def classify_run(outcome: SandboxOutcome, channel: HarnessChannel, limits: Limits) -> ScoringError | None:
    """What the run means; None when a complete set of predictions arrived (still to be validated)."""
    if not channel.hello:
        # Nothing of the trainee's ran before "hello": bubblewrap, the runtime or the harness's
        # start failed, which is the service's fault whatever the termination says.
        if outcome.termination is Termination.SETUP_FAILED:
            return failure(ErrorCode.SANDBOX_UNAVAILABLE, limits, detail=outcome.setup_error[:2000])
        return failure(ErrorCode.INTERNAL_ERROR, limits, detail=f"harness did not start: {outcome.termination}")
    if channel.trusted_error is not None:
        return _reported(channel.trusted_error, limits, trusted=True)
    if not channel.importing:
        detail = f"harness ended before importing the entry: {outcome.termination}, exit code {outcome.exit_code}"
        return failure(ErrorCode.INTERNAL_ERROR, limits, detail=detail)
    # From here on the trainee's code has run: every outcome is the submission's.
    termination = outcome.termination
    if termination is Termination.MEMORY_LIMIT:
        # Observed by the parent (the run's cgroup or the memory supervisor), whatever the run said after.
        return failure(ErrorCode.MEMORY_LIMIT, limits)
    if termination is Termination.DISK_LIMIT:
        return failure(ErrorCode.DISK_LIMIT, limits)  # the parent saw the writable mounts' total
    if termination in (Termination.WALL_TIMEOUT, Termination.CPU_TIMEOUT):
        return failure(ErrorCode.TIME_LIMIT, limits)
    if termination is Termination.OUTPUT_LIMIT:
        return failure(ErrorCode.OUTPUT_TOO_LARGE, limits)
    if termination is Termination.RESULT_LIMIT:
        # The result channel (fd 3) has its own, larger limit: the message states that one.
        return failure(ErrorCode.OUTPUT_TOO_LARGE, limits, {"limit": human_bytes(limits.result_bytes)})
    if channel.error is not None:
        return _reported(channel.error, limits, trusted=False)
    if channel.result is not None and channel.payload is not None:
        return None
    if channel.violation:
        return failure(ErrorCode.HARNESS_DISRUPTED, limits, {"reason": channel.violation})
    if termination is Termination.FILE_SIZE_LIMIT:
        return failure(ErrorCode.DISK_LIMIT, limits)
    if termination is Termination.SIGNALLED and outcome.signal is not None:
        # RLIMIT_AS makes most allocations fail with MemoryError (reported by the harness); a process
        # killed near the limit (an allocation in C that aborted, the kernel's OOM killer) is the same.
        if outcome.peak_memory_bytes >= 0.8 * limits.memory_bytes:
            return failure(ErrorCode.MEMORY_LIMIT, limits)
        return failure(ErrorCode.SUBMISSION_EXITED, limits, {"reason": f"killed by {signal_name(outcome.signal)}"})
    if termination is Termination.EXITED:
        return failure(ErrorCode.SUBMISSION_EXITED, limits, {"reason": f"exit code {outcome.exit_code}"})
    # SETUP_FAILED after "hello" is impossible (the command ran); anything unforeseen is still theirs.
    return failure(ErrorCode.SUBMISSION_EXITED, limits, {"reason": str(termination)})
