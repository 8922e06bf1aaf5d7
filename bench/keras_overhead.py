"""What a Keras run costs beyond the trainee's own model load and predict, cold and pre-warmed, in
the TensorFlow runtime; the sibling of bench/sandbox_overhead.py (the NumPy runtime).

Two figures, on the same machine in the same minutes:
1. fixed cost: ``score_submission`` of a Keras submission that loads a small .keras model and predicts
   the 14,500 synthetic test images, minus the model's load (timed by the entry itself, around
   ``keras.models.load_model``) and the predict time measured inside the sandbox, over --runs runs:
   cold (the sandbox and TensorFlow's import started after intake) and warm (a ``WarmSlot`` warmed
   off the clock, TensorFlow already imported, as a worker keeps one). Median and p95.
2. Keras CNN scoring of the 14,500 images against its bare ``model.predict``: the TensorFlow runtime
   imports the entry outside any sandbox and calls predict on chunks of 500 (timed around the calls
   only), with the same thread caps; medians of --repeat, the ratio to the warm scoring as a whole,
   and to the predict time measured inside the sandbox in the same runs (the load-proof ratio).

    .venv/bin/python bench/keras_overhead.py [--runs 5] [--repeat 5]

Targets: fixed cost ≤ 50 ms warm; scoring ≤ 1.05× the bare predict. The models are trained first,
once, by tests/scorer/keras_code/build_models.py (the Keras test corpus's). Note the machine's load
(printed) when quoting figures: a cold run's TensorFlow import takes seconds, more under load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.sandbox_overhead import alternate, p95  # noqa: E402
from scorer.dataset import write_dataset  # noqa: E402
from scorer.pipeline import ScoringConfig, score_submission, scoring_spec  # noqa: E402
from scorer.report import ScoreReport  # noqa: E402
from scorer.runtime import Runtime, find_runtime, find_tensorflow_runtime  # noqa: E402
from scorer.warm import WarmSlot  # noqa: E402

BUILD_MODELS = REPO / "tests" / "scorer" / "keras_code" / "build_models.py"

# The entry times its own model load; the harness times predict.
ENTRY = """\
import time
import numpy as np
import keras

started = time.perf_counter()
model = keras.models.load_model("katakana_model.keras")
print("LOAD", time.perf_counter() - started)


def predict(test_data):
    x = test_data.transpose(0, 2, 3, 1) / 255
    return np.argmax(model.predict(x, verbose=0), axis=1)
"""

BARE = r"""
import importlib.util, json, os, sys, time
import numpy as np
entry, data = sys.argv[1], sys.argv[2]
os.chdir(os.path.dirname(entry)); sys.path.insert(0, os.path.dirname(entry))
spec = importlib.util.spec_from_file_location("submit_katakana", entry)
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
images = np.load(data).astype(np.float32)
started = time.perf_counter()
for i in range(0, len(images), 500):
    module.predict(images[i:i + 500])
print(json.dumps({"predict_seconds": time.perf_counter() - started}))
"""


def train_models(data_dir: Path, out: Path, tensorflow: Runtime) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(out), "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([str(tensorflow.python), str(BUILD_MODELS), str(data_dir), str(out)], check=True, env=env)


def keras_zip(path: Path, model: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("keras_cnn/submit_katakana.py", ENTRY)
        zf.write(model, "keras_cnn/katakana_model.keras")
    return path


def bare_predict_seconds(zip_path: Path, data: Path, tensorflow: Runtime, threads: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        entry = next(Path(tmp).rglob("submit_katakana.py"))
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TF_CPP_MIN_LOG_LEVEL": "2"}
        for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            env[name] = threads  # as the sandbox caps them (scorer/warm.py)
        out = subprocess.run(
            [str(tensorflow.python), "-c", BARE, str(entry), str(data)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return float(json.loads(out.stdout.strip().splitlines()[-1])["predict_seconds"])


def timed_score(
    zip_path: Path, data: Path, labels: Path, config: ScoringConfig, slot: WarmSlot | None
) -> tuple[float, ScoreReport]:
    """Wall time of one ``score_submission``; with a slot, warmed (TensorFlow imported) before the clock."""
    if slot is not None:
        spec = scoring_spec(config.using(config.tensorflow_runtime or config.runtime), data)
        if not slot.warm(spec):
            raise SystemExit("could not warm a sandbox (is bubblewrap usable here?)")
        box = slot.boxes[spec.runtime.name]
        assert box.started is not None
        box.started.ready(timeout=600)
    started = time.perf_counter()
    report = score_submission(zip_path, test_data=data, test_labels=labels, config=config, warm=slot)
    elapsed = time.perf_counter() - started
    if report.status != "succeeded" or report.runtime.get("name") != "tensorflow":
        raise SystemExit(f"{zip_path.name} failed: {report.to_json()}")
    if slot is not None and slot.served == 0:
        raise SystemExit("the warm sandbox was not used")
    return elapsed, report


def load_seconds(report: ScoreReport) -> float:
    found = re.search(r"^LOAD ([0-9.e-]+)$", report.log, re.MULTILINE)
    if found is None:
        raise SystemExit(f"the entry did not report its load time: {report.log[-500:]}")
    return float(found.group(1))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of the fixed-cost measure, each path")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the scoring against the bare predict")
    args = parser.parse_args()

    tensorflow = find_tensorflow_runtime()
    if tensorflow is None:
        raise SystemExit("the TensorFlow runtime is not installed: run scripts/setup.sh")
    config = ScoringConfig(runtime=find_runtime(), tensorflow_runtime=tensorflow)
    # The whole log (the entry's LOAD line): this is our own data, nothing hidden to protect.
    config = dataclasses.replace(config, disclosure=dataclasses.replace(config.disclosure, excerpt_bytes=None))
    threads = str(config.limits.cpus)
    print(f"uptime: {uptime()}")
    print(f"runtime {tensorflow.python}, {threads} thread(s) per pool, {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, models = Path(tmp) / "data", Path(tmp) / "models"
        write_dataset(data_dir, seed=0)
        started = time.perf_counter()
        train_models(data_dir, models, tensorflow)
        print(f"models trained in {time.perf_counter() - started:.1f} s")
        test_data, test_labels = data_dir / "test_data.npy", data_dir / "test_label.npy"
        archive = keras_zip(Path(tmp) / "keras_cnn.zip", models / "native.keras")

        # 1. Fixed cost beyond the model's load and predict.
        loads: list[float] = []
        predicts: list[float] = []
        in_sandbox: list[float] = []  # of the warm fixed cost: from the hand-over to the sandbox's end

        def fixed(warm: bool) -> float:
            elapsed, report = timed_score(archive, test_data, test_labels, config, WarmSlot() if warm else None)
            load, predict = load_seconds(report), report.facts.predict_seconds or 0.0
            if warm:
                loads.append(load)
                predicts.append(predict)
                in_sandbox.append(report.facts.sandbox_seconds - load - predict)
            return elapsed - load - predict

        cold, warm = alternate(args.runs, fixed)
        print(f"\nfixed cost of a Keras run beyond model load + predict ({args.runs} runs each, 14,500 images):")
        print(f"  {'path':6} {'median':>9} {'p95':>9}")
        for name, values in (("cold", cold), ("warm", warm)):
            print(f"  {name:6} {1000 * statistics.median(values):7.1f}ms {1000 * p95(values):7.1f}ms")
        print(f"  (model load {statistics.median(loads):.3f} s, predict {statistics.median(predicts):.3f} s, medians)")
        inside_ms = 1000 * statistics.median(in_sandbox)
        print(f"  warm: {inside_ms:.1f} ms of it in the sandbox (hand-over to its end), the rest the parent's")

        # 2. Scoring against the bare predict, in the same runtime.
        bare = [bare_predict_seconds(archive, test_data, tensorflow, threads) for _ in range(args.repeat)]
        wholes: list[float] = []
        inside: list[float] = []
        accuracy = 0.0
        for _ in range(args.repeat):
            elapsed, report = timed_score(archive, test_data, test_labels, config, WarmSlot())
            wholes.append(elapsed - load_seconds(report))  # the model's load is the trainee's, not predict
            inside.append(report.facts.predict_seconds or 0.0)
            accuracy = report.accuracy or 0.0
        b, w = statistics.median(bare), statistics.median(wholes)
        own = statistics.median(x / i for x, i in zip(wholes, inside, strict=True) if i > 0)
        print(f"\nKeras CNN on 14,500 images, warm ({args.repeat} runs each, medians; the model's load left out):")
        header = f"{'bare predict':>13} {'scoring':>9} {'ratio':>6} {'inside':>9} {'scoring/inside':>15}"
        print(f"  {header} {'accuracy':>9}")
        print(f"  {b:12.3f}s {w:8.3f}s {w / b:6.3f} {statistics.median(inside):8.3f}s {own:15.3f} {accuracy:9.4f}")
        print(f"\nuptime: {uptime()}")


if __name__ == "__main__":
    main()
