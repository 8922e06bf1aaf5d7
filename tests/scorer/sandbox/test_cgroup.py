"""Limits of a run as a whole: memory across all its processes and its tmpfs mounts, and processes.

Each memory test runs twice: with the host's cgroup mode (skipped, saying why, on a host without a
writable cgroup) and with the polling supervisor forced by configuration, the fallback for such hosts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scorer.runtime import Runtime
from scorer.sandbox import (
    SandboxConfig,
    SandboxOutcome,
    SandboxRequest,
    SandboxUnavailable,
    Termination,
    detect_accounting,
    run_sandboxed,
)
from scorer.sandbox.cgroup import Accounting, CgroupUnusable, Layout, RunGroup, detect_layout, sweep_stale
from scorer.sandbox.types import Limits, MiB

from .conftest import SANDBOX_ENV, TEST_LIMITS, processes_with, wait_until

CGROUP_MODES = (Accounting.CGROUP_V1, Accounting.CGROUP_V2)


@pytest.fixture
def cgroup_config(config: SandboxConfig) -> SandboxConfig:
    """The host's own mode, which must be a cgroup one."""
    layout = detect_accounting(config)
    if layout.accounting not in CGROUP_MODES:
        pytest.skip(f"no writable cgroup on this host: {layout.why}")
    return config


@pytest.fixture(params=["cgroup", "supervisor"])
def any_config(request: pytest.FixtureRequest, config: SandboxConfig) -> SandboxConfig:
    if request.param == "supervisor":
        return dataclasses.replace(config, cgroup_mode="supervisor")
    result: SandboxConfig = request.getfixturevalue("cgroup_config")
    return result


def run_in(config: SandboxConfig, runtime: Runtime, code: str, **limits: object) -> SandboxOutcome:
    request = SandboxRequest(
        argv=[str(runtime.python), "-I", "-c", code],
        binds=runtime.binds(),
        env=SANDBOX_ENV,
        writable_dirs=["/tmp", "/work"],
        limits=dataclasses.replace(TEST_LIMITS, **limits),  # type: ignore[arg-type]
    )
    return run_sandboxed(request, config)


def our_groups(layout: Layout) -> list[Path]:
    """Groups this test process made (their names start with our pid) that still exist."""
    prefix = f"run-{os.getpid()}-"
    return [group for _, parent in layout.parents for group in parent.glob(f"{prefix}*")]


# Each child fits RLIMIT_AS (the per-process limit) easily; together they do not fit the run's.
CHILDREN_CODE = """
import os, time
for _ in range(3):
    if os.fork() == 0:
        block = bytearray({size})
        time.sleep(120)
        os._exit(0)
for _ in range(3):
    os.wait()
print('ALL HELD')
"""


def test_children_together_over_the_limit_end_as_memory_limit(any_config: SandboxConfig, runtime: Runtime) -> None:
    outcome = run_in(any_config, runtime, CHILDREN_CODE.format(size=180 * MiB), memory_bytes=384 * MiB, wall_seconds=60)
    assert outcome.termination is Termination.MEMORY_LIMIT, outcome.log
    assert "ALL HELD" not in outcome.log
    assert outcome.accounting == detect_accounting(any_config).accounting.value


# Across /tmp, /work and /dev/shm, each below its own tmpfs size and every file below RLIMIT_FSIZE:
# only the run's memory limit can stop this (RLIMIT_AS does not count tmpfs pages).
TMPFS_CODE = """
import itertools
block = b'x' * (1 << 20)
for n in itertools.count():
    with open(['/tmp', '/work', '/dev/shm'][n % 3] + f'/fill{n}', 'wb') as f:
        for _ in range(16):
            f.write(block)
    if n == 30:
        print('WROTE 496 MiB')
        break
"""


def test_writing_past_the_limit_into_tmpfs_ends_as_memory_limit(any_config: SandboxConfig, runtime: Runtime) -> None:
    outcome = run_in(any_config, runtime, TMPFS_CODE, memory_bytes=256 * MiB, writable_bytes=256 * MiB)
    assert outcome.termination is Termination.MEMORY_LIMIT, outcome.log
    assert "WROTE" not in outcome.log


# 40 MiB into each of /tmp, /work and /dev/shm: every file and every mount is within the 64 MiB of
# writes, all three together are not.
SPREAD_CODE = """
import time
block = b'x' * (1 << 20)
for folder in ('/tmp', '/work', '/dev/shm'):
    with open(folder + '/part', 'wb') as f:
        for _ in range(40):
            f.write(block)
print('WROTE 120 MiB', flush=True)
time.sleep(60)
"""


def test_writes_are_limited_in_total_not_per_mount(any_config: SandboxConfig, runtime: Runtime) -> None:
    outcome = run_in(any_config, runtime, SPREAD_CODE, memory_bytes=1024 * MiB, writable_bytes=64 * MiB)
    assert outcome.termination is Termination.DISK_LIMIT, outcome.log


# Empty files hold no bytes, but each costs the kernel an inode and a dentry (cgroup modes charge
# them to the group): 300,000 of them are far more than 128 MiB.
INODES_CODE = """
import os
for n in range(300_000):
    os.close(os.open(f'/tmp/{n:06d}' + 'x' * 100, os.O_CREAT | os.O_WRONLY, 0o600))
print('MADE ALL')
"""


def test_many_empty_files_end_as_memory_limit(any_config: SandboxConfig, runtime: Runtime) -> None:
    outcome = run_in(any_config, runtime, INODES_CODE, memory_bytes=128 * MiB, wall_seconds=120)
    assert outcome.termination is Termination.MEMORY_LIMIT, outcome.log
    assert "MADE ALL" not in outcome.log


# Docker's default capabilities for a root worker: no CAP_SYS_PTRACE, so no ptrace rights over a run's
# processes, which reading their mounts through /proc/PID/root requires.
DOCKER_CAPABILITIES = (
    "chown,dac_override,fowner,fsetid,kill,setgid,setuid,setpcap,net_bind_service,net_raw,sys_chroot,mknod,"
    "audit_write,setfcap"
)


def test_the_supervisor_sees_the_run_as_a_root_worker_without_ptrace(config: SandboxConfig) -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to drop CAP_SYS_PTRACE as Docker does")
    bounding = "-all," + ",".join(f"+{cap}" for cap in DOCKER_CAPABILITIES.split(","))
    worker = (
        "import json\n"
        "from scorer.runtime import find_runtime\n"
        "from scorer.sandbox import SandboxConfig\n"
        "from scorer.sandbox.types import MiB\n"
        "from tests.scorer.sandbox.test_cgroup import TMPFS_CODE, run_in\n"
        "effective = int(open('/proc/self/status').read().split('CapEff:')[1].split()[0], 16)\n"
        "assert not effective & (1 << 19), 'CAP_SYS_PTRACE must be gone'\n"
        "config = SandboxConfig(mode='bwrap', allow_unsandboxed=False, cgroup_mode='supervisor')\n"
        "outcome = run_in(config, find_runtime(), TMPFS_CODE, memory_bytes=256 * MiB, writable_bytes=256 * MiB)\n"
        "print(json.dumps([outcome.termination.value, outcome.log]))\n"
    )
    done = subprocess.run(
        [setpriv, "--bounding-set", bounding, "--", sys.executable, "-c", worker],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=Path(__file__).parents[3],
    )
    assert done.returncode == 0, done.stderr
    termination, log = json.loads(done.stdout.strip().splitlines()[-1])
    assert termination == Termination.MEMORY_LIMIT.value, log


def test_tmpfs_pages_are_charged_to_the_writers_group(cgroup_config: SandboxConfig, runtime: Runtime) -> None:
    # 96 MiB written 1 MiB at a time: the process itself never holds more than a few MiB, so a group
    # peak above 96 MiB can only come from the tmpfs pages (the kernel charges them to the writer).
    code = "block = b'x' * (1 << 20)\nwith open('/dev/shm/kept', 'wb') as f:\n    for _ in range(96): f.write(block)\n"
    outcome = run_in(cgroup_config, runtime, code, memory_bytes=256 * MiB, writable_bytes=128 * MiB)
    assert outcome.termination is Termination.EXITED and outcome.exit_code == 0, outcome.log
    assert outcome.peak_memory_bytes >= 96 * MiB


def test_fork_bomb_is_stopped_by_the_runs_pids_limit(
    cgroup_config: SandboxConfig, runtime: Runtime, marker: str
) -> None:
    code = (
        f"import os, time  # {marker}\n"
        "n = 0\n"
        "try:\n"
        "    while n < 500:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(3600); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('STOPPED AT', n, e.errno)\n"
    )
    outcome = run_in(cgroup_config, runtime, code, processes=16)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert int(outcome.log.split("STOPPED AT")[1].split()[0]) < 16
    assert outcome.pids_refused > 0  # the group's pids limit refused the forks, not RLIMIT_NPROC
    assert processes_with(marker) == []


@pytest.mark.parametrize(
    ("code", "limits", "ended"),
    [
        ("print('done')", {}, Termination.EXITED),
        ("import time; time.sleep(3600)", {"wall_seconds": 3}, Termination.WALL_TIMEOUT),
        (CHILDREN_CODE.format(size=100 * MiB), {"memory_bytes": 192 * MiB}, Termination.MEMORY_LIMIT),
    ],
)
def test_the_group_is_removed_after_the_run(
    cgroup_config: SandboxConfig, runtime: Runtime, code: str, limits: dict[str, object], ended: Termination
) -> None:
    layout = detect_accounting(cgroup_config)
    assert our_groups(layout) == []
    outcome = run_in(cgroup_config, runtime, code, **limits)
    assert outcome.termination is ended, outcome.log
    assert outcome.accounting == layout.accounting.value
    assert our_groups(layout) == []


def test_groups_of_dead_workers_are_swept_and_live_ones_kept(cgroup_config: SandboxConfig, marker: str) -> None:
    # A parent of its own, so no other test process sweeps the dead worker's group first.
    cgroup_config = dataclasses.replace(cgroup_config, cgroup_parent=f"katakana-sandbox-test-{os.getpid()}")
    layout = detect_accounting(cgroup_config)
    # A worker that makes a group, leaves a process in it, and dies without cleaning up.
    worker_code = (
        "import os, subprocess, sys\n"
        "from scorer.sandbox.cgroup import detect_layout, RunGroup\n"
        "from scorer.sandbox.types import Limits\n"
        f"layout = detect_layout({cgroup_config.cgroup_mode!r}, {cgroup_config.cgroup_parent!r})\n"
        "group = RunGroup.create(layout, Limits())\n"
        "def join():\n"
        "    for procs in group.procs_files(): open(procs, 'w').write(str(os.getpid()))\n"
        f"subprocess.Popen(['/usr/bin/sleep', {marker!r}], preexec_fn=join, start_new_session=True,\n"
        "                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(group.directories[0][1].name, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    worker = subprocess.run(
        [sys.executable, "-c", worker_code], capture_output=True, text=True, check=False, timeout=120
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    name = worker.stdout.strip()
    assert all((parent / name).is_dir() for _, parent in layout.parents)
    assert processes_with(marker) != []
    live = RunGroup.create(layout, Limits())  # ours: its worker (this process) is alive
    try:
        assert name in sweep_stale(layout)
        assert not any((parent / name).exists() for _, parent in layout.parents)
        assert wait_until(lambda: processes_with(marker) == [])
        assert all(directory.is_dir() for _, directory in live.directories)
    finally:
        live.remove()
        for _, parent in layout.parents:
            parent.rmdir()


def test_a_forced_cgroup_mode_the_host_lacks_is_refused(config: SandboxConfig) -> None:
    for mode in ("v2", "v1"):
        try:
            detect_layout(mode, config.cgroup_parent)
        except CgroupUnusable:
            missing = mode
            break
    else:
        pytest.skip("this host has both cgroup modes")
    with pytest.raises(SandboxUnavailable, match="unusable"):
        detect_accounting(dataclasses.replace(config, cgroup_mode=missing))  # type: ignore[arg-type]
