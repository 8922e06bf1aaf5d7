"""The unsandboxed fallback: same request, same limits and paths, no isolation (and it says so)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from scorer.runtime import Runtime
from scorer.sandbox import (
    Bind,
    DataFile,
    Isolation,
    SandboxConfig,
    SandboxRequest,
    SandboxUnavailable,
    Termination,
    detect_isolation,
    run_sandboxed,
)
from scorer.sandbox.fallback import PathMap

from .conftest import TEST_LIMITS, processes_with, wait_until

UNSANDBOXED = SandboxConfig(mode="unsandboxed")


def test_trivial_command_runs_with_mapped_paths(
    runtime: Runtime, shared_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KATAKANA_TEST_SECRET", "fallback-canary")
    (shared_dir / "input.txt").write_text("payload")
    # Paths are rewritten where they start an argument, an env value (or a :-list item), or the cwd.
    code = (
        "import os, sys\n"
        "data = open(sys.argv[1]).read()\n"
        "open(os.environ['OUT'], 'w').write(data)\n"
        "os.write(3, open('out.txt').read().encode())\n"
        "print('CWD', os.getcwd() == os.path.dirname(os.environ['OUT']))\n"
        "print('SECRET', 'fallback-canary' in str(os.environ))\n"
    )
    request = SandboxRequest(
        argv=[str(runtime.python), "-I", "-c", code, "/submission/input.txt"],
        binds=[Bind(shared_dir, "/submission")],
        writable_dirs=["/scratch"],
        env={"OUT": "/scratch/out.txt"},
        cwd="/scratch",
        limits=TEST_LIMITS,
    )
    with caplog.at_level(logging.WARNING):
        outcome = run_sandboxed(request, UNSANDBOXED)
    assert outcome.isolation is Isolation.UNSANDBOXED
    assert outcome.termination is Termination.EXITED, outcome.log
    assert outcome.result == b"payload"
    assert "CWD True" in outcome.log
    assert "SECRET False" in outcome.log
    assert "UNSANDBOXED" in caplog.text
    assert not (shared_dir / "out.txt").exists()


def test_data_files_become_host_copies(runtime: Runtime) -> None:
    request = SandboxRequest(
        argv=[str(runtime.python), "-I", "/tools/show.py"],
        files=[DataFile("/tools/show.py", b"print('FROM DATA FILE')\n")],
        limits=TEST_LIMITS,
    )
    outcome = run_sandboxed(request, UNSANDBOXED)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "FROM DATA FILE" in outcome.log


def test_timeout_kills_the_whole_process_group(runtime: Runtime, marker: str) -> None:
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        f"    os.execv('/usr/bin/sleep', ['sleep', {marker!r}])\n"
        "time.sleep(3600)\n"
    )
    request = SandboxRequest(argv=[str(runtime.python), "-c", code], limits=TEST_LIMITS.__class__(wall_seconds=2))
    outcome = run_sandboxed(request, UNSANDBOXED)
    assert outcome.termination is Termination.WALL_TIMEOUT
    assert wait_until(lambda: processes_with(marker) == [])


def test_missing_program_is_a_setup_failure() -> None:
    outcome = run_sandboxed(SandboxRequest(argv=["/nonexistent/python"], writable_dirs=[]), UNSANDBOXED)
    assert outcome.termination is Termination.SETUP_FAILED
    assert "/nonexistent/python" in outcome.setup_error


def test_paths_are_rewritten_by_longest_prefix() -> None:
    rewrite = PathMap({"/data": "/host/d", "/data/sub": "/elsewhere"})
    assert rewrite("/data") == "/host/d"
    assert rewrite("/data/x.npy") == "/host/d/x.npy"
    assert rewrite("/data/sub/y") == "/elsewhere/y"
    assert rewrite("/database") == "/database"
    assert rewrite("relative") == "relative"


def test_auto_mode_falls_back_only_when_allowed() -> None:
    missing = "katakana-no-such-bwrap"
    allowed = SandboxConfig(mode="auto", bwrap_path=missing, allow_unsandboxed=True)
    assert detect_isolation(allowed) is Isolation.UNSANDBOXED
    with pytest.raises(SandboxUnavailable):
        detect_isolation(SandboxConfig(mode="auto", bwrap_path=missing, allow_unsandboxed=False))
    with pytest.raises(SandboxUnavailable):
        detect_isolation(SandboxConfig(mode="bwrap", bwrap_path=missing))
    with pytest.raises(SandboxUnavailable):
        run_sandboxed(SandboxRequest(argv=["/usr/bin/true"]), SandboxConfig(mode="bwrap", bwrap_path=missing))


def test_unsandboxed_mode_needs_no_bwrap() -> None:
    config = SandboxConfig(mode="unsandboxed", bwrap_path="katakana-no-such-bwrap")
    assert detect_isolation(config) is Isolation.UNSANDBOXED
    outcome = run_sandboxed(SandboxRequest(argv=["/usr/bin/true"], writable_dirs=[]), config)
    assert outcome.termination is Termination.EXITED
    assert outcome.exit_code == 0
    assert os.path.exists("/usr/bin/true")
