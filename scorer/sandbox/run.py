"""Running one request: spawn (bwrap or the fallback), supervise, and report how it ended.

Supervision is a single ``select`` loop in the *caller's* thread, over the merged stdout+stderr pipe,
the result pipe (fd 3 inside), bwrap's JSON status pipe and a pidfd of the spawned process. One loop
means no reader threads to leak, and a full pipe can never deadlock the run: every pipe is drained
until EOF, even after a limit has killed the run (excess bytes are counted and dropped). Spawning
and waiting in the caller's thread matters too: ``--die-with-parent`` follows the parent *thread*
(bubblewrap#692), so bwrap must not be started from a short-lived helper thread.

Every process of the run gets the request's rlimits (set in the spawned child before exec, inherited
by bwrap and everything it starts). The wall clock and the output/result caps are enforced here by
SIGKILL (see _BwrapStopper), with the PID-1 ``timeout`` as a backstop should this process stall or
die, and ``--die-with-parent`` should it die. CPU and peak memory come from ``wait4``'s rusage,
which covers the real workload because every process in the chain (bwrap → timeout → command)
waits for its child.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from scorer.sandbox import uidpool
from scorer.sandbox.bwrap import GROUP, PASSWD, BwrapFds, bwrap_argv, find_bwrap, find_timeout
from scorer.sandbox.config import SandboxConfig, SandboxUnavailable
from scorer.sandbox.fallback import unsandboxed_command
from scorer.sandbox.seccomp import compiled_filter, filter_fd
from scorer.sandbox.types import (
    Isolation,
    Limits,
    SandboxOutcome,
    SandboxRequest,
    Termination,
)

log = logging.getLogger(__name__)

RESULT_FD = 3  # where the command finds its result channel
_READ_CHUNK = 64 * 1024
_DRAIN_SECONDS = 10.0  # safety net: how long pipes may stay open after the spawned process ended
_REAP_SECONDS = 10.0  # safety net: how long the sandbox's PID 1 may take to die after bwrap did
_ESCALATE_SECONDS = 2.0  # after killing the command, how long until PID 1 and bwrap are killed too
_FD_FLOOR = 10  # fds handed to the child are moved above this, clear of fd 3


def run_sandboxed(request: SandboxRequest, config: SandboxConfig) -> SandboxOutcome:
    """Run ``request.argv`` under the configured isolation and report how it ended.

    Raises SandboxUnavailable when the real sandbox is required but cannot run. Everything bound
    must be readable by the uid bwrap runs as (a pool uid when the worker is root): the caller
    must keep run directories out of 0700 trees such as /root. A bind whose source is missing or
    unreadable ends as SETUP_FAILED with bwrap's message in ``setup_error``.
    """
    if detect_isolation(config) is Isolation.UNSANDBOXED:
        return _run_unsandboxed(request)
    return _run_bwrap(request, config)


def detect_isolation(config: SandboxConfig) -> Isolation:
    """Which isolation runs will get; raises SandboxUnavailable when bwrap is required but broken.

    The probe (starting a trivial command through the complete sandbox, as a pool uid when root)
    runs once per configuration and process.
    """
    if config.mode == "unsandboxed":
        return Isolation.UNSANDBOXED
    problem = _probe_bwrap(config)
    if problem is None:
        return Isolation.BWRAP
    if config.mode == "auto" and config.allow_unsandboxed:
        log.warning("bubblewrap unusable (%s); falling back to running UNSANDBOXED", problem)
        return Isolation.UNSANDBOXED
    raise SandboxUnavailable(problem)


@functools.lru_cache(maxsize=16)
def _probe_bwrap(config: SandboxConfig) -> str | None:
    """None when bwrap can start a trivial command with our namespaces, else why not."""
    if find_bwrap(config.bwrap_path) is None:
        return f"bubblewrap not found ({config.bwrap_path!r} is not on PATH)"
    true = shutil.which("true", path="/usr/bin:/bin") or "/usr/bin/true"
    probe = SandboxRequest(argv=[true], writable_dirs=["/tmp"], limits=Limits(wall_seconds=30))
    outcome = _run_bwrap(probe, config)
    if outcome.termination is Termination.EXITED and outcome.exit_code == 0:
        return None
    reason = outcome.setup_error or outcome.log or f"{outcome.termination}, exit code {outcome.exit_code}"
    return f"bubblewrap cannot create the sandbox: {reason.strip()[:2000]}"


# ---------------------------------------------------------------------------------------------- spawn


def _high_fd(fd: int) -> int:
    """Move a parent-side fd above _FD_FLOOR (close-on-exec), so fd 3 in the child is free to take."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _FD_FLOOR)
    os.close(fd)
    return moved


def _pipe() -> tuple[int, int]:
    read, write = os.pipe()
    return _high_fd(read), _high_fd(write)


def _data_fd(text: str) -> int:
    """A pipe already holding ``text`` and closed for writing (for bwrap --ro-bind-data)."""
    read, write = _pipe()
    try:
        os.write(write, text.encode())  # a few hundred bytes: fits the pipe buffer
    finally:
        os.close(write)
    return read


def _rlimits(limits: Limits, nproc: int) -> list[tuple[int, int, int]]:
    cpu = max(1, math.ceil(limits.effective_cpu_seconds()))
    return [
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        # soft < hard: the command first gets SIGXCPU (reported as CPU_TIMEOUT), SIGKILL later
        (resource.RLIMIT_CPU, cpu, cpu + 2),
        (resource.RLIMIT_NPROC, nproc, nproc),
        (resource.RLIMIT_FSIZE, limits.writable_bytes, limits.writable_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_CORE, 0, 0),
    ]


def _nproc_limit(limits: Limits, pooled: bool) -> int:
    """RLIMIT_NPROC counts the uid's processes host-wide: a pool uid has none besides this run's;
    running as ourselves, the ones we already have must fit under the limit too."""
    if pooled:
        return limits.processes
    return len(uidpool.processes_of(os.getuid())) + limits.processes


def _child_setup(result_w: int, keep: tuple[int, ...], rlimits: list[tuple[int, int, int]]) -> Callable[[], None]:
    """Runs in the forked child before exec: fd 3 = the result pipe, only ``keep`` passed on, limits.

    Fds the worker inherited without close-on-exec (from its own parent, or leaked by a library)
    are closed here, or they would reach the sandbox. Close-on-exec fds are left alone: they vanish
    at exec, and one of them is subprocess's pipe for reporting exec errors.
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
        for which, soft, hard in rlimits:
            resource.setrlimit(which, (soft, hard))

    return setup


@dataclass
class _Spawned:
    """A started process: its pid (unreaped until the loop sees it end) and our read ends."""

    pid: int
    pidfd: int
    output_r: int
    result_r: int
    started: float

    def close(self) -> None:
        """Close our ends; call exactly once (see _FdSet on why double closes are dangerous)."""
        for fd in (self.output_r, self.result_r, self.pidfd):
            os.close(fd)


def _spawn(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    limits: Limits,
    *,
    uid: int | None,
    gid: int | None = None,
    pass_fds: tuple[int, ...] = (),
    new_session: bool = False,
) -> _Spawned:
    """Start ``argv`` with stdout+stderr on one pipe, fd 3 on another, limits applied.

    The parent's copies of the child's pipe ends are closed before returning, so EOF on a pipe means
    every process holding it is gone. Raises OSError when the process cannot be started.
    """
    output_r, output_w = _pipe()
    result_r, result_w = _pipe()
    try:
        rlimits = _rlimits(limits, _nproc_limit(limits, pooled=uid is not None))
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output_w,
            stderr=output_w,
            env=env,
            cwd=cwd,
            close_fds=False,  # all our fds are close-on-exec; the child re-marks those it passes on
            preexec_fn=_child_setup(result_w, pass_fds, rlimits),
            start_new_session=new_session,
            user=uid,
            group=gid,
            extra_groups=[] if uid is not None else None,
        )
    except BaseException:
        for fd in (output_r, result_r):
            os.close(fd)
        raise
    finally:
        os.close(output_w)
        os.close(result_w)
    started = time.monotonic()
    proc.returncode = 0  # reaped by os.wait4 below; keeps Popen from ever waiting on the pid itself
    return _Spawned(proc.pid, os.pidfd_open(proc.pid), output_r, result_r, started)


# ------------------------------------------------------------------------------------------ supervise


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
class _Supervised:
    """What the loop saw: why we killed the run (if we did), the wait status and the streams."""

    kill_reason: Termination | None
    wait_status: int
    rusage: resource.struct_rusage
    duration_s: float
    log: _LogKeeper
    result: bytes
    status_docs: list[dict[str, object]]


class _Stopper(Protocol):
    """How to end a run early: ``stop`` first, ``escalate`` if the process has not ended soon after."""

    def stop(self) -> None: ...

    def escalate(self) -> None: ...

    def saw_status(self, doc: dict[str, object]) -> None: ...


def _supervise(
    spawned: _Spawned,
    limits: Limits,
    stopper: _Stopper,
    *,
    status_r: int | None = None,
    before_reap: Callable[[], None] | None = None,
) -> _Supervised:
    """Drain the pipes, enforce wall/output/result limits through ``stopper``, reap the process.

    ``before_reap`` runs once the process has ended but is still an unreaped zombie, so its pid
    (and process group id) cannot yet be reused by anyone else.
    """
    supervisor = _Supervisor(spawned, limits, stopper, status_r)
    try:
        return supervisor.run(before_reap)
    except BaseException:
        # Interrupted (a bug, KeyboardInterrupt): the run must not outlive us.
        if supervisor.wait is None:
            stopper.escalate()
            os.wait4(spawned.pid, 0)
        raise


class _Supervisor:
    """The state of one supervision loop; see _supervise."""

    def __init__(self, spawned: _Spawned, limits: Limits, stopper: _Stopper, status_r: int | None) -> None:
        self.spawned = spawned
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
            self.escalate_at = time.monotonic() + _ESCALATE_SECONDS
            self.stopper.stop()

    def run(self, before_reap: Callable[[], None] | None) -> _Supervised:
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
                elif not self._read(fd):
                    pipes.discard(fd)
            self._enforce_clock()
        assert self.wait is not None
        return _Supervised(
            kill_reason=self.kill_reason,
            wait_status=self.wait[0],
            rusage=self.wait[1],
            duration_s=self.ended_at - spawned.started,
            log=self.log,
            result=bytes(self.result),
            status_docs=self.status_docs,
        )

    def _timeout(self) -> float | None:
        now = time.monotonic()
        if self.wait is not None:
            return max(0.0, self.ended_at + _DRAIN_SECONDS - now)
        until = self.deadline if self.kill_reason is None else self.escalate_at
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

    def _read(self, fd: int) -> bool:
        """Read what is there; False at EOF."""
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return True
        if not chunk:
            return False
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
        return True

    def _status(self, chunk: bytes) -> None:
        self.status_raw += chunk
        while b"\n" in self.status_raw:
            line, _, rest = bytes(self.status_raw).partition(b"\n")
            self.status_raw[:] = rest
            doc = _json_doc(line)
            if doc is not None:
                self.status_docs.append(doc)
                self.stopper.saw_status(doc)


def _json_doc(line: bytes) -> dict[str, object] | None:
    """One line of bwrap's --json-status-fd output (one JSON object per line)."""
    try:
        doc = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


# -------------------------------------------------------------------------------------------- mapping


def _from_signal(sig: int, limits: Limits, sup: _Supervised) -> Termination:
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


def _outcome(
    sup: _Supervised,
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
        peak_memory_bytes=sup.rusage.ru_maxrss * 1024,
        setup_error=setup_error,
    )


def _cpu_seconds(rusage: resource.struct_rusage) -> float:
    return float(rusage.ru_utime + rusage.ru_stime)


def _setup_failed(isolation: Isolation, message: str) -> SandboxOutcome:
    return SandboxOutcome(
        termination=Termination.SETUP_FAILED,
        exit_code=None,
        signal=None,
        isolation=isolation,
        log_head=b"",
        log_tail=b"",
        log_total_bytes=0,
        result=b"",
        duration_s=0.0,
        cpu_s=0.0,
        peak_memory_bytes=0,
        setup_error=message,
    )


# ---------------------------------------------------------------------------------------------- bwrap


def _run_bwrap(request: SandboxRequest, config: SandboxConfig) -> SandboxOutcome:
    bwrap = find_bwrap(config.bwrap_path)
    if bwrap is None:
        raise SandboxUnavailable(f"bubblewrap not found ({config.bwrap_path!r} is not on PATH)")
    limits = request.limits
    seccomp = compiled_filter() if config.seccomp else None
    with _FdSet() as fds_held:
        seccomp_fd = None
        if seccomp is not None and seccomp.bpf is not None:
            seccomp_fd = fds_held.add(_high_fd(filter_fd(seccomp.bpf)))
        status_r, status_w = (fds_held.add(fd) for fd in _pipe())
        fds = BwrapFds(
            seccomp=seccomp_fd,
            status=status_w,
            etc_passwd=fds_held.add(_data_fd(PASSWD)),
            etc_group=fds_held.add(_data_fd(GROUP)),
        )
        argv = bwrap_argv(bwrap, request, fds, timeout_path=find_timeout())
        passed = tuple(fd for fd in (seccomp_fd, status_w, fds.etc_passwd, fds.etc_group) if fd is not None)
        with uidpool.lease(config) as lease:
            try:
                spawned = _spawn(argv, {}, "/", limits, uid=lease.uid, gid=lease.gid, pass_fds=passed)
            except OSError as exc:
                return _setup_failed(Isolation.BWRAP, f"cannot start bubblewrap: {exc}")
            try:
                for fd in passed:  # bwrap holds its own copies now; EOF on status_r needs ours gone
                    fds_held.close(fd)
                stopper = _BwrapStopper(spawned.pid, spawned.pidfd)
                try:
                    sup = _supervise(spawned, limits, stopper, status_r=status_r)
                    stopper.await_namespace_end()
                finally:
                    stopper.close()
                if lease.uid is not None:
                    uidpool.kill_processes_of(lease.uid, "still alive after the run's sandbox ended")
            finally:
                spawned.close()
    return _bwrap_outcome(sup, limits)


class _FdSet:
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

    def __enter__(self) -> _FdSet:
        return self

    def __exit__(self, *exc: object) -> None:
        while self._open:
            os.close(self._open.pop())


class _BwrapStopper:
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
        for child in _children_of(self.pid1):
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


def _children_of(pid: int) -> list[int]:
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


def _bwrap_outcome(sup: _Supervised, limits: Limits) -> SandboxOutcome:
    if sup.kill_reason is not None:
        return _outcome(sup, limits, Isolation.BWRAP, sup.kill_reason, None, signal.SIGKILL)
    if os.WIFSIGNALED(sup.wait_status):  # bwrap itself killed by someone else
        sig = os.WTERMSIG(sup.wait_status)
        return _outcome(sup, limits, Isolation.BWRAP, Termination.SIGNALLED, None, sig)
    code = os.WEXITSTATUS(sup.wait_status)
    if not any("exit-code" in doc for doc in sup.status_docs):
        # bwrap reports exit-code only once the command was executed: it failed during setup.
        message = (bytes(sup.log.head) + bytes(sup.log.tail)).decode("utf-8", "replace").strip()
        return _outcome(
            sup,
            limits,
            Isolation.BWRAP,
            Termination.SETUP_FAILED,
            code,
            None,
            setup_error=message or f"bubblewrap exited with status {code} before starting the command",
        )
    # PID 1 (timeout) and bwrap pass a signal death on as 128+N.
    if 128 < code <= 128 + 64:
        died_of = code - 128
        return _outcome(sup, limits, Isolation.BWRAP, _from_signal(died_of, limits, sup), None, died_of)
    return _outcome(sup, limits, Isolation.BWRAP, Termination.EXITED, code, None)


# ----------------------------------------------------------------------------------------- unsandboxed


def _run_unsandboxed(request: SandboxRequest) -> SandboxOutcome:
    limits = request.limits
    command = unsandboxed_command(request)
    try:
        try:
            spawned = _spawn(command.argv, command.env, command.cwd, limits, uid=None, new_session=True)
        except OSError as exc:
            return _setup_failed(Isolation.UNSANDBOXED, f"cannot start {command.argv[0]!r}: {exc}")
        try:
            stopper = _GroupStopper(spawned.pid)
            # Kill what the command left in its process group while the leader's zombie pins the id.
            sup = _supervise(spawned, limits, stopper, before_reap=stopper.stop)
        finally:
            spawned.close()
    finally:
        command.cleanup()
    if sup.kill_reason is not None:
        return _outcome(sup, limits, Isolation.UNSANDBOXED, sup.kill_reason, None, signal.SIGKILL)
    if os.WIFSIGNALED(sup.wait_status):
        sig = os.WTERMSIG(sup.wait_status)
        return _outcome(sup, limits, Isolation.UNSANDBOXED, _from_signal(sig, limits, sup), None, sig)
    code = os.WEXITSTATUS(sup.wait_status)
    return _outcome(sup, limits, Isolation.UNSANDBOXED, Termination.EXITED, code, None)


class _GroupStopper:
    """Ends an unsandboxed run by SIGKILLing its process group (its own session, from the spawn)."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)

    escalate = stop

    def saw_status(self, doc: dict[str, object]) -> None:
        pass
