"""Sandboxed scoring vs calling predict in-process, side by side in one run.

For each example submission (NumPy MLP and CNN), on the same 14,500 synthetic test images:
- bare: the reference runtime imports the entry and calls predict on chunks of 500, timed around the
  predict calls only (the least a scorer could possibly cost);
- sandboxed: the whole of ``score_submission`` (zip intake, bubblewrap, interpreter start, NumPy
  import, model load, predict, validation, metrics), as the worker runs it.
It prints the median of --repeat runs of each, the ratio and the absolute overhead.

    .venv/bin/python bench/sandbox_overhead.py [--repeat 5] [--quick]

Targets from the issue: overhead ≤ 0.5 s per submission, ratio ≤ 1.10 for the CNN example.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from examples.build_examples import build as build_examples  # noqa: E402
from scorer.dataset import write_dataset  # noqa: E402
from scorer.pipeline import ScoringConfig, score_submission  # noqa: E402
from scorer.runtime import find_runtime  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="quick-trained examples (same network sizes)")
    args = parser.parse_args()

    config = ScoringConfig(runtime=find_runtime())
    threads = str(config.limits.cpus)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        write_dataset(data_dir, seed=0)
        zips = build_examples(Path(tmp) / "examples", data_dir=data_dir, quick=args.quick, seed=0)
        test_data, test_labels = data_dir / "test_data.npy", data_dir / "test_label.npy"
        print(f"runtime {config.runtime.python}, {threads} BLAS thread(s), {args.repeat} runs each, medians")
        print(
            f"{'example':8} {'bare predict':>13} {'sandboxed':>10} {'in-sandbox predict':>19} "
            f"{'ratio':>6} {'overhead':>9} {'accuracy':>9}"
        )
        for name in ("mlp", "cnn"):
            zip_path = zips[name]
            bare, boxed, inner = [], [], []
            accuracy = None
            for _ in range(args.repeat):
                bare.append(bare_predict_seconds(zip_path, test_data, str(config.runtime.python), threads))
                started = time.perf_counter()
                report = score_submission(zip_path, test_data=test_data, test_labels=test_labels, config=config)
                boxed.append(time.perf_counter() - started)
                if report.status != "succeeded":
                    raise SystemExit(f"{name} failed: {report.to_json()}")
                inner.append(report.facts.predict_seconds or 0.0)
                accuracy = report.accuracy
            b, s, i = statistics.median(bare), statistics.median(boxed), statistics.median(inner)
            print(
                f"{name:8} {b:12.3f}s {s:9.3f}s {i:18.3f}s {s / b:6.2f} {s - b:8.3f}s {accuracy:9.4f}"
                f"   ({report.facts.isolation})"
            )


if __name__ == "__main__":
    main()
