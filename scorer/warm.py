"""Harness sandboxes, cold or pre-warmed: a run folder plus the sandbox that runs the harness over it.

A harness sandbox is started from what is known before the submission is: the runtime, the limits
and the images. The harness reads the images, imports NumPy (and TensorFlow and Keras in that
runtime), says hello and waits for its job (which entry to import, and where the submission is). So
the sandbox can be started ahead of the job (*warm*); the job then only fills the run folder and is
sent. The *cold* path starts the very same sandbox after the folder is filled and sends the job with
it, which the harness takes as soon as it has said hello: same harness, same view, same checks, just
the start-up while the run waits.

Either way the run's wall clock starts at the hand-over, after hello: the start-up (the interpreter,
and TensorFlow's import, which takes seconds and more under load) has its own bound, counted from
the sandbox's start (:data:`STARTUP_SECONDS` by default). So an honest run never fails, nor is given
back as the service's fault, because its runtime started slowly; a harness that does not say hello
within that bound is the service's fault (nothing of the trainee's has run).

Nothing private to a run is bound into the sandbox: /proc/PID/mountinfo would name the host path of
every bind (the run folder, the test set's folder and version). The harness comes as a data file;
the images and the run folder's ``sub`` and ``input`` folders come as descriptors over the job
channel, a unix socket (SOCK_SEQPACKET) of the box's own: first the images, then the job with the
two folders. The harness reads or copies each and closes it before any trainee code runs, and only
the harness ever holds them (the sandbox's PID 1 inherits only the socket), so no process's
/proc/PID/fd shows a host path either. The images are never copied per run: the parent opens the
file (which may be readable by the worker only) and sends that descriptor.

Each sandbox serves exactly one run and is then torn down (namespaces, tmpfs, cgroup, pool uid);
the next one is a fresh sandbox. A :class:`WarmSlot` keeps at most one warm sandbox per runtime per
process (a worker process runs one job at a time, and which runtime its next job needs is known only
once that job's zip has been read): the NumPy one, and the TensorFlow one where it is installed, so
neither kind of job waits for its runtime's start (TensorFlow's import takes seconds). It hands a
sandbox out only when it still fits: same configuration, limits, images and runtime (executable's
mtime and size), still alive and not older than its idle bound. Anything else is discarded and the
job takes the cold path: correct, slower.

The runtime is chosen from the submission's code (scorer/runtime_choice.py), so the zip is extracted
into a fresh run folder first; a warm sandbox then *adopts* that folder's contents (moved into its
own ``sub`` and ``input`` folders, a rename each), and a cold one is started over the folder.

A sandbox must be started, handed over and discarded from the same long-lived thread
(``--die-with-parent`` follows the parent thread): in a Celery prefork child, the main thread, at
the end of the previous task.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from scorer.images import Images
from scorer.runtime import Runtime, RuntimeName
from scorer.sandbox import (
    DataFile,
    Isolation,
    SandboxConfig,
    SandboxOutcome,
    SandboxRequest,
    StartedRun,
    detect_isolation,
    run_sandboxed,
    start_sandboxed,
)
from scorer.sandbox.spawn import high_fd
from scorer.sandbox.types import Limits
from scorer.verdict import channel_complete

log = logging.getLogger(__name__)

HARNESS_SOURCE = Path(__file__).parent / "harness" / "runner.py"

# Where things are inside the sandbox: the harness (a data file) and the writable copy of the submission.
HARNESS = "/harness/runner.py"
WORK = "/work"

# How long a warm sandbox may wait for a job before it is replaced (and its PID-1 backstop covers).
DEFAULT_IDLE_SECONDS = 900.0

# How long the harness may take from the sandbox's start to its hello, off the run's clock. TensorFlow's
# import took 4.5-9 s on a 2-core machine at load 7-8, and more at load 18: minutes mean a broken host.
STARTUP_SECONDS = 180.0


@dataclass(frozen=True)
class HarnessSpec:
    """What a harness sandbox is started with, before the submission is known.

    The runtime is part of it: a warm sandbox serves only a run of the same runtime, so a worker
    keeps one per runtime (see WarmSlot)."""

    runtime: Runtime
    sandbox: SandboxConfig
    limits: Limits
    images: Images
    work_root: Path | None = None  # parent of the run folders; must be reachable by the sandbox uid
    startup_seconds: float = STARTUP_SECONDS  # from the sandbox's start to the harness's hello


def runtime_stamp(python: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(python)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _sandbox_env(limits: Limits) -> dict[str, str]:
    # Thread pools are sized from the run's CPU budget, not from the cores the host shows: a 64-core
    # worker must not start 64 threads per pool in each run (threads count against the pids limit,
    # and each reserves stack address space under RLIMIT_AS).
    threads = str(max(1, limits.cpus))
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "NUMEXPR_NUM_THREADS": threads,
        "VECLIB_MAXIMUM_THREADS": threads,
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
        # TensorFlow's C++ notices and warnings (oneDNN, CPU features) are not the trainee's
        # output; its errors still show.
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_HOME": "/tmp/keras",
    }


def _readable_dir(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    path.chmod(0o755)  # the sandbox's pool uid must read it
    return path


def new_run_dir(work_root: Path | None) -> Path:
    """A run folder with the empty ``sub`` and ``input`` folders the submission is extracted into,
    readable by the sandbox's uid (0755: the harness reads them through descriptors as that uid)."""
    root = work_root or Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="katakana-run-", dir=root))
    try:
        path.chmod(0o755)
        for name in ("sub", "input"):
            _readable_dir(path / name)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


# What the harness's peer may have done by the time a message is sent: ended (its outcome says how).
_PEER_GONE = (BrokenPipeError, ConnectionResetError, ConnectionRefusedError)


class HarnessBox:
    """One run: its folder, its job channel, and (when warm) its already started sandbox. Single use;
    ``close`` always, which removes the folder and ends a sandbox that was never handed its job."""

    def __init__(self, spec: HarnessSpec, *, idle_seconds: float = 0.0, run_dir: Path | None = None) -> None:
        self.spec = spec
        self.run_id = uuid.uuid4().hex  # in the sandbox's environment: tests prove nothing of it survives
        self.run_dir = run_dir if run_dir is not None else new_run_dir(spec.work_root)
        self.idle_seconds = idle_seconds
        self.started: StartedRun | None = None
        self.runtime = runtime_stamp(spec.runtime.python)
        self.used = False
        self.jobs: socket.socket | None = None  # our end of the job channel, once the sandbox starts

    def request(self, channel_fd: int) -> SandboxRequest:
        runtime, limits = self.spec.runtime, self.spec.limits
        argv = [str(runtime.python), "-s", "-B", HARNESS, "--channel-fd", str(channel_fd), "--work", WORK]
        argv += [f"--preload={module}" for module in runtime.preload]
        return SandboxRequest(
            argv=argv,
            binds=runtime.binds(),
            files=[DataFile(HARNESS, HARNESS_SOURCE.read_bytes())],
            writable_dirs=["/tmp", WORK],
            env={**_sandbox_env(limits), "KATAKANA_RUN_ID": self.run_id},
            cwd=WORK,
            limits=limits,
            pass_fds=(channel_fd,),
            idle_seconds=self.idle_seconds,
            startup_seconds=self.spec.startup_seconds,
            # The run ends once its final event is whole on the channel, not at its processes' exit.
            result_complete=channel_complete,
        )

    def _open_channel(self) -> int:
        """Make the job channel and send the images; the harness's end (the caller closes it once
        the sandbox is started: the sandbox holds its own copy)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.jobs = ours
        child = high_fd(theirs.detach())
        try:
            images = self.spec.images.open_fd()
            try:
                self._send(b'{"images": true}', images)
            finally:
                os.close(images)
        except BaseException:
            os.close(child)
            raise
        return child

    def _send_job(self, job: dict[str, object]) -> None:
        """The job, with the submission's folder and the generated input's as descriptors."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        submission = os.open(self.run_dir / "sub", flags)
        try:
            generated = os.open(self.run_dir / "input", flags)
            try:
                self._send(json.dumps(job, ensure_ascii=False).encode("utf-8"), submission, generated)
            finally:
                os.close(generated)
        finally:
            os.close(submission)

    def _send(self, message: bytes, *fds: int) -> None:
        assert self.jobs is not None
        with contextlib.suppress(*_PEER_GONE):
            socket.send_fds(self.jobs, [message], list(fds))

    def adopt(self, staged: Path) -> None:
        """Take over a run folder filled before this box was chosen: its ``sub`` and ``input``
        contents move into this box's folders, one rename each, and the folder goes."""
        try:
            for name in ("sub", "input"):
                for child in (staged / name).iterdir():
                    os.rename(child, self.run_dir / name / child.name)
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def warm_up(self) -> bool:
        """Start the sandbox now (it then waits for ``run``); False if it could not be started."""
        channel = self._open_channel()
        try:
            started = start_sandboxed(self.request(channel), self.spec.sandbox)
        finally:
            os.close(channel)
        if isinstance(started, SandboxOutcome):
            log.warning("warm sandbox did not start: %s", started.setup_error)
            return False
        self.started = started
        return True

    def run(self, job: dict[str, object]) -> SandboxOutcome:
        """Hand the job over (warm) or start the sandbox with it (cold), and wait for the end.

        A warm run leaves its pool-uid sweep to ``close`` (see StartedRun.hand_over)."""
        if self.used:
            raise RuntimeError("a harness box serves one run")
        self.used = True
        if self.started is not None:
            self._send_job(job)
            return self.started.hand_over(b"", sweep_later=True)
        channel = self._open_channel()
        try:
            self._send_job(job)  # waits in the channel until the harness asks for it
            return run_sandboxed(self.request(channel), self.spec.sandbox)
        finally:
            os.close(channel)

    def fits(self, spec: HarnessSpec, max_idle_seconds: float) -> bool:
        """Whether this warm sandbox may serve a job of ``spec`` now."""
        if self.started is None or self.used or spec != self.spec:
            return False
        if runtime_stamp(spec.runtime.python) != self.runtime:
            return False
        if time.monotonic() - self.started.created > max_idle_seconds:
            return False
        return self.started.alive()

    def close(self) -> None:
        """Remove the folder; end the sandbox if it never ran, or finish its clean-up if it did."""
        try:
            if self.started is not None:
                self.started.discard()  # after a run: only the sweep and the uid's release
        finally:
            if self.jobs is not None:
                self.jobs.close()
            shutil.rmtree(self.run_dir, ignore_errors=True)


class WarmSlot:
    """At most one pre-warmed harness sandbox per runtime for this process; see the module docstring.

    ``take`` before a run (None: use a cold box), ``warm`` after it, ``close`` when the process
    ends. Counters let tests and the bench see which path a run took.

    While a sandbox waits, a watcher thread ends it as soon as it dies or has waited
    ``max_idle_seconds``: an idle worker runs none of our code, and a sandbox whose PID-1 backstop
    fired would otherwise stay a zombie (and keep its uid, cgroup and folder) until the next task.
    The slot's methods are for the thread that warms it; a watcher only ever takes its sandbox out
    of the slot under the lock, so each box is closed by exactly one thread.
    """

    def __init__(
        self, max_idle_seconds: float = DEFAULT_IDLE_SECONDS, *, runtimes: frozenset[RuntimeName] | None = None
    ) -> None:
        self.max_idle_seconds = max_idle_seconds
        self.runtimes = runtimes  # the runtimes it keeps warm; None: every one
        self.boxes: dict[RuntimeName, HarnessBox] = {}
        self.served = 0  # runs that got a warm sandbox
        self.missed = 0  # runs that asked and had to go cold
        self.discarded = 0  # warm sandboxes thrown away unused (stale, dead, another spec)
        self.retired: HarnessBox | None = None  # a used box whose clean-up waits for the next warm
        self._lock = threading.Lock()
        self._watches: dict[RuntimeName, _IdleWatch] = {}

    @property
    def box(self) -> HarnessBox | None:
        """The warm sandbox of the NumPy runtime, else of any runtime (the one most processes hold)."""
        return self.boxes.get(RuntimeName.NUMPY) or next(iter(self.boxes.values()), None)

    def retire(self, box: HarnessBox) -> None:
        """Clean ``box`` up later (at the next ``warm``, ``take`` or ``close``): its run is over and
        its result known; removing its folder and sweeping its uid need not delay the result."""
        self._flush()
        self.retired = box

    def _flush(self) -> None:
        box, self.retired = self.retired, None
        if box is not None:
            box.close()

    def _detach(self, runtime: RuntimeName) -> HarnessBox | None:
        """Take the waiting sandbox of ``runtime`` out of the slot, its watcher stopped (the box is then
        ours alone)."""
        with self._lock:
            box = self.boxes.pop(runtime, None)
            watch = self._watches.pop(runtime, None)
        if watch is not None:
            watch.stop()
        return box

    def take(self, spec: HarnessSpec) -> HarnessBox | None:
        self._flush()
        box = self._detach(spec.runtime.name)
        if box is not None and box.fits(spec, self.max_idle_seconds):
            self.served += 1
            return box
        if box is not None:
            log.info("warm sandbox discarded (stale, dead, or for another configuration)")
            self.discarded += 1
            box.close()
        self.missed += 1
        return None

    def keeps(self, spec: HarnessSpec) -> bool:
        """Whether this slot keeps a sandbox of ``spec``'s runtime warm (see ``runtimes``)."""
        return self.runtimes is None or spec.runtime.name in self.runtimes

    def holds(self, spec: HarnessSpec) -> bool:
        """Whether a warm sandbox that would serve a job of ``spec`` is waiting."""
        with self._lock:  # its watcher may be ending it
            box = self.boxes.get(spec.runtime.name)
            return box is not None and box.fits(spec, self.max_idle_seconds)

    def warm(self, spec: HarnessSpec) -> bool:
        """Start a sandbox for the next job of ``spec`` (replacing any other of its runtime); False
        when it cannot be warmed here (no bubblewrap: the unsandboxed fallback is always cold) or
        failed to start, or its runtime is not one this slot keeps warm."""
        self._flush()
        self.discard(spec.runtime.name)
        if not self.keeps(spec):
            return False
        try:
            if detect_isolation(spec.sandbox) is not Isolation.BWRAP:
                return False
            box = HarnessBox(spec, idle_seconds=self.max_idle_seconds)
        except Exception as exc:  # warming is an optimisation: the next job goes cold instead
            log.warning("cannot pre-warm a sandbox: %s", exc)
            return False
        try:
            if box.warm_up():
                with self._lock:
                    self.boxes[spec.runtime.name] = box
                    self._watches[spec.runtime.name] = _IdleWatch(self, spec.runtime.name, box, self.max_idle_seconds)
                return True
        except Exception as exc:
            log.warning("cannot pre-warm a sandbox: %s", exc)
        box.close()
        return False

    def discard(self, runtime: RuntimeName | None = None) -> None:
        """End the warm sandbox of ``runtime`` (None: of every runtime)."""
        with self._lock:
            names = list(self.boxes) if runtime is None else [runtime]
        for name in names:
            box = self._detach(name)
            if box is not None:
                self.discarded += 1
                box.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._flush()
        with contextlib.suppress(Exception):
            self.discard()

    def _expire(self, runtime: RuntimeName, box: HarnessBox) -> None:
        """From the watcher: ``box`` died or waited too long; end it if it still waits in the slot."""
        with self._lock:
            if self.boxes.get(runtime) is not box:
                return  # taken or replaced meanwhile: no longer ours to end
            log.info("warm sandbox ended while idle (it died or waited %.0f s)", self.max_idle_seconds)
            try:
                box.close()
            finally:
                del self.boxes[runtime]
                self._watches.pop(runtime, None)
                self.discarded += 1


class _IdleWatch:
    """A thread that waits for a warm sandbox's end or its idle bound, whichever comes first."""

    def __init__(self, slot: WarmSlot, runtime: RuntimeName, box: HarnessBox, max_idle_seconds: float) -> None:
        assert box.started is not None
        self.slot = slot
        self.runtime = runtime
        self.box = box
        self.ended = box.started.spawned.pidfd  # readable once bwrap has exited
        self.deadline = box.started.created + max_idle_seconds
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._run, name="katakana-warm-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            timeout = max(0.0, self.deadline - time.monotonic())
            ready, _, _ = select.select([self.ended, self.wake_r], [], [], timeout)
            if self.wake_r not in ready:
                self.slot._expire(self.runtime, self.box)
        except Exception:  # never lose the thread silently: the next task still cleans up
            log.exception("watching a warm sandbox failed")

    def stop(self) -> None:
        """Make the thread return and wait for it (it never touches the box after ``_detach``)."""
        os.write(self.wake_w, b"!")
        self.thread.join()
        os.close(self.wake_r)
        os.close(self.wake_w)
