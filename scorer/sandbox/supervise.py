"""Watching one spawned run to its end, and mapping what was seen to a SandboxOutcome.

Supervision is a single ``select`` loop in the *caller's* thread, over the merged stdout+stderr pipe,
the result pipe (fd 3 inside), bwrap's JSON status pipe and a pidfd of the spawned process. One loop
means no reader threads to leak, and a full pipe can never deadlock the run: every pipe is drained
until EOF, even after a limit has killed the run (excess bytes are counted and dropped). Waiting in
the caller's thread matters too, as spawning there does: ``--die-with-parent`` follows the parent
*thread* (bubblewrap#692).

The wall clock and the output/result caps are enforced here by SIGKILL (through a stopper, see
stop.BwrapStopper), with the PID-1 ``timeout`` as a backstop should this process stall or die, and
``--die-with-parent`` should it die. A ``watch`` callback (the run's memory accounting, see cgroup)
is called every cgroup.POLL_SECONDS while the run lives and may stop it. CPU and peak memory come
from ``wait4``'s rusage, which covers the real workload because every process in the chain
(bwrap → timeout → command) waits for its child.

With a ``complete`` test (SandboxRequest.result_complete), a run whose result channel holds a
complete result ends there, before its processes have exited: what the output pipe holds by then is
read, the run's memory is checked once more, and what is left of the run is killed (``escalate``)
but not reaped; the caller reaps it later. The verdict reads the channel no further than its final
event, and how the processes end after that cannot change what the run produced.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import resource
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from scorer.sandbox.cgroup import POLL_SECONDS
from scorer.sandbox.spawn import Spawned
from scorer.sandbox.stop import ESCALATE_SECONDS
from scorer.sandbox.types import Isolation, Limits, SandboxOutcome, Termination

_READ_CHUNK = 64 * 1024
_DRAIN_SECONDS = 10.0  # safety net: how long pipes may stay open after the spawned process ended


@dataclass
class _LogKeeper:
    """Keeps the first and the last ``keep`` bytes of a stream, counting all of it."""

    keep: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.keep:
                del self.tail[: len(self.tail) - self.keep]


@dataclass
class Supervised:
    """What the loop saw: why we killed the run (if we did), the wait status and the streams.

    ``completed``: the run ended on a complete result; it was killed and is not reaped yet, so
    there is no wait status nor rusage."""

    kill_reason: Termination | None
    wait_status: int
    rusage: resource.struct_rusage | None
    duration_s: float
    log: _LogKeeper
    result: bytes
    status_docs: list[dict[str, object]]
    completed: bool = False


class _Stopper(Protocol):
    """How to end a run early: ``stop`` first, ``escalate`` if the process has not ended soon after."""

    def stop(self) -> None: ...

    def escalate(self) -> None: ...

    def saw_status(self, doc: dict[str, object]) -> None: ...


def supervise(
    spawned: Spawned,
    limits: Limits,
    stopper: _Stopper,
    *,
    status_r: int | None = None,
    before_reap: Callable[[], None] | None = None,
    watch: Callable[[], Termination | None] | None = None,
    complete: Callable[[bytes], bool] | None = None,
) -> Supervised:
    """Drain the pipes, enforce wall/output/result limits through ``stopper``, reap the process.

    ``watch`` is polled while the process lives; a Termination it returns stops the run as that.
    ``complete``: see the module docstring; a run it ends is killed but left unreaped.

    ``before_reap`` runs once the process has ended but is still an unreaped zombie, so its pid
    (and process group id) cannot yet be reused by anyone else.
    """
    supervisor = _Supervisor(spawned, limits, stopper, status_r, watch, complete)
    try:
        return supervisor.run(before_reap)
    except BaseException:
        # Interrupted (a bug, KeyboardInterrupt): the run must not outlive us.
        if supervisor.wait is None and not supervisor.completed:
            stopper.escalate()
            os.wait4(spawned.pid, 0)
        raise


class _Supervisor:
    """The state of one supervision loop; see supervise."""

    def __init__(
        self,
        spawned: Spawned,
        limits: Limits,
        stopper: _Stopper,
        status_r: int | None,
        watch: Callable[[], Termination | None] | None = None,
        complete: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.spawned = spawned
        self.watch = watch
        self.complete = complete
        self.result_checked = 0  # how much of the result channel ``complete`` has seen
        self.completed = False
        self.next_watch = spawned.started if watch is not None else math.inf
        self.limits = limits
        self.stopper = stopper
        self.status_r = status_r
        self.log = _LogKeeper(limits.log_keep_bytes)
        self.result = bytearray()
        self.result_total = 0
        self.status_raw = bytearray()
        self.status_docs: list[dict[str, object]] = []
        self.kill_reason: Termination | None = None
        self.escalate_at = math.inf
        self.deadline = spawned.started + limits.wall_seconds
        self.wait: tuple[int, resource.struct_rusage] | None = None
        self.ended_at = 0.0

    def stop(self, reason: Termination) -> None:
        if self.kill_reason is None and self.wait is None:
            self.kill_reason = reason
            self.escalate_at = time.monotonic() + ESCALATE_SECONDS
            self.stopper.stop()

    def run(self, before_reap: Callable[[], None] | None) -> Supervised:
        spawned = self.spawned
        pipes = {spawned.output_r, spawned.result_r} | ({self.status_r} if self.status_r is not None else set())
        for fd in pipes:
            os.set_blocking(fd, False)
        while self.wait is None or (pipes and time.monotonic() < self.ended_at + _DRAIN_SECONDS):
            watched = [*pipes, spawned.pidfd] if self.wait is None else list(pipes)
            ready, _, _ = select.select(watched, [], [], self._timeout())
            for fd in ready:
                if fd == spawned.pidfd:
                    if before_reap is not None:
                        os.waitid(os.P_PID, spawned.pid, os.WEXITED | os.WNOWAIT)
                        before_reap()
                    _, status, rusage = os.wait4(spawned.pid, 0)
                    self.wait = (status, rusage)
                    self.ended_at = time.monotonic()
                elif self._read(fd) == 0:
                    pipes.discard(fd)
            self._enforce_clock()
            if self._complete_now():
                break
        ended: tuple[int, resource.struct_rusage | None] = self.wait if self.wait is not None else (0, None)
        return Supervised(
            kill_reason=self.kill_reason,
            wait_status=ended[0],
            rusage=ended[1],
            duration_s=self.ended_at - spawned.started,
            log=self.log,
            result=bytes(self.result),
            status_docs=self.status_docs,
            completed=self.completed,
        )

    def _complete_now(self) -> bool:
        """Whether the run ends here on its complete result (then it is killed).

        Asked again only when the channel grew. Not once a limit has stopped it (it ends as that),
        nor when the process has already ended. What the output pipe holds now is read first, and
        the memory watched once more, so a run over a limit before its result still ends as that."""
        if self.complete is None or self.wait is not None or self.kill_reason is not None:
            return False
        if self.result_total == self.result_checked:
            return False
        self.result_checked = self.result_total
        if not self.complete(bytes(self.result)):
            return False
        # At most what the pipe can hold: what was written before the result, not a flood after it.
        left = fcntl.fcntl(self.spawned.output_r, fcntl.F_GETPIPE_SZ)
        while left > 0 and self.kill_reason is None:
            got = self._read(self.spawned.output_r)
            if not got:
                break
            left -= got
        if self.kill_reason is None and self.watch is not None:
            reason = self.watch()
            if reason is not None:
                self.stop(reason)
        if self.kill_reason is not None:
            return False
        self.completed = True
        self.ended_at = time.monotonic()
        self.stopper.escalate()
        return True

    def _timeout(self) -> float | None:
        now = time.monotonic()
        if self.wait is not None:
            return max(0.0, self.ended_at + _DRAIN_SECONDS - now)
        until = self.deadline if self.kill_reason is None else self.escalate_at
        until = min(until, self.next_watch)
        return None if until == math.inf else max(0.0, until - now)

    def _enforce_clock(self) -> None:
        if self.wait is not None:
            return
        now = time.monotonic()
        if now >= self.deadline:
            self.stop(Termination.WALL_TIMEOUT)
        if now >= self.escalate_at:
            self.escalate_at = math.inf
            self.stopper.escalate()
        if self.watch is not None and now >= self.next_watch:
            self.next_watch = now + POLL_SECONDS
            reason = self.watch()
            if reason is not None:
                self.stop(reason)

    def _read(self, fd: int) -> int | None:
        """Read what is there: how many bytes, 0 at EOF, None when nothing is there now."""
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return None
        if not chunk:
            return 0
        if fd == self.spawned.output_r:
            self.log.add(chunk)
            if self.log.total > self.limits.output_bytes:
                self.stop(Termination.OUTPUT_LIMIT)
        elif fd == self.spawned.result_r:
            self.result_total += len(chunk)
            room = self.limits.result_bytes - len(self.result)
            if room > 0:
                self.result += chunk[:room]
            if self.result_total > self.limits.result_bytes:
                self.stop(Termination.RESULT_LIMIT)
        else:
            self._status(chunk)
        return len(chunk)

    def _status(self, chunk: bytes) -> None:
        self.status_raw += chunk
        while b"\n" in self.status_raw:
            line, _, rest = bytes(self.status_raw).partition(b"\n")
            self.status_raw[:] = rest
            doc = json_doc(line)
            if doc is not None:
                self.status_docs.append(doc)
                self.stopper.saw_status(doc)


def json_doc(line: bytes) -> dict[str, object] | None:
    """One line of bwrap's --json-status-fd output (one JSON object per line)."""
    try:
        doc = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


# -------------------------------------------------------------------------------------------- mapping


def from_signal(sig: int, limits: Limits, sup: Supervised) -> Termination:
    """How a command that died of ``sig`` (not sent by us) ended."""
    if sig == signal.SIGXCPU:
        return Termination.CPU_TIMEOUT
    if sig == signal.SIGXFSZ:
        return Termination.FILE_SIZE_LIMIT
    if sig == signal.SIGKILL and _cpu_seconds(sup.rusage) >= limits.effective_cpu_seconds():
        return Termination.CPU_TIMEOUT  # the hard RLIMIT_CPU
    if sig == signal.SIGKILL and sup.duration_s >= limits.wall_seconds:
        return Termination.WALL_TIMEOUT  # the PID-1 backstop fired before our own kill
    return Termination.SIGNALLED


def to_outcome(
    sup: Supervised,
    limits: Limits,
    isolation: Isolation,
    termination: Termination,
    exit_code: int | None,
    sig: int | None,
    setup_error: str = "",
) -> SandboxOutcome:
    keeper = sup.log
    return SandboxOutcome(
        termination=termination,
        exit_code=exit_code,
        signal=sig,
        isolation=isolation,
        log_head=bytes(keeper.head),
        log_tail=bytes(keeper.tail),
        log_total_bytes=keeper.total,
        result=sup.result,
        duration_s=sup.duration_s,
        cpu_s=_cpu_seconds(sup.rusage),
        peak_memory_bytes=sup.rusage.ru_maxrss * 1024 if sup.rusage is not None else 0,
        setup_error=setup_error,
    )


def _cpu_seconds(rusage: resource.struct_rusage | None) -> float:
    return float(rusage.ru_utime + rusage.ru_stime) if rusage is not None else 0.0
