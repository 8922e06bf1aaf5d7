"""Harness sandboxes, cold or pre-warmed: a run folder plus the sandbox that runs the harness over it.

A harness sandbox is started from what is known before the submission is: the runtime, the limits
and the images. The harness then reads the images from an inherited descriptor, imports NumPy (and
TensorFlow and Keras in that runtime), says hello and blocks on stdin until it is handed its job
(which entry to import). So the sandbox can be started ahead of the job (*warm*) and the job only
fills the run folder, whose ``sub`` and ``input`` folders are already bound into the sandbox (a bind
mount is a live view of a folder), and writes one JSON line. The *cold* path starts the very same
sandbox after the folder is filled and hands the job over as soon as the harness says hello: same
harness, same binds, same checks, just the start-up while the run waits.

Either way the run's wall clock starts at the hand-over, after hello: the start-up (the interpreter,
and TensorFlow's import, which takes seconds and more under load) has its own bound, counted from
the sandbox's start (:data:`STARTUP_SECONDS` by default). So an honest run never fails, nor is given
back as the service's fault, because its runtime started slowly; a harness that does not say hello
within that bound is the service's fault (nothing of the trainee's has run).

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
own bound ``sub`` and ``input`` folders, a rename each), and a cold one is started over the folder.

The images are never copied per run: the parent opens the file (which may be readable by the
worker only) and each sandbox inherits its own descriptor; the harness reads it whole before any
trainee code runs and closes it. A sandbox must be started, handed over and discarded from the same
long-lived thread (``--die-with-parent`` follows the parent thread): in a Celery prefork child,
the main thread, at the end of the previous task.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from scorer.images import Images
from scorer.runtime import Runtime, RuntimeName
from scorer.sandbox import (
    Isolation,
    SandboxConfig,
    SandboxOutcome,
    SandboxRequest,
    StartedRun,
    detect_isolation,
    run_sandboxed,
    start_sandboxed,
)
from scorer.sandbox.types import Bind, Limits

log = logging.getLogger(__name__)

HARNESS_SOURCE = Path(__file__).parent / "harness" / "runner.py"

# Where things are inside the sandbox: neutral names, so logs and /proc/self/mountinfo show no host path.
SUBMISSION_RO = "/submission"
WORK = "/work"
HARNESS = "/harness"
INPUT = "/input"

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
    """A run folder the sandbox uid can read (0755): the harness, and the empty ``sub`` and ``input``
    folders bound into the sandbox before the submission is extracted into them."""
    root = work_root or Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="katakana-run-", dir=root))
    try:
        path.chmod(0o755)
        for name in ("sub", "input"):
            _readable_dir(path / name)
        harness = _readable_dir(path / "harness") / "runner.py"
        shutil.copyfile(HARNESS_SOURCE, harness)
        harness.chmod(0o644)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


class HarnessBox:
    """One run: its folder, and (when warm) its already started sandbox. Single use; ``close``
    always, which removes the folder and ends a sandbox that was never handed its job."""

    def __init__(self, spec: HarnessSpec, *, idle_seconds: float = 0.0, run_dir: Path | None = None) -> None:
        self.spec = spec
        self.run_id = uuid.uuid4().hex  # in the sandbox's environment: tests prove nothing of it survives
        self.run_dir = run_dir if run_dir is not None else new_run_dir(spec.work_root)
        self.idle_seconds = idle_seconds
        self.started: StartedRun | None = None
        self.runtime = runtime_stamp(spec.runtime.python)
        self.used = False

    def request(self, data_fd: int, job: bytes = b"") -> SandboxRequest:
        runtime, limits = self.spec.runtime, self.spec.limits
        argv = [str(runtime.python), "-s", "-B", f"{HARNESS}/runner.py", "--data-fd", str(data_fd)]
        argv += ["--submission", SUBMISSION_RO, "--work", WORK, "--input", INPUT]
        argv += [f"--preload={module}" for module in runtime.preload]
        binds = [
            *runtime.binds(),
            Bind(self.run_dir / "sub", SUBMISSION_RO),
            Bind(self.run_dir / "harness", HARNESS),
            Bind(self.run_dir / "input", INPUT),
        ]
        return SandboxRequest(
            argv=argv,
            binds=binds,
            writable_dirs=["/tmp", WORK],
            env={**_sandbox_env(limits), "KATAKANA_RUN_ID": self.run_id},
            cwd=WORK,
            limits=limits,
            stdin=job,
            pass_fds=(data_fd,),
            idle_seconds=self.idle_seconds,
            startup_seconds=self.spec.startup_seconds,
        )

    def adopt(self, staged: Path) -> None:
        """Take over a run folder filled before this box was chosen: its ``sub`` and ``input``
        contents move into this box's (bound) folders, one rename each, and the folder goes."""
        try:
            for name in ("sub", "input"):
                for child in (staged / name).iterdir():
                    os.rename(child, self.run_dir / name / child.name)
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def warm_up(self) -> bool:
        """Start the sandbox now (it then waits for ``run``); False if it could not be started."""
        data_fd = self.spec.images.open_fd()
        try:
            started = start_sandboxed(self.request(data_fd), self.spec.sandbox)
        finally:
            os.close(data_fd)  # the sandbox holds its own copy
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
        data = json.dumps(job, ensure_ascii=False).encode("utf-8")
        if self.started is not None:
            return self.started.hand_over(data, sweep_later=True)
        data_fd = self.spec.images.open_fd()
        try:
            return run_sandboxed(self.request(data_fd, data), self.spec.sandbox)
        finally:
            os.close(data_fd)

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
            shutil.rmtree(self.run_dir, ignore_errors=True)


class WarmSlot:
    """At most one pre-warmed harness sandbox per runtime for this process; see the module docstring.

    ``take`` before a run (None: use a cold box), ``warm`` after it, ``close`` when the process
    ends. Counters let tests and the bench see which path a run took.
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

    def take(self, spec: HarnessSpec) -> HarnessBox | None:
        self._flush()
        box = self.boxes.pop(spec.runtime.name, None)
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
                self.boxes[spec.runtime.name] = box
                return True
        except Exception as exc:
            log.warning("cannot pre-warm a sandbox: %s", exc)
        box.close()
        return False

    def discard(self, runtime: RuntimeName | None = None) -> None:
        """End the warm sandbox of ``runtime`` (None: of every runtime)."""
        for name in list(self.boxes) if runtime is None else [runtime]:
            box = self.boxes.pop(name, None)
            if box is not None:
                self.discarded += 1
                box.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._flush()
        with contextlib.suppress(Exception):
            self.discard()
