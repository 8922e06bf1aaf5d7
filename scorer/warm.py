"""Harness sandboxes, cold or pre-warmed: a run folder plus the sandbox that runs the harness over it.

A harness sandbox is started from what is known before the submission is: the runtime, the limits
and the images. The harness then reads the images from an inherited descriptor, imports NumPy,
says hello and blocks on stdin until it is handed its job (which entry to import). So the sandbox
can be started ahead of the job (*warm*) and the job only fills the run folder, whose ``sub`` and
``input`` folders are already bound into the sandbox (a bind mount is a live view of a folder), and
writes one JSON line. The *cold* path starts the very same sandbox after the folder is filled and
hands the job over at once: same harness, same binds, same checks, just the start-up on the clock.

Each sandbox serves exactly one run and is then torn down (namespaces, tmpfs, cgroup, pool uid);
the next one is a fresh sandbox. A :class:`WarmSlot` keeps at most one warm sandbox per process (a
worker process runs one job at a time) and hands it out only when it still fits: same
configuration, limits, images and runtime (executable's mtime and size), still alive and not older
than its idle bound. Anything else is discarded and the job takes the cold path: correct, slower.

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
from scorer.runtime import Runtime
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


@dataclass(frozen=True)
class HarnessSpec:
    """What a harness sandbox is started with, before the submission is known.

    The runtime is part of it: a warm sandbox serves only a run of the same runtime, so a worker
    that runs several keeps its slot for the one it ran last."""

    runtime: Runtime
    sandbox: SandboxConfig
    limits: Limits
    images: Images
    work_root: Path | None = None  # parent of the run folders; must be reachable by the sandbox uid


def runtime_stamp(python: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(python)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _sandbox_env(limits: Limits) -> dict[str, str]:
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

    def __init__(self, spec: HarnessSpec, *, idle_seconds: float = 0.0) -> None:
        self.spec = spec
        self.run_id = uuid.uuid4().hex  # in the sandbox's environment: tests prove nothing of it survives
        self.run_dir = new_run_dir(spec.work_root)
        self.idle_seconds = idle_seconds
        self.started: StartedRun | None = None
        self.runtime = runtime_stamp(spec.runtime.python)
        self.used = False

    def request(self, data_fd: int, job: bytes = b"") -> SandboxRequest:
        runtime, limits = self.spec.runtime, self.spec.limits
        argv = [str(runtime.python), "-s", "-B", f"{HARNESS}/runner.py", "--data-fd", str(data_fd)]
        argv += ["--submission", SUBMISSION_RO, "--work", WORK, "--input", INPUT]
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
        )

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
    """At most one pre-warmed harness sandbox for this process; see the module docstring.

    ``take`` before a run (None: use a cold box), ``warm`` after it, ``close`` when the process
    ends. Counters let tests and the bench see which path a run took.
    """

    def __init__(self, max_idle_seconds: float = DEFAULT_IDLE_SECONDS) -> None:
        self.max_idle_seconds = max_idle_seconds
        self.box: HarnessBox | None = None
        self.served = 0  # runs that got a warm sandbox
        self.missed = 0  # runs that asked and had to go cold
        self.discarded = 0  # warm sandboxes thrown away unused (stale, dead, another spec)
        self.retired: HarnessBox | None = None  # a used box whose clean-up waits for the next warm

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
        box, self.box = self.box, None
        if box is not None and box.fits(spec, self.max_idle_seconds):
            self.served += 1
            return box
        if box is not None:
            log.info("warm sandbox discarded (stale, dead, or for another configuration)")
            self.discarded += 1
            box.close()
        self.missed += 1
        return None

    def warm(self, spec: HarnessSpec) -> bool:
        """Start a sandbox for the next job of ``spec`` (replacing any other); False when it cannot
        be warmed here (no bubblewrap: the unsandboxed fallback is always cold) or failed to start."""
        self._flush()
        self.discard()
        try:
            if detect_isolation(spec.sandbox) is not Isolation.BWRAP:
                return False
            box = HarnessBox(spec, idle_seconds=self.max_idle_seconds)
        except Exception as exc:  # warming is an optimisation: the next job goes cold instead
            log.warning("cannot pre-warm a sandbox: %s", exc)
            return False
        try:
            if box.warm_up():
                self.box = box
                return True
        except Exception as exc:
            log.warning("cannot pre-warm a sandbox: %s", exc)
        box.close()
        return False

    def discard(self) -> None:
        box, self.box = self.box, None
        if box is not None:
            self.discarded += 1
            box.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._flush()
        with contextlib.suppress(Exception):
            self.discard()
