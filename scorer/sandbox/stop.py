"""Ending a run's process tree early, when supervise finds a limit exceeded.

The wall clock and the output/result caps are enforced by SIGKILL: a bwrap run is ended from the
inside out (BwrapStopper), so the rusage that reaches us still covers the workload; an unsandboxed
run by killing its process group (GroupStopper). Both are supervise's stoppers: ``stop`` first,
``escalate`` if the run has not ended ESCALATE_SECONDS later.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal

_REAP_SECONDS = 10.0  # safety net: how long the sandbox's PID 1 may take to die after bwrap did
ESCALATE_SECONDS = 2.0  # after killing the command, how long until PID 1 and bwrap are killed too


# ---------------------------------------------------------------------------------------------- bwrap


class BwrapStopper:
    """Ends a bwrap run from the inside out: the command first, then the sandbox's PID 1, then bwrap.

    SIGKILLing the command (PID 1's children) lets ``timeout`` reap it and exit, so the rusage that
    reaches us still covers the workload; the kernel then kills whatever else is in the pid
    namespace as PID 1 exits. (Processes the kernel kills while tearing a namespace down add nothing
    to anyone's rusage, which is why we do not simply kill PID 1.) If the run has not ended shortly
    after, PID 1 and bwrap are killed outright.

    Processes are addressed through pidfds, each checked to be the child of the expected parent
    after opening, so a recycled pid can never be hit. PID 1 comes from the child-pid bwrap reports.
    """

    def __init__(self, bwrap_pid: int, bwrap_pidfd: int) -> None:
        self.bwrap_pid = bwrap_pid
        self.bwrap_pidfd = bwrap_pidfd
        self.pid1: int | None = None
        self.pid1_fd: int | None = None

    def saw_status(self, doc: dict[str, object]) -> None:
        child = doc.get("child-pid")
        if self.pid1_fd is None and isinstance(child, int):
            self.pid1_fd = _pidfd_of_child(child, self.bwrap_pid)
            self.pid1 = child if self.pid1_fd is not None else None

    def stop(self) -> None:
        if self.pid1 is None:
            self.escalate()
            return
        killed = 0
        for child in children_of(self.pid1):
            fd = _pidfd_of_child(child, self.pid1)
            if fd is not None:
                _pidfd_kill(fd)
                os.close(fd)
                killed += 1
        if not killed and self.pid1_fd is not None:  # still in bwrap's setup, or the command is gone
            _pidfd_kill(self.pid1_fd)

    def escalate(self) -> None:
        if self.pid1_fd is not None:
            _pidfd_kill(self.pid1_fd)
        _pidfd_kill(self.bwrap_pidfd)

    def await_namespace_end(self) -> None:
        """Wait (bounded) until PID 1 is gone: then the kernel has killed and reaped every process of
        the namespace. Only takes time when bwrap itself was killed and PID 1 dies of its
        parent-death signal on its own schedule."""
        if self.pid1_fd is not None:
            select.select([self.pid1_fd], [], [], _REAP_SECONDS)

    def close(self) -> None:
        if self.pid1_fd is not None:
            os.close(self.pid1_fd)
            self.pid1_fd = None


def _pidfd_of_child(pid: int, parent: int) -> int | None:
    """A pidfd for ``pid`` if it is (still) a child of ``parent``, else None."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    if _parent_of(pid) == parent:
        return fd
    os.close(fd)
    return None


def _pidfd_kill(fd: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(fd, signal.SIGKILL)


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/PID/task/*/children)."""
    children: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as listing:
                children += [int(child) for child in listing.read().split()]
    except OSError:
        pass
    return children


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1])


# ----------------------------------------------------------------------------------------- unsandboxed


class GroupStopper:
    """Ends an unsandboxed run by SIGKILLing its process group (its own session, from the spawn)."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)

    escalate = stop

    def saw_status(self, doc: dict[str, object]) -> None:
        pass
