"""Starting one run's process: its pipes, the fds it is handed, and the rlimits it runs under.

Every process of the run gets the request's rlimits (set in the spawned child before exec, inherited
by bwrap and everything it starts). stdout and stderr share one pipe, the result channel is another
(fd 3 inside); fds meant for the child are moved above _FD_FLOOR, clear of fd 3, and nothing else
the worker holds reaches the child.

Spawning (and waiting, see supervise) happens in the caller's thread: ``--die-with-parent`` follows
the parent *thread* (bubblewrap#692), so bwrap must not be started from a short-lived helper thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import resource
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from scorer.sandbox import uidpool
from scorer.sandbox.types import Limits

RESULT_FD = 3  # where the command finds its result channel
_FD_FLOOR = 10  # fds handed to the child are moved above this, clear of fd 3


def high_fd(fd: int) -> int:
    """Move a parent-side fd above _FD_FLOOR (close-on-exec), so fd 3 in the child is free to take."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _FD_FLOOR)
    os.close(fd)
    return moved


def pipe() -> tuple[int, int]:
    read, write = os.pipe()
    return high_fd(read), high_fd(write)


def data_fd(text: str) -> int:
    """A pipe already holding ``text`` and closed for writing (for bwrap --ro-bind-data)."""
    read, write = pipe()
    try:
        os.write(write, text.encode())  # a few hundred bytes: fits the pipe buffer
    finally:
        os.close(write)
    return read


def memory_file(data: bytes, name: str) -> int:
    """A memfd holding ``data``, positioned at its start, above _FD_FLOOR (close-on-exec): for bwrap
    to read to its end (--ro-bind-data, --seccomp), whatever the size. Made here, in the parent: the
    sandbox's filter refuses memfds to what runs inside."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return high_fd(fd)


# Over the pids cgroup's limit, RLIMIT_NPROC is only a backstop: the kernel checks it first, and at
# the same figure it would take every refusal (and hide that the run's own limit holds).
NPROC_MARGIN = 8


# POSIX message queues are kernel memory no accounting sees; RLIMIT_MSGQUEUE bounds them per uid.
# This is the kernel's default, set explicitly so that a worker started with a higher one passes
# nothing on (never above the hard limit we have: raising it needs a privilege root may lack).
MSGQUEUE_BYTES = 800 * 1024


def _rlimits(limits: Limits, nproc: int) -> list[tuple[int, int, int]]:
    cpu = max(1, math.ceil(limits.effective_cpu_seconds()))
    msgqueue = MSGQUEUE_BYTES
    hard = resource.getrlimit(resource.RLIMIT_MSGQUEUE)[1]
    if hard != resource.RLIM_INFINITY:
        msgqueue = min(msgqueue, hard)
    return [
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        # soft < hard: the command first gets SIGXCPU (reported as CPU_TIMEOUT), SIGKILL later
        (resource.RLIMIT_CPU, cpu, cpu + 2),
        (resource.RLIMIT_NPROC, nproc, nproc),
        (resource.RLIMIT_FSIZE, limits.writable_bytes, limits.writable_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_MSGQUEUE, msgqueue, msgqueue),
    ]


def _nproc_limit(limits: Limits, pooled: bool, in_pids_cgroup: bool) -> int:
    """RLIMIT_NPROC counts the uid's processes host-wide: a pool uid has none besides this run's;
    running as ourselves, the ones we already have must fit under the limit too."""
    limit = limits.processes + (NPROC_MARGIN if in_pids_cgroup else 0)
    if pooled:
        return limit
    return len(uidpool.processes_of(os.getuid())) + limit


def _child_setup(
    result_w: int,
    keep: tuple[int, ...],
    rlimits: list[tuple[int, int, int]],
    join: tuple[str, ...],
    uid: int | None,
    gid: int | None,
) -> Callable[[], None]:
    """Runs in the forked child before exec: fd 3 = the result pipe, only ``keep`` passed on, the
    run's cgroups joined, the uid dropped, limits.

    Fds the worker inherited without close-on-exec (from its own parent, or leaked by a library)
    are closed here, or they would reach the sandbox. Close-on-exec fds are left alone: they vanish
    at exec, and one of them is subprocess's pipe for reporting exec errors. The cgroups are joined
    while still the worker's uid (the group files are root's) and before exec, so nothing of the
    run ever executes outside them; that is also why the uid is dropped here and not by Popen,
    which would do it before this function runs.
    """
    wanted = {0, 1, 2, RESULT_FD, *keep}

    def setup() -> None:
        os.dup2(result_w, RESULT_FD)  # inheritable
        for fd in keep:
            os.set_inheritable(fd, True)
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            with contextlib.suppress(OSError):  # includes listdir's own, already closed, fd
                if fd not in wanted and os.get_inheritable(fd):
                    os.close(fd)
        me = str(os.getpid())
        for procs in join:
            with open(procs, "w", encoding="ascii") as group:
                group.write(me)
        if uid is not None:
            os.setgroups([])
            if gid is not None:
                os.setregid(gid, gid)
            os.setreuid(uid, uid)
        for which, soft, hard in rlimits:
            resource.setrlimit(which, (soft, hard))

    return setup


@dataclass
class Spawned:
    """A started process: its pid (unreaped until the loop sees it end) and our read ends."""

    pid: int
    pidfd: int
    output_r: int
    result_r: int
    started: float

    def close(self) -> None:
        """Close our ends; call exactly once (see FdSet on why double closes are dangerous)."""
        for fd in (self.output_r, self.result_r, self.pidfd):
            os.close(fd)


def spawn(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    limits: Limits,
    *,
    uid: int | None,
    gid: int | None = None,
    pass_fds: tuple[int, ...] = (),
    new_session: bool = False,
    join: tuple[str, ...] = (),
    stdin: int | None = None,
) -> Spawned:
    """Start ``argv`` with stdout+stderr on one pipe, fd 3 on another, limits applied.

    ``join``: cgroup.procs files the child writes itself to before exec (its run's groups; a
    pids limit among them makes RLIMIT_NPROC a looser backstop, see NPROC_MARGIN). The parent's
    copies of the child's pipe ends are closed before returning, so EOF on a pipe means
    every process holding it is gone. ``stdin``: an fd the child reads as its stdin (the caller
    closes its copy), else /dev/null. Raises OSError when the process cannot be started.
    """
    output_r, output_w = pipe()
    result_r, result_w = pipe()
    try:
        rlimits = _rlimits(limits, _nproc_limit(limits, pooled=uid is not None, in_pids_cgroup=bool(join)))
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=output_w,
            stderr=output_w,
            env=env,
            cwd=cwd,
            close_fds=False,  # all our fds are close-on-exec; the child re-marks those it passes on
            preexec_fn=_child_setup(result_w, pass_fds, rlimits, join, uid, gid),
            start_new_session=new_session,
        )
    except BaseException:
        for fd in (output_r, result_r):
            os.close(fd)
        raise
    finally:
        os.close(output_w)
        os.close(result_w)
    started = time.monotonic()
    proc.returncode = 0  # reaped by os.wait4 in supervise; keeps Popen from ever waiting on the pid itself
    return Spawned(proc.pid, os.pidfd_open(proc.pid), output_r, result_r, started)


class FdSet:
    """Fds this run opened, each closed exactly once.

    Closing an fd twice is not harmless here: between the two closes another thread of the worker
    may have been handed the same number, and the second close would take it away.
    """

    def __init__(self) -> None:
        self._open: set[int] = set()

    def add(self, fd: int) -> int:
        self._open.add(fd)
        return fd

    def close(self, fd: int) -> None:
        self._open.remove(fd)
        os.close(fd)

    def __enter__(self) -> FdSet:
        return self

    def __exit__(self, *exc: object) -> None:
        while self._open:
            os.close(self._open.pop())
