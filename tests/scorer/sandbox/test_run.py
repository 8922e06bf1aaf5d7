"""The basic contract of run_sandboxed: exit codes, the result channel, output, accounting, setup errors."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scorer.runtime import Runtime
from scorer.sandbox import (
    Bind,
    Isolation,
    SandboxConfig,
    SandboxOutcome,
    SandboxRequest,
    SandboxUnavailable,
    Termination,
    detect_isolation,
    run_sandboxed,
)
from scorer.sandbox.types import KiB, MiB

from .conftest import SANDBOX_ENV, TEST_LIMITS, RunPy


def test_plain_success_passes_output_and_result(run_py: RunPy) -> None:
    outcome = run_py("import os, sys; print('hello'); sys.stdout.flush(); os.write(3, b'the result')")
    assert outcome.termination is Termination.EXITED
    assert outcome.exit_code == 0
    assert outcome.isolation is Isolation.BWRAP
    assert outcome.log.strip() == "hello"
    assert outcome.result == b"the result"
    assert outcome.setup_error == ""


def test_exit_code_passes_through(run_py: RunPy) -> None:
    outcome = run_py("import sys; sys.exit(7)")
    assert outcome.termination is Termination.EXITED
    assert outcome.exit_code == 7


def test_stdout_and_stderr_are_merged(run_py: RunPy) -> None:
    outcome = run_py("import sys; print('out', flush=True); print('err', file=sys.stderr, flush=True)")
    assert outcome.log.split() == ["out", "err"]


def test_a_signal_death_is_reported_with_its_signal(run_py: RunPy) -> None:
    outcome = run_py("import os, signal; os.kill(os.getpid(), signal.SIGABRT)")
    assert outcome.termination is Termination.SIGNALLED
    assert outcome.signal == 6


def test_long_output_keeps_head_and_tail(run_py: RunPy) -> None:
    code = "import sys\nfor i in range(20000): print(f'line {i:05d}')\n"
    outcome = run_py(code, log_keep_bytes=1 * KiB)
    assert outcome.termination is Termination.EXITED
    assert outcome.log_total_bytes == 20000 * len("line 00000\n")
    assert len(outcome.log_head) == len(outcome.log_tail) == 1 * KiB
    assert outcome.log_head.startswith(b"line 00000\n")
    assert outcome.log_tail.endswith(b"line 19999\n")
    assert "bytes of output omitted" in outcome.log


def test_the_environment_is_exactly_the_requested_one(runtime: Runtime, config: SandboxConfig) -> None:
    env_path = "/usr/bin/env"
    request = SandboxRequest(argv=[env_path], env={"ONLY": "this"}, limits=TEST_LIMITS)
    outcome = run_sandboxed(request, config)
    assert outcome.termination is Termination.EXITED
    names = {line.split("=", 1)[0] for line in outcome.log.splitlines()}
    # PWD comes from bwrap's --chdir; the thread caps are added when the caller did not set them.
    assert names <= {
        "ONLY",
        "PWD",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    }
    assert "ONLY=this" in outcome.log.splitlines()


def test_parent_secrets_are_not_in_any_environ(run_py: RunPy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATAKANA_TEST_SECRET", "s3cr3t-canary-value")
    code = (
        "import glob, os\n"
        "hits = [p for p in glob.glob('/proc/*/environ') if b's3cr3t-canary' in open(p, 'rb').read()]\n"
        "hits += [k for k, v in os.environ.items() if 's3cr3t-canary' in v]\n"
        "print('HITS', hits)\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "HITS []" in outcome.log


def test_peak_memory_and_cpu_reflect_the_workload(run_py: RunPy) -> None:
    code = (
        "import time\n"
        "block = bytearray(200 * 1024 * 1024)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "end = time.process_time() + 0.5\n"
        "while time.process_time() < end: pass\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert outcome.peak_memory_bytes >= 150 * MiB
    assert outcome.cpu_s >= 0.4  # at least the busy loop's CPU time (a lower bound, not a timing)


def test_missing_bind_source_is_a_setup_failure(run_py: RunPy, shared_dir: Path) -> None:
    outcome = run_py("print('ran')", binds=[Bind(shared_dir / "does-not-exist", "/data")])
    assert outcome.termination is Termination.SETUP_FAILED
    assert "does-not-exist" in outcome.setup_error
    assert "ran" not in outcome.log


@pytest.mark.skipif(os.geteuid() != 0, reason="only a pool uid (worker running as root) lacks access")
def test_bind_unreadable_by_the_pool_uid_is_a_setup_failure(run_py: RunPy, shared_dir: Path) -> None:
    private = shared_dir / "private"
    (private / "sub").mkdir(parents=True)
    private.chmod(stat.S_IRWXU)  # 0700, like /root
    outcome = run_py("print('ran')", binds=[Bind(private / "sub", "/data")])
    assert outcome.termination is Termination.SETUP_FAILED
    assert "Permission denied" in outcome.setup_error


def test_binds_are_visible_read_only(run_py: RunPy, shared_dir: Path) -> None:
    (shared_dir / "model.txt").write_text("weights")
    (shared_dir / "model.txt").chmod(0o644)
    code = (
        "print(open('/submission/model.txt').read())\n"
        "try:\n"
        "    open('/submission/new.txt', 'w')\n"
        "except OSError as e:\n"
        "    print('WRITE', e.errno)\n"
    )
    outcome = run_py(code, binds=[Bind(shared_dir, "/submission")])
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "weights" in outcome.log
    assert "WRITE 30" in outcome.log  # EROFS
    assert not (shared_dir / "new.txt").exists()


def test_scientific_stack_works_under_the_filter(run_py: RunPy) -> None:
    code = (
        "import os\n"
        "os.environ['MPLCONFIGDIR'] = '/tmp/mpl'\n"
        "import numpy as np, scipy.linalg, matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "a = np.random.default_rng(0).normal(size=(50, 50))\n"
        "print('DET', scipy.linalg.det(a @ a.T) > 0)\n"
        "plt.plot([1, 2, 3]); plt.savefig('/tmp/plot.png')\n"
        "print('PNG', os.path.getsize('/tmp/plot.png') > 0)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(int(np.ones(3).sum()))\n"
        "print('CHILD', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
    )
    outcome = run_py(code, memory_bytes=1024 * MiB)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "DET True" in outcome.log
    assert "PNG True" in outcome.log
    assert "CHILD 3" in outcome.log


def test_concurrent_runs_from_threads_stay_apart(runtime: Runtime, config: SandboxConfig) -> None:
    def one(i: int) -> SandboxOutcome:
        code = f"import os, time\ntime.sleep(0.5)\nos.write(3, b'run {i}')\n"
        request = SandboxRequest(
            argv=[str(runtime.python), "-I", "-c", code],
            binds=runtime.binds(),
            env=SANDBOX_ENV,
            limits=TEST_LIMITS,
        )
        return run_sandboxed(request, config)

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(one, range(3)))
    assert [o.termination for o in outcomes] == [Termination.EXITED] * 3
    assert [o.result for o in outcomes] == [b"run 0", b"run 1", b"run 2"]


def test_a_bwrap_that_cannot_sandbox_makes_the_sandbox_unavailable() -> None:
    # /usr/bin/false stands in for a bwrap that fails to set up namespaces on this host.
    broken = SandboxConfig(mode="bwrap", bwrap_path="false")
    with pytest.raises(SandboxUnavailable, match="cannot create the sandbox"):
        detect_isolation(broken)
    assert detect_isolation(SandboxConfig(mode="auto", bwrap_path="false")) is Isolation.UNSANDBOXED
