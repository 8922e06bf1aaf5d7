"""Shared fixtures: the reference runtime, a sandbox configuration, a loopback server and helpers.

Every test here drives the real sandbox (real bwrap, real kernel limits). When the worker-style
pool applies (tests run as root), bwrap runs as a pool uid, so anything a test binds must be
world-readable: pytest's ``tmp_path`` lives under a 0700 directory, hence ``shared_dir``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from scorer.runtime import Runtime, find_runtime
from scorer.sandbox import (
    Bind,
    DataFile,
    Isolation,
    Limits,
    SandboxConfig,
    SandboxOutcome,
    SandboxRequest,
    SandboxUnavailable,
    detect_isolation,
    run_sandboxed,
    start_sandboxed,
)
from scorer.sandbox.types import MiB

# Small limits keep a misbehaving test cheap; the wall limit is only a safety net.
TEST_LIMITS = Limits(wall_seconds=20, memory_bytes=512 * MiB, processes=32, writable_bytes=16 * MiB)
SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}

RunPy = Callable[..., SandboxOutcome]


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    return find_runtime()


@pytest.fixture(scope="session")
def config() -> SandboxConfig:
    """The production-like configuration: bwrap required, no fallback."""
    cfg = SandboxConfig(mode="bwrap", allow_unsandboxed=False)
    try:
        assert detect_isolation(cfg) is Isolation.BWRAP
    except SandboxUnavailable as exc:
        pytest.skip(f"bubblewrap cannot run here: {exc}")
    return cfg


@pytest.fixture(params=["cold", "warm"])
def run_py(request: pytest.FixtureRequest, runtime: Runtime, config: SandboxConfig) -> RunPy:
    """Run Python source in the sandbox with the runtime: run_py(code, binds=[...], files=[...],
    **limit_overrides).

    Each test runs twice: started and supervised at once (cold), and started first then handed
    over (warm, the pre-warmed path of scorer/warm.py): the sandbox must hold the same either way.
    """
    warm = request.param == "warm"

    def run(
        code: str,
        *,
        binds: Sequence[Bind] = (),
        files: Sequence[DataFile] = (),
        env: dict[str, str] | None = None,
        **limits: Any,
    ) -> SandboxOutcome:
        sandbox_request = SandboxRequest(
            argv=[str(runtime.python), "-I", "-c", code],
            binds=[*runtime.binds(), *binds],
            files=list(files),
            env=SANDBOX_ENV if env is None else env,
            limits=_limits(**limits),
            idle_seconds=30.0 if warm else 0.0,
        )
        if not warm:
            return run_sandboxed(sandbox_request, config)
        started = start_sandboxed(sandbox_request, config)
        if isinstance(started, SandboxOutcome):
            return started
        return started.hand_over()

    return run


def _limits(**overrides: Any) -> Limits:
    return dataclasses.replace(TEST_LIMITS, **overrides)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A temp dir any uid can read (a pool uid must be able to reach bind sources)."""
    path = Path(tempfile.mkdtemp(prefix="katakana-sandbox-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def marker() -> str:
    """A unique string to put in sandboxed command lines, to find their processes on the host.

    It is a number of seconds, so that it can be an argument of ``sleep`` (which adds them up).
    """
    return f"3600.{secrets.randbelow(10**12):012d}"


def processes_with(marker: str) -> list[int]:
    """Host pids (not ours) whose command line contains ``marker``; zombies are not alive."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], safety_net_s: float = 30.0) -> bool:
    """Poll ``condition``; the bound only keeps a broken sandbox from hanging the suite.

    A SIGKILLed process is gone once the kernel has delivered the signal and torn it down, which
    can trail the kill by a moment on a loaded machine: "nothing left" is waited for, not sampled.
    """
    deadline = time.monotonic() + safety_net_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
