"""Running one request: spawn (bwrap or the fallback), supervise, and report how it ended.

The parts live in their own modules: spawn (starting the process, its fds and rlimits), supervise
(the select loop that drains the pipes, enforces the wall clock and the output/result caps, and
reaps), stop (ending the process tree early) and cgroup (memory and processes of the run as a whole:
a control group per run, or a polling supervisor). All run here, in the *caller's* thread:
``--die-with-parent`` follows the parent *thread* (bubblewrap#692), so bwrap must not be started
from a short-lived helper thread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import shutil
import signal
import subprocess
import time

from scorer.sandbox import uidpool
from scorer.sandbox.bwrap import GROUP, PASSWD, BwrapFds, bwrap_argv, find_bwrap, find_timeout
from scorer.sandbox.cgroup import Accounted, CgroupUnusable, Layout, RunLimiter, detect_layout
from scorer.sandbox.config import SandboxConfig, SandboxUnavailable
from scorer.sandbox.fallback import unsandboxed_command
from scorer.sandbox.seccomp import compiled_filter
from scorer.sandbox.spawn import FdSet, Spawned, data_fd, memory_file, pipe, spawn
from scorer.sandbox.stop import BwrapStopper, GroupStopper
from scorer.sandbox.supervise import Supervised, from_signal, json_doc, supervise, to_outcome
from scorer.sandbox.types import (
    STDIN_MAX,
    Isolation,
    Limits,
    SandboxOutcome,
    SandboxRequest,
    Termination,
)

log = logging.getLogger(__name__)


def run_sandboxed(request: SandboxRequest, config: SandboxConfig) -> SandboxOutcome:
    """Run ``request.argv`` under the configured isolation and report how it ended.

    Raises SandboxUnavailable when the real sandbox is required but cannot run. Everything bound
    must be readable by the uid bwrap runs as (a pool uid when the worker is root): the caller
    must keep run directories out of 0700 trees such as /root. A bind whose source is missing or
    unreadable ends as SETUP_FAILED with bwrap's message in ``setup_error``.
    """
    if config.mode == "unsandboxed":
        return _run_unsandboxed(request, config)
    if config in _WORKING:
        return _run_bwrap(request, config)
    if find_bwrap(config.bwrap_path) is not None:
        # Not known to work yet in this process: the run itself is the probe (a separate probe
        # run would cost a second sandbox start, most of the command line's check). Only a run
        # that failed during bwrap's setup needs the probe, to tell a broken bwrap from this
        # request's own problem (an unreadable bind).
        outcome = _run_bwrap(request, config)
        if outcome.termination is not Termination.SETUP_FAILED:
            _WORKING.add(config)
            return outcome
        if detect_isolation(config) is Isolation.BWRAP:
            return outcome
    if detect_isolation(config) is Isolation.UNSANDBOXED:
        return _run_unsandboxed(request, config)
    return _run_bwrap(request, config)


# Configurations whose bwrap has started a command in this process (no probe needed for them).
_WORKING: set[SandboxConfig] = set()


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


def detect_accounting(config: SandboxConfig) -> Layout:
    """How runs' memory and processes are limited as a whole on this host (probed once per process,
    sweeping groups left by dead workers). Raises SandboxUnavailable when a forced cgroup mode
    cannot work here."""
    try:
        return detect_layout(config.cgroup_mode, config.cgroup_parent)
    except CgroupUnusable as exc:
        raise SandboxUnavailable(f"cgroup mode {config.cgroup_mode!r} is unusable: {exc}") from exc


def _accounted(outcome: SandboxOutcome, accounted: Accounted) -> SandboxOutcome:
    """Fold what the run's group (or the supervisor) saw into the outcome.

    A run that went over its memory as a whole ends as MEMORY_LIMIT, whatever its processes did
    next: the kernel's OOM killer may have taken only one of them, and the rest may still exit 0.
    """
    outcome.accounting = accounted.accounting.value
    outcome.pids_refused = accounted.pids_refused
    if accounted.memory_peak_bytes:
        outcome.peak_memory_bytes = accounted.memory_peak_bytes
    if accounted.memory_limit_hit:
        outcome.termination = Termination.MEMORY_LIMIT
        outcome.exit_code = None
    return outcome


def _limiter(config: SandboxConfig, limits: Limits) -> RunLimiter:
    try:
        return RunLimiter(detect_accounting(config), limits)
    except OSError as exc:
        raise SandboxUnavailable(f"cannot create the run's cgroup: {exc}") from exc


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
    started = start_sandboxed(request, config)
    if isinstance(started, SandboxOutcome):
        return started
    return started.hand_over()


def start_sandboxed(request: SandboxRequest, config: SandboxConfig) -> StartedRun | SandboxOutcome:
    """Start ``request`` in bubblewrap without handing it over yet: see StartedRun.

    A SETUP_FAILED outcome when bwrap could not even be started. Must be called from the thread
    that will call ``hand_over`` or ``discard`` (``--die-with-parent`` follows the parent thread).
    """
    bwrap = find_bwrap(config.bwrap_path)
    if bwrap is None:
        raise SandboxUnavailable(f"bubblewrap not found ({config.bwrap_path!r} is not on PATH)")
    limits = request.limits
    seccomp = compiled_filter() if config.seccomp else None
    stack = contextlib.ExitStack()
    try:
        fds_held = stack.enter_context(FdSet())
        seccomp_fd = None
        if seccomp is not None and seccomp.bpf is not None:
            seccomp_fd = fds_held.add(memory_file(seccomp.bpf, "katakana-seccomp"))
        status_r, status_w = (fds_held.add(fd) for fd in pipe())
        stdin_r, stdin_w = (fds_held.add(fd) for fd in pipe())
        fds = BwrapFds(
            seccomp=seccomp_fd,
            status=status_w,
            etc_passwd=fds_held.add(data_fd(PASSWD)),
            etc_group=fds_held.add(data_fd(GROUP)),
            files=tuple(fds_held.add(memory_file(f.data, "katakana-file")) for f in request.files),
        )
        argv = bwrap_argv(bwrap, request, fds, timeout_path=find_timeout())
        ours = tuple(fd for fd in (seccomp_fd, status_w, fds.etc_passwd, fds.etc_group, *fds.files) if fd is not None)
        lease = stack.enter_context(uidpool.lease(config))
        limiter = _limiter(config, limits)
        try:
            spawned = spawn(
                argv,
                {},
                "/",
                limits,
                uid=lease.uid,
                gid=lease.gid,
                pass_fds=ours + request.pass_fds,
                join=limiter.procs_files(),
                stdin=stdin_r,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            limiter.abandon()
            stack.close()
            return _setup_failed(Isolation.BWRAP, f"cannot start bubblewrap: {exc}")
        try:
            for fd in (*ours, stdin_r):  # bwrap holds its own copies now; EOF on status_r needs ours gone
                fds_held.close(fd)
            stopper = BwrapStopper(spawned.pid, spawned.pidfd)
            # The sandbox's tmpfs mounts are found through its PID 1's root (see usage.RunMounts).
            writable = [*request.writable_dirs, "/dev/shm"]
            limiter.start(spawned.pid, pid1=lambda: stopper.pid1, writable=writable, uid=lease.uid)
        except BaseException:  # interrupted (a task's time limit): the sandbox must not outlive this
            signal.pidfd_send_signal(spawned.pidfd, signal.SIGKILL)
            os.waitpid(spawned.pid, 0)
            spawned.close()
            limiter.finish()
            raise
        return StartedRun(request, spawned, stopper, limiter, lease.uid, fds_held, status_r, stdin_w, stack)
    except BaseException:
        stack.close()
        raise


class StartedRun:
    """A sandbox already up, its command started, waiting for ``hand_over`` (or ``discard``).

    Used to pre-warm: the command can do its slow start-up (interpreter, imports) before the job is
    known, and block reading its stdin; ``hand_over`` waits until the command is ready (within
    ``request.startup_seconds`` of its start), writes ``request.stdin`` (or the given bytes), closes
    it, and supervises from then on: the wall clock starts at the hand-over, and the PID-1 backstop
    covers ``request.idle_seconds`` and ``request.startup_seconds`` of waiting on top. The cgroup and
    the pool uid are the run's from the start, so the warm-up counts to the run's memory and processes.
    Single use: after ``hand_over`` (or ``release`` after a ``sweep_later`` one) or ``discard``
    everything of the run is gone.
    """

    def __init__(
        self,
        request: SandboxRequest,
        spawned: Spawned,
        stopper: BwrapStopper,
        limiter: RunLimiter,
        uid: int | None,
        fds_held: FdSet,
        status_r: int,
        stdin_w: int,
        stack: contextlib.ExitStack,
    ) -> None:
        self.request = request
        self.spawned = spawned
        self.stopper = stopper
        self.limiter = limiter
        self.uid = uid
        self.fds_held = fds_held
        self.status_r = status_r
        self.stdin_w = stdin_w
        self.stack = stack
        self.created = spawned.started
        self.done = False
        self.released = False
        self.ended = False  # bwrap reaped, its namespace gone, the group removed (see _end)
        self.unreaped = False  # bwrap not reaped yet (a COMPLETED run's, killed; or to kill: see _end)

    def alive(self) -> bool:
        """Whether bwrap is still running (a warm sandbox that died must not be handed a job)."""
        if self.done:
            return False
        readable, _, _ = select.select([self.spawned.pidfd], [], [], 0)
        return not readable

    def ready(self, timeout: float) -> bool:
        """Whether the command has written to its result channel (without consuming it)."""
        if self.done:
            return False
        readable, _, _ = select.select([self.spawned.result_r], [], [], timeout)
        return bool(readable)

    def hand_over(self, stdin: bytes | None = None, *, sweep_later: bool = False) -> SandboxOutcome:
        """Hand the job over and supervise the run to its end.

        ``sweep_later``: the rest of the clean-up waits for ``release``, off the caller's critical
        path: a COMPLETED run's reaping (its processes were killed as it ended; their exit can take
        long and no longer changes the outcome), the wait until its PID 1 is gone (then the kernel
        has ended every process of its pid namespace), the removal of its cgroup (killing anything
        left in it), and the sweep of the pool uid for anything that got out anyway. The uid and
        the group stay the run's until then, so no other run can be given them.
        """
        if self.done:
            raise RuntimeError("this sandbox already served its run")
        data = self.request.stdin if stdin is None else stdin
        if len(data) > STDIN_MAX:
            raise ValueError(f"stdin of {len(data)} bytes: at most {STDIN_MAX}")
        if not self._started_up():
            self.discard()
            return _not_ready(Isolation.BWRAP, self.request.startup_seconds)
        self.done = True
        limits = self.request.limits
        finished = False
        self.unreaped = True
        try:
            with contextlib.suppress(BrokenPipeError):  # it died waiting: supervise tells how
                os.write(self.stdin_w, data)
            self.fds_held.close(self.stdin_w)
            self.spawned.started = time.monotonic()  # the wall clock runs from the hand-over
            try:
                sup = supervise(
                    self.spawned,
                    limits,
                    self.stopper,
                    status_r=self.status_r,
                    watch=self.limiter.watch,
                    complete=self.request.result_complete,
                )
            except BaseException:
                self.unreaped = False  # supervise killed and reaped it
                raise
            self.unreaped = sup.completed
            # A COMPLETED run's accounting is read as it ended: what its processes do next is not the run's.
            accounted = self.limiter.seen() if sup.completed else self._end()
            finished = True
        finally:
            if not (finished and sweep_later):
                self.release()
        return _accounted(_bwrap_outcome(sup, limits), accounted)

    def _end(self) -> Accounted:
        """After supervision: reap bwrap if that is still to do (it was killed), wait (bounded)
        until its PID 1 is gone, and remove the run's group (killing what is left in it). Once."""
        self.ended = True
        try:
            try:
                if self.unreaped:
                    self.unreaped = False
                    self.stopper.escalate()  # killed already, unless the hand-over failed
                    os.waitpid(self.spawned.pid, 0)
                self.stopper.await_namespace_end()
            finally:
                self.stopper.close()
                accounted = self.limiter.finish()
        finally:
            self.spawned.close()
        return accounted

    def _started_up(self) -> bool:
        """Whether the command got ready (or ended: supervise then tells how) within its start-up
        bound, counted from the sandbox's start; at once without a bound."""
        startup = self.request.startup_seconds
        if startup <= 0:
            return True
        return self.ready(max(0.0, self.created + startup - time.monotonic()))

    def release(self) -> None:
        """After the run: finish its end if that waited (see hand_over), sweep the pool uid and give
        it back (idempotent)."""
        if self.released:
            return
        self.released = True
        try:
            try:
                if self.done and not self.ended:
                    self._end()
            finally:
                self._kill_leftovers()
        finally:
            self.stack.close()

    def discard(self) -> None:
        """End it unused (stale, or the next job needs another kind): kill, reap, clean up."""
        if self.done:
            self.release()
            return
        self.done = True
        self.unreaped = True  # release kills and reaps it
        try:
            self._learn_pid1()
        finally:
            self.release()

    def _learn_pid1(self) -> None:
        """Read what bwrap reported so far (its child-pid line), so that PID 1 is killed too."""
        raw = b""
        while select.select([self.status_r], [], [], 0)[0]:
            chunk = os.read(self.status_r, 4096)
            if not chunk:
                break
            raw += chunk
        for line in raw.splitlines():
            doc = json_doc(line)
            if doc is not None:
                self.stopper.saw_status(doc)

    def _kill_leftovers(self) -> None:
        if self.uid is not None:
            uidpool.kill_processes_of(self.uid, "still alive after the run's sandbox ended")


def _not_ready(isolation: Isolation, startup_seconds: float) -> SandboxOutcome:
    return _setup_failed(isolation, f"the command was not ready within {startup_seconds:.0f} s of its start")


def _bwrap_outcome(sup: Supervised, limits: Limits) -> SandboxOutcome:
    if sup.completed:
        return to_outcome(sup, limits, Isolation.BWRAP, Termination.COMPLETED, None, None)
    if sup.kill_reason is not None:
        return to_outcome(sup, limits, Isolation.BWRAP, sup.kill_reason, None, signal.SIGKILL)
    if os.WIFSIGNALED(sup.wait_status):  # bwrap itself killed by someone else
        sig = os.WTERMSIG(sup.wait_status)
        return to_outcome(sup, limits, Isolation.BWRAP, Termination.SIGNALLED, None, sig)
    code = os.WEXITSTATUS(sup.wait_status)
    if not any("exit-code" in doc for doc in sup.status_docs):
        # bwrap reports exit-code only once the command was executed: it failed during setup.
        message = (bytes(sup.log.head) + bytes(sup.log.tail)).decode("utf-8", "replace").strip()
        return to_outcome(
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
        return to_outcome(sup, limits, Isolation.BWRAP, from_signal(died_of, limits, sup), None, died_of)
    return to_outcome(sup, limits, Isolation.BWRAP, Termination.EXITED, code, None)


# ----------------------------------------------------------------------------------------- unsandboxed


def _run_unsandboxed(request: SandboxRequest, config: SandboxConfig) -> SandboxOutcome:
    limits = request.limits
    command = unsandboxed_command(request)
    try:
        limiter = _limiter(config, limits)
        stdin_r, stdin_w = pipe()
        try:
            spawned = spawn(
                command.argv,
                command.env,
                command.cwd,
                limits,
                uid=None,
                new_session=True,
                join=limiter.procs_files(),
                pass_fds=request.pass_fds,
                stdin=stdin_r,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            limiter.abandon()
            os.close(stdin_w)
            return _setup_failed(Isolation.UNSANDBOXED, f"cannot start {command.argv[0]!r}: {exc}")
        finally:
            os.close(stdin_r)
        stopper = GroupStopper(spawned.pid)
        if request.startup_seconds > 0:  # as StartedRun.hand_over: the clock starts once it is ready
            ready, _, _ = select.select([spawned.result_r], [], [], request.startup_seconds)
            if not ready:
                stopper.stop()
                os.waitpid(spawned.pid, 0)
                spawned.close()
                os.close(stdin_w)
                limiter.finish()
                return _not_ready(Isolation.UNSANDBOXED, request.startup_seconds)
            spawned.started = time.monotonic()
        with contextlib.suppress(BrokenPipeError):
            os.write(stdin_w, request.stdin)
        os.close(stdin_w)
        try:
            limiter.start(spawned.pid)  # its writable dirs are host folders, not tmpfs
            # Kill what the command left in its process group while the leader's zombie pins the id.
            try:
                sup = supervise(spawned, limits, stopper, before_reap=stopper.stop, watch=limiter.watch)
            finally:
                accounted = limiter.finish()
        finally:
            spawned.close()
    finally:
        command.cleanup()
    return _accounted(_unsandboxed_outcome(sup, limits), accounted)


def _unsandboxed_outcome(sup: Supervised, limits: Limits) -> SandboxOutcome:
    if sup.kill_reason is not None:
        return to_outcome(sup, limits, Isolation.UNSANDBOXED, sup.kill_reason, None, signal.SIGKILL)
    if os.WIFSIGNALED(sup.wait_status):
        sig = os.WTERMSIG(sup.wait_status)
        return to_outcome(sup, limits, Isolation.UNSANDBOXED, from_signal(sig, limits, sup), None, sig)
    code = os.WEXITSTATUS(sup.wait_status)
    return to_outcome(sup, limits, Isolation.UNSANDBOXED, Termination.EXITED, code, None)
