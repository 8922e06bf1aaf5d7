"""What the bounds around trainee input cost, and what they hold, side by side in one run.

1. the bounded check: ``_prepare`` (intake, notebook, static check) of a small zip (an entry and a
   2 MiB weights file) in this process and in a bounded child (scorer.bounded), alternating, in a
   process of the command line's size and again with ``--ballast`` MiB more resident (a worker
   that has grown): medians of --runs;
2. compile bombs through ``python -m scorer check`` (a fresh process each, under GNU ``time``): the
   peak resident size of its whole tree (the bounded child and the sandbox included) and the wall
   time, for a zip of
   4 KB (``"x=[1,2,3]\\n"`` 200,000 times), one of about 100 KB (5,000,000 times) and an entry just
   under the 256 KiB source limit;
3. the supervisor's watch: one call's cost while a run of five processes lives, in supervisor and
   in cgroup mode.

    .venv/bin/python bench/hardening_cost.py [--runs 40] [--ballast 400]

Never point part 2 at a tree without the bounds: the 100 KB zip took 19.5 GB there. The load
average is printed; quote it with the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scorer.bounded import run_bounded  # noqa: E402
from scorer.pipeline import ScoringConfig, _prepare  # noqa: E402
from scorer.runtime import find_runtime  # noqa: E402
from scorer.sandbox import (  # noqa: E402
    SandboxConfig,
    SandboxOutcome,
    SandboxRequest,
    SandboxUnavailable,
    start_sandboxed,
)
from scorer.sandbox.types import Limits, MiB  # noqa: E402
from scorer.warm import new_run_dir  # noqa: E402

ZEROS = "import numpy as np\n\ndef predict(test_data):\n    return np.zeros(len(test_data), dtype=int)\n"
BOMB_LINE = "x=[1,2,3]\n"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def resident_mb() -> int:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024


def bounded_check(zip_path: Path, config: ScoringConfig, runs: int) -> tuple[float, float]:
    """Median milliseconds of _prepare in this process and in a bounded child, alternating."""
    times: dict[str, list[float]] = {"direct": [], "bounded": []}
    for _ in range(runs):
        for how in times:
            run_dir = new_run_dir(None)
            started = time.perf_counter()
            if how == "direct":
                _prepare(zip_path, run_dir, config)
            else:
                run_bounded(_prepare, zip_path, run_dir, config, limits=config.static)
            times[how].append((time.perf_counter() - started) * 1000)
            shutil.rmtree(run_dir)
    return statistics.median(times["direct"]), statistics.median(times["bounded"])


def bomb(path: Path, lines: int) -> Path:
    source = "import numpy as np\n" + BOMB_LINE * lines + "def predict(d):\n    return np.zeros(len(d), dtype=int)\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("bomb/submit_katakana.py", source)
    return path


def check_tree(zip_path: Path) -> tuple[str, int, float]:
    """``python -m scorer check`` under GNU time: its verdict line, the peak RSS of its tree (MB; a
    process's peak counts from its fork, so the one measured is forked by the small ``time``, not
    by this process), and its seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "PEAK %M", sys.executable, "-m", "scorer", "--lang", "en", "check", str(zip_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    lines = (done.stdout + done.stderr).splitlines()
    peak = next(int(line.split()[1]) for line in lines if line.startswith("PEAK "))
    verdict = next((line for line in lines if line.startswith("[")), lines[0])
    return verdict[:60], peak // 1024, seconds


def watch_cost(mode: str) -> float | None:
    """Median milliseconds of one supervision call while a run of five processes lives."""
    runtime = find_runtime()
    config = SandboxConfig(mode="bwrap", allow_unsandboxed=False, cgroup_mode=mode)  # type: ignore[arg-type]
    code = (
        "import numpy, os, time\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60); os._exit(0)\n"
        "time.sleep(60)\n"
    )
    request = SandboxRequest(
        argv=[str(runtime.python), "-c", code],
        binds=runtime.binds(),
        env={"PATH": "/usr/bin:/bin"},
        limits=Limits(wall_seconds=60, memory_bytes=1024 * MiB),
        idle_seconds=60,
    )
    try:
        started = start_sandboxed(request, config)
    except SandboxUnavailable:
        return None
    if isinstance(started, SandboxOutcome):
        return None
    try:
        time.sleep(3)  # the processes are up, the mounts found
        calls = []
        for _ in range(200):
            begin = time.perf_counter()
            started.limiter.watch()
            calls.append((time.perf_counter() - begin) * 1000)
        return statistics.median(calls)
    finally:
        started.discard()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--ballast", type=int, default=400, help="MiB made resident for the worker-sized round")
    args = parser.parse_args()
    print(load())
    config = ScoringConfig(runtime=find_runtime())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        small = folder / "small.zip"
        with zipfile.ZipFile(small, "w") as zf:
            zf.writestr("s/submit_katakana.py", ZEROS)
            zf.writestr("s/model.npy", os.urandom(2 * MiB))
        for name, lines in (("4 KB", 200_000), ("100 KB", 5_000_000), ("under the limit", 26_000)):
            zip_path = bomb(folder / f"bomb-{lines}.zip", lines)
            verdict, peak, seconds = check_tree(zip_path)
            size = zip_path.stat().st_size / 1024
            print(f"2. {name} bomb ({size:.0f} KB zipped): {verdict!r}, peak {peak} MB, {seconds:.1f} s; {load()}")
        direct, bounded = bounded_check(small, config, args.runs)
        figures = f"{direct:.1f} ms in-process, {bounded:.1f} ms bounded"
        print(f"1. bounded check, {resident_mb()} MB resident: {figures}; {load()}")
        ballast = bytearray(args.ballast * MiB)
        for i in range(0, len(ballast), 4096):
            ballast[i] = 1
        direct, bounded = bounded_check(small, config, args.runs)
        figures = f"{direct:.1f} ms in-process, {bounded:.1f} ms bounded"
        print(f"   {resident_mb()} MB resident: {figures}; {load()}")
        del ballast
    for mode in ("supervisor", "auto"):
        cost = watch_cost(mode)
        shown = "n/a" if cost is None else f"{cost:.2f} ms"
        print(f"3. watch, {mode}: median {shown} per call; {load()}")


if __name__ == "__main__":
    main()
