"""Nothing of a run outlives it, and nothing inside it can touch host processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from scorer.sandbox import SandboxConfig, Termination

from .conftest import RunPy, processes_with, wait_until


def test_daemon_does_not_outlive_the_run(run_py: RunPy, marker: str) -> None:
    code = (
        "import os\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        for fd in (0, 1, 2): os.close(fd)\n"
        "        os.write(w, b'x')\n"
        f"        os.execv('/usr/bin/sleep', ['sleep', {marker!r}])\n"
        "    os._exit(0)\n"
        "os.close(w); os.read(r, 1)\n"
        "import glob, time\n"
        "for _ in range(1000):\n"
        "    cmdlines = [open(p, 'rb').read() for p in glob.glob('/proc/[0-9]*/cmdline')]\n"
        f"    if any({marker!r}.encode() in cmdline for cmdline in cmdlines):\n"
        "        print('DAEMONIZED'); break\n"
        "    time.sleep(0.01)\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "DAEMONIZED" in outcome.log
    assert processes_with(marker) == []


def test_processes_die_with_a_timed_out_run(run_py: RunPy, marker: str) -> None:
    code = (
        "import os, time\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        f"        os.execv('/usr/bin/sleep', ['sleep', {marker!r}])\n"
        "time.sleep(3600)\n"
    )
    outcome = run_py(code, wall_seconds=2)
    assert outcome.termination is Termination.WALL_TIMEOUT
    assert processes_with(marker) == []


def test_kill_everything_inside_does_not_reach_the_host(run_py: RunPy, marker: str) -> None:
    bystander = subprocess.Popen(["sleep", marker])
    try:
        code = "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('STILL HERE')\n"
        outcome = run_py(code)
        assert outcome.termination is Termination.EXITED, outcome.log
        assert bystander.poll() is None
        os.kill(os.getpid(), 0)  # and we are alive too
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()


def test_the_sandbox_dies_with_the_worker(config: SandboxConfig, marker: str) -> None:
    worker_code = (
        "from pathlib import Path\n"
        "from scorer.sandbox import Limits, SandboxConfig, SandboxRequest, run_sandboxed\n"
        f"request = SandboxRequest(argv=['/usr/bin/sleep', {marker!r}], limits=Limits(wall_seconds=120))\n"
        f"run_sandboxed(request, SandboxConfig(mode='bwrap', lock_dir=Path({str(config.lock_dir)!r})))\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", worker_code])
    try:
        assert wait_until(lambda: processes_with(marker) != []), "the sandboxed command never started"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert wait_until(lambda: processes_with(marker) == [])
    finally:
        worker.kill()
        worker.wait()
