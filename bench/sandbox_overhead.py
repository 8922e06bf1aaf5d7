"""What a sandboxed run costs beyond the trainee's own code, cold and pre-warmed, side by side in one run.

Three figures, on the same machine in the same minute:
1. fixed cost: ``score_submission`` of a trivial submission (predict returns zeros; its import is
   NumPy's, already loaded by the harness) minus its in-sandbox predict time, over --runs runs:
   cold (the sandbox started after intake, as ``python -m scorer run`` does) and warm (a
   ``WarmSlot`` warmed off the clock, as a worker does between tasks; only the hand-over and what
   follows are timed). Median and p95.
2. example models (NumPy MLP and CNN) on the 14,500 synthetic test images: the bare predict (the
   reference runtime imports the entry and calls predict on chunks of 500, timed around the calls
   only) against the whole of ``score_submission``, cold and warm; medians of --repeat, and the ratio.
   Under load a separate process's bare predict is not comparable, so the warm runs are also
   compared with their own predict time measured inside the sandbox (warm/inside, run by run).
3. ``python -m scorer check`` on the MLP example from the command line (a fresh interpreter each
   time, the runtime probe's cache already filled by a first call): median wall time.

    .venv/bin/python bench/sandbox_overhead.py [--runs 30] [--repeat 5] [--quick]

Targets: fixed cost on the critical path ≤ 20 ms warm; CNN scoring ≤ 1.02× its bare predict;
``scorer check`` ≤ 0.6 s. Note the machine's load (printed) when quoting figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from examples.build_examples import build as build_examples  # noqa: E402
from scorer.dataset import write_dataset  # noqa: E402
from scorer.pipeline import ScoringConfig, score_submission, scoring_spec  # noqa: E402
from scorer.report import ScoreReport  # noqa: E402
from scorer.runtime import find_runtime  # noqa: E402
from scorer.warm import WarmSlot  # noqa: E402

BARE = r"""
import importlib.util, json, os, sys, time
import numpy as np
entry, data = sys.argv[1], sys.argv[2]
os.chdir(os.path.dirname(entry)); sys.path.insert(0, os.path.dirname(entry))
spec = importlib.util.spec_from_file_location("submit_katakana", entry)
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
images = np.load(data)
started = time.perf_counter()
for i in range(0, len(images), 500):
    module.predict(np.array(images[i:i + 500]))
print(json.dumps({"predict_seconds": time.perf_counter() - started}))
"""

TRIVIAL = "import numpy as np\n\ndef predict(test_data):\n    return np.zeros(len(test_data), dtype=int)\n"


def bare_predict_seconds(zip_path: Path, data: Path, python: str, threads: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        entry = next(Path(tmp).rglob("submit_katakana.py"))
        env = {
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
        }
        out = subprocess.run(
            [python, "-c", BARE, str(entry), str(data)], capture_output=True, text=True, env=env, check=True
        )
        return float(json.loads(out.stdout)["predict_seconds"])


def timed_score(
    zip_path: Path, data: Path, labels: Path, config: ScoringConfig, slot: WarmSlot | None
) -> tuple[float, ScoreReport]:
    """Wall time of one ``score_submission``; with a slot, warmed (and ready) before the clock starts."""
    if slot is not None:
        if not slot.warm(scoring_spec(config, data)):
            raise SystemExit("could not warm a sandbox (is bubblewrap usable here?)")
        assert slot.box is not None and slot.box.started is not None
        slot.box.started.ready(timeout=120)
    started = time.perf_counter()
    report = score_submission(zip_path, test_data=data, test_labels=labels, config=config, warm=slot)
    elapsed = time.perf_counter() - started
    if report.status != "succeeded":
        raise SystemExit(f"{zip_path.name} failed: {report.to_json()}")
    if slot is not None and slot.served == 0:
        raise SystemExit("the warm sandbox was not used")
    return elapsed, report


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def alternate(runs: int, measure: Callable[[bool], float]) -> tuple[list[float], list[float]]:
    """Cold and warm interleaved, so a change in the machine's load hits both alike."""
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(runs):
        cold.append(measure(False))
        warm.append(measure(True))
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30, help="runs of the trivial submission, each path")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each example model, each path")
    parser.add_argument("--quick", action="store_true", help="quick-trained examples (same network sizes)")
    args = parser.parse_args()

    config = ScoringConfig(runtime=find_runtime())
    threads = str(config.limits.cpus)
    python = str(config.runtime.python)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True, check=False).stdout.strip()}")
    print(f"runtime {python}, {threads} BLAS thread(s), {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        write_dataset(data_dir, seed=0)
        zips = build_examples(Path(tmp) / "examples", data_dir=data_dir, quick=args.quick, seed=0)
        test_data, test_labels = data_dir / "test_data.npy", data_dir / "test_label.npy"
        trivial = Path(tmp) / "trivial.zip"
        with zipfile.ZipFile(trivial, "w") as zf:
            zf.writestr("trivial/submit_katakana.py", TRIVIAL)

        # 1. Fixed cost of a run beyond import + predict (the trivial model's predict is ~0).
        def fixed(warm: bool) -> float:
            slot = WarmSlot() if warm else None
            elapsed, report = timed_score(trivial, test_data, test_labels, config, slot)
            return elapsed - (report.facts.predict_seconds or 0.0)

        timed_score(trivial, test_data, test_labels, config, None)  # first run: probes, caches
        cold, warm = alternate(args.runs, fixed)
        print(f"\nfixed cost of a run beyond predict ({args.runs} runs each, 14,500 images, trivial model):")
        print(f"  {'path':6} {'median':>9} {'p95':>9}")
        for name, values in (("cold", cold), ("warm", warm)):
            print(f"  {name:6} {1000 * statistics.median(values):7.1f}ms {1000 * p95(values):7.1f}ms")

        # 2. Example models: bare predict vs the whole scoring, cold and warm.
        print(f"\nexample models ({args.repeat} runs each, medians):")
        print(
            f"  {'example':8} {'bare predict':>13} {'cold':>9} {'ratio':>6} {'warm':>9} {'ratio':>6}"
            f" {'inside':>9} {'warm/inside':>12} {'accuracy':>9}"
        )
        for name in ("mlp", "cnn"):
            bare = [bare_predict_seconds(zips[name], test_data, python, threads) for _ in range(args.repeat)]

            inside: list[float] = []  # predict timed inside the sandbox, in the very warm runs measured

            def whole(warm: bool, zip_path: Path = zips[name], inside: list[float] = inside) -> float:
                elapsed, report = timed_score(zip_path, test_data, test_labels, config, WarmSlot() if warm else None)
                if warm:
                    inside.append(report.facts.predict_seconds or 0.0)
                return elapsed

            cold_runs, warm_runs = alternate(args.repeat, whole)
            accuracy = timed_score(zips[name], test_data, test_labels, config, None)[1].accuracy or 0.0
            b, c, w = statistics.median(bare), statistics.median(cold_runs), statistics.median(warm_runs)
            own = statistics.median(w_run / i for w_run, i in zip(warm_runs, inside, strict=True) if i > 0)
            print(
                f"  {name:8} {b:12.3f}s {c:8.3f}s {c / b:6.3f} {w:8.3f}s {w / b:6.3f}"
                f" {statistics.median(inside):8.3f}s {own:12.3f} {accuracy:9.4f}"
            )

        # 3. The local checker from the command line.
        check = [sys.executable, "-m", "scorer", "check", str(zips["mlp"])]
        # As a trainee runs it: bytecode cached (a shell with PYTHONDONTWRITEBYTECODE would
        # recompile the scorer on every call), the first call filling the runtime probe's cache.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run(check, capture_output=True, check=True, cwd=REPO, env=env)
        walls = []
        for _ in range(max(3, args.repeat)):
            started = time.perf_counter()
            subprocess.run(check, capture_output=True, check=True, cwd=REPO, env=env)
            walls.append(time.perf_counter() - started)
        median, fastest = statistics.median(walls), min(walls)
        print(f"\npython -m scorer check (mlp example): median {median:.2f} s, min {fastest:.2f} s")
        print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True, check=False).stdout.strip()}")


if __name__ == "__main__":
    main()
