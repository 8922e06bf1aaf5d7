"""Limits: each way of overrunning one ends the run with the right termination, never the host's."""

from __future__ import annotations

from scorer.sandbox import Termination
from scorer.sandbox.types import KiB, MiB

from .conftest import RunPy, processes_with


def test_endless_sleep_hits_the_wall_clock(run_py: RunPy) -> None:
    # 5 s: sandbox setup and interpreter start must fit before the kill, even on a loaded machine.
    outcome = run_py("import time; print('sleeping', flush=True); time.sleep(3600)", wall_seconds=5)
    assert outcome.termination is Termination.WALL_TIMEOUT
    assert "sleeping" in outcome.log  # output before the kill is kept


def test_busy_loop_is_stopped_by_wall_or_cpu_limit(run_py: RunPy) -> None:
    outcome = run_py("while True: pass", wall_seconds=3)
    assert outcome.termination in (Termination.WALL_TIMEOUT, Termination.CPU_TIMEOUT)


def test_cpu_limit_is_reported_as_cpu_timeout(run_py: RunPy) -> None:
    outcome = run_py("while True: pass", cpu_seconds=1, wall_seconds=60)
    assert outcome.termination is Termination.CPU_TIMEOUT


def test_memory_bomb_gets_memory_error_not_the_host(run_py: RunPy) -> None:
    code = (
        "blocks = []\n"
        "try:\n"
        "    while True: blocks.append(bytearray(64 * 1024 * 1024))\n"
        "except MemoryError:\n"
        "    print('MEMORY ERROR after', len(blocks) * 64, 'MiB')\n"
    )
    outcome = run_py(code, memory_bytes=256 * MiB)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "MEMORY ERROR" in outcome.log
    allocated_mib = int(outcome.log.split("MEMORY ERROR after")[1].split()[0])
    assert allocated_mib < 256  # the limit held: the 256 MiB address space ran out first


def test_numpy_allocation_over_the_limit_fails_cleanly(run_py: RunPy) -> None:
    outcome = run_py("import numpy as np; np.ones((1024, 1024, 1024))", memory_bytes=512 * MiB)
    assert outcome.termination is Termination.EXITED
    assert outcome.exit_code == 1
    assert "MemoryError" in outcome.log or "Unable to allocate" in outcome.log


def test_fork_bomb_is_bounded_and_cleaned_up(run_py: RunPy, marker: str) -> None:
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
    outcome = run_py(code, processes=16)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "STOPPED AT" in outcome.log
    stopped_at = int(outcome.log.split("STOPPED AT")[1].split()[0])
    assert stopped_at < 16
    assert processes_with(marker) == []


def test_stdout_flood_is_stopped_as_output_limit(run_py: RunPy) -> None:
    outcome = run_py(
        "import sys\nwhile True: sys.stdout.write('x' * 8192)", output_bytes=1 * MiB, log_keep_bytes=4 * KiB
    )
    assert outcome.termination is Termination.OUTPUT_LIMIT
    assert outcome.log_total_bytes > 1 * MiB
    assert len(outcome.log_head) == len(outcome.log_tail) == 4 * KiB


def test_result_flood_is_stopped_as_result_limit(run_py: RunPy) -> None:
    code = "import os\nwhile True: os.write(3, b'r' * 65536)"
    outcome = run_py(code, result_bytes=256 * KiB)
    assert outcome.termination is Termination.RESULT_LIMIT
    assert len(outcome.result) == 256 * KiB


def test_a_big_result_within_the_limit_arrives_whole(run_py: RunPy) -> None:
    # Bigger than any pipe buffer: the run must not deadlock on a full pipe.
    code = (
        "import os, sys\ndata = b'0123456789abcdef' * (1 << 18)\nsys.stdout.write('x' * 300000)\n"
        "view = memoryview(data)\nwhile view: view = view[os.write(3, view):]\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert outcome.result == b"0123456789abcdef" * (1 << 18)
    assert outcome.log_total_bytes == 300000


def test_file_size_limit_stops_big_files(run_py: RunPy) -> None:
    # Python ignores SIGXFSZ and gets EFBIG; with the default action restored, the write kills it.
    code = (
        "import signal\n"
        "try:\n"
        "    open('/tmp/big', 'wb').write(b'x' * (2 * 1024 * 1024))\n"
        "except OSError as e:\n"
        "    print('PYTHON', e.errno, flush=True)\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
        "open('/tmp/big', 'ab').write(b'x')\n"
        "print('SURVIVED')\n"
    )
    outcome = run_py(code, writable_bytes=1 * MiB)
    assert "PYTHON 27" in outcome.log  # EFBIG
    assert "SURVIVED" not in outcome.log
    assert outcome.termination is Termination.FILE_SIZE_LIMIT
