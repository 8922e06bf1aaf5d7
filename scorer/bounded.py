"""Work on trainee input outside the sandbox, under hard bounds: a forked child with limits.

Before any sandbox starts, the worker reads what a trainee sent: the zip's directory and contents
(scorer.intake), a notebook's JSON (scorer.notebook), the entry's source compiled to check it
(scorer.static_check). All of it is bounded by size where it can be, but the cost of parsing is not
linear in the size: 4 KB of zip holding ``"x=[1,2,3]\\n" * 200_000`` made the check use 1.2 GB and
10 s, and the scoring worker compiles accepted zips again. So that work runs in a child forked for
it (:func:`run_bounded`), which may add at most ``memory_bytes`` to the worker's own address space
(RLIMIT_AS) and use at most ``cpu_seconds`` of CPU and ``wall_seconds`` of time. What it returns, or
raises, comes back pickled over a pipe. A child that goes over is killed, and the submission refused
with CHECK_LIMIT: its input is what made the work that large.

A fork, not a fresh interpreter: the child starts with everything imported, so the bound costs a
few milliseconds per check (a new interpreter importing the scorer would cost tens). The child runs
the given function only, then leaves with ``os._exit``; it must not log or start threads (a lock some
other thread of the worker held at the fork stays held in the child).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import resource
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from scorer.errors import ErrorCode, ScoringError, human_bytes

T = TypeVar("T")

MiB = 1024**2
_READ_CHUNK = 64 * 1024
_REAP_SECONDS = 10.0  # safety net: how long a SIGKILLed child may take to be reaped


@dataclass(frozen=True)
class StaticLimits:
    """Bounds on reading one submission before it runs (see the module docstring).

    - ``memory_bytes`` (512 MiB): what the check may add to the worker's address space. The largest
      entry source accepted (static_check.MAX_SOURCE_BYTES) compiles in under 150 MiB even when
      written to be expensive; reading a notebook with large outputs takes a few times its size.
    - ``cpu_seconds`` (10) and ``wall_seconds`` (20): the same worst case compiles in about 2.5 s of
      CPU on a loaded machine, and extraction writes at most the intake's total. The pre-flight's
      Celery time limit leaves this much room above the smoke run's own limit.
    """

    memory_bytes: int = 512 * MiB
    cpu_seconds: int = 10
    wall_seconds: float = 20.0


# In a bounded child: (its address space when it started, the bound). None in any other process.
_budget: tuple[int, int] | None = None


def memory_exhausted() -> bool:
    """Whether a MemoryError just raised here came from the bound: this is a bounded child and its
    address space grew by half the bound or more. CPython also raises MemoryError when its parser
    meets deep nesting (``-`` 10,000 times), with a few KiB in use; that one is a fault of the code,
    not of its size."""
    if _budget is None:
        return False
    start, bound = _budget
    return _address_space("VmPeak") - start >= bound // 2


class _Over(Exception):
    """The child went over a bound (the parent's own observation); ``limit`` names which."""

    def __init__(self, limit: str) -> None:
        super().__init__(limit)
        self.limit = limit


def run_bounded(function: Callable[..., T], *args: Any, limits: StaticLimits) -> T:
    """``function(*args)`` in a child under ``limits``: its value, or the exception it raised.

    Raises ScoringError(CHECK_LIMIT) when the child ran out of memory or time, and RuntimeError when
    it died without an answer for another reason (a crash is no fault of the submission's).
    """
    try:
        outcome = _fork_and_wait(function, args, limits)
    except _Over as over:
        raise ScoringError(ErrorCode.CHECK_LIMIT, {"limit": over.limit}) from None
    kind, value = outcome
    if kind == "memory":
        raise ScoringError(ErrorCode.CHECK_LIMIT, {"limit": human_bytes(limits.memory_bytes)})
    if kind == "raised":
        raise value
    result: T = value
    return result


def _fork_and_wait(function: Callable[..., Any], args: tuple[Any, ...], limits: StaticLimits) -> tuple[str, Any]:
    read, write = os.pipe()
    try:
        pid = os.fork()
    except BaseException:
        os.close(read)
        os.close(write)
        raise
    if pid == 0:  # the child: never returns
        os.close(read)
        _child(function, args, limits, write)
    os.close(write)
    pidfd = os.pidfd_open(pid)
    try:
        data, status = _collect(pid, pidfd, read, limits)
    finally:
        os.close(pidfd)
        os.close(read)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
        raise _Over(f"{limits.cpu_seconds} s")  # the CPU limit (SIGXCPU, then SIGKILL at the hard one)
    try:
        outcome: tuple[str, Any] = pickle.loads(data)  # noqa: S301 - our own child's answer
    except Exception as exc:
        raise RuntimeError(f"the bounded check died without an answer (wait status {status})") from exc
    return outcome


def _collect(pid: int, pidfd: int, read: int, limits: StaticLimits) -> tuple[bytes, int]:
    """Read the child's answer and reap it; kill it at the wall limit (raises _Over then)."""
    deadline = time.monotonic() + limits.wall_seconds
    chunks: list[bytes] = []
    reaped = False
    try:
        open_pipe = True
        while open_pipe:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Over(f"{limits.wall_seconds:g} s")
            ready, _, _ = select.select([read], [], [], remaining)
            if ready:
                chunk = os.read(read, _READ_CHUNK)
                chunks.append(chunk)
                open_pipe = bool(chunk)
        # EOF: the child has answered or died; it exits right after writing.
        if not select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise _Over(f"{limits.wall_seconds:g} s")
        _, status = os.waitpid(pid, 0)
        reaped = True
        return b"".join(chunks), status
    finally:
        if not reaped:  # over the wall limit, or interrupted (a task's time limit): it must not stay
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            select.select([pidfd], [], [], _REAP_SECONDS)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _child(function: Callable[..., Any], args: tuple[Any, ...], limits: StaticLimits, write: int) -> None:
    code = 1
    try:
        out_of_memory = pickle.dumps(("memory", None))  # made now: there may be no room later
        own = _address_space()
        global _budget
        _budget = (own, limits.memory_bytes)
        resource.setrlimit(resource.RLIMIT_AS, (own + limits.memory_bytes, own + limits.memory_bytes))
        # A forked child's CPU time starts at zero; SIGXCPU first (reported), SIGKILL a second later.
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        try:
            outcome: tuple[str, Any] = ("returned", function(*args))
        except MemoryError:
            outcome = ("memory", None)
        except BaseException as exc:  # the parent decides what it means; the traceback's frames stay here
            outcome = ("raised", exc.with_traceback(None))
        try:
            data = pickle.dumps(outcome)
        except MemoryError:
            data = out_of_memory
        except Exception as exc:  # an exception that does not pickle: its text is enough
            data = pickle.dumps(("raised", RuntimeError(f"{type(exc).__name__}: {outcome[1]!r}"[:2000])))
        view = memoryview(data)
        while view:
            view = view[os.write(write, view) :]
        code = 0
    finally:
        os._exit(code)


def _address_space(field: str = "VmSize") -> int:
    """This process's virtual memory size (VmSize: what RLIMIT_AS counts; VmPeak: its high-water mark)."""
    with open("/proc/self/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")
