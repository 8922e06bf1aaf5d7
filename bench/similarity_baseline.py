"""How much do the mistakes of independent models agree, and how much those of copies?

Trains each example (examples/build_examples.py: the NumPy MLP and CNN) from several seeds on the
synthetic set, then makes copies of the first model: the same weights (as a re-zipped copy scores),
1 % of the parameters perturbed, and briefly fine-tuned from the copied weights. Every model is
evaluated through its own ``predict`` on the synthetic test set (the examples' own preprocessing,
so the figures follow any change to the data or the examples), and every pair is compared with
``scorer.similarity.compare``: error agreement (among images both got wrong, the share with the same
wrong class), the counts behind it, and the overall agreement. The similarity threshold's default
(``KATAKANA_SIMILARITY_THRESHOLD``) is chosen between the two groups these figures show.

    .venv/bin/python bench/similarity_baseline.py                 # full training (the figures in docs/benchmarks.md)
    .venv/bin/python bench/similarity_baseline.py --epochs 2      # the test suite's quick size
"""

from __future__ import annotations

import argparse
import itertools
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as in the sandbox; set before numpy loads

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from examples import build_examples as ex  # noqa: E402
from scorer.similarity import compare  # noqa: E402


def perturb(params: dict[str, np.ndarray], fraction: float, seed: int) -> dict[str, np.ndarray]:
    """``fraction`` of every array's entries get noise as large as that array's spread."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, value in params.items():
        value = value.copy()
        flat = value.reshape(-1)
        count = max(1, round(fraction * flat.size))
        chosen = rng.choice(flat.size, size=count, replace=False)
        spread = float(flat.std()) or 1e-3
        flat[chosen] += rng.normal(0.0, spread, size=count).astype(flat.dtype)
        out[key] = value
    return out


def fine_tune(name: str, data: ex.Data, start: dict[str, np.ndarray], epochs: int, lr_factor: float, seed: int) -> Any:
    """Continue training from ``start``, through the examples' own ``train`` (its own preprocessing)."""
    original: Callable[[str, int], tuple[Any, Any]] = ex._make_network

    def from_start(model: str, init_seed: int) -> tuple[Any, Any]:
        network, optimizer = original(model, init_seed)
        network.load_params({k: v.copy() for k, v in start.items()})
        optimizer.lr *= lr_factor
        return network, optimizer

    with mock.patch.object(ex, "_make_network", from_start):
        return ex.train(name, data.train, epochs=epochs, seed=seed)


def predictions(name: str, params: dict[str, np.ndarray], data: ex.Data, work: Path, tag: str) -> np.ndarray:
    """The class ids the example's own predict gives with ``params`` on the test split."""
    folder = work / tag / name
    ex._copy_example(name, folder)
    with open(folder / ex.MODEL_FILE, "wb") as f:
        pickle.dump(params, f, protocol=4)
    assert data.test is not None
    with ex.imported_submission(folder) as module:
        return ex.predict_in_chunks(module.predict, data.test.data)


def row(label: str, a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> tuple[str, float, int, int, float]:
    result = compare(a, b[None, :], labels)
    both, same = int(result.both_wrong[0]), int(result.same_wrong[0])
    return label, same / both if both else float("nan"), both, same, int(result.agree[0]) / result.total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=3, help="independently trained models per example")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every model (default: full)")
    parser.add_argument("--models", nargs="+", default=list(ex.EXAMPLE_NAMES), choices=ex.EXAMPLE_NAMES)
    parser.add_argument("--data", type=Path, default=None, help="folder with the .npy files (default: generated)")
    args = parser.parse_args(argv)

    data = ex.load_data(args.data) if args.data else ex.synthetic_data()
    if data.test is None:
        parser.error("the data folder has no test split")
    labels = data.test.labels
    print(f"{len(data.train.data)} training images, {len(labels)} test images; {args.seeds} seeds per model")
    rows: list[tuple[str, str, tuple[str, float, int, int, float]]] = []
    with tempfile.TemporaryDirectory(prefix="similarity-baseline-") as tmp:
        work = Path(tmp)
        for name in args.models:
            epochs = args.epochs or ex.FULL_EPOCHS[name]
            started = time.perf_counter()
            params = [ex.train(name, data.train, epochs=epochs, seed=seed) for seed in range(args.seeds)]
            preds = [predictions(name, p, data, work, f"seed{i}") for i, p in enumerate(params)]
            accs = ", ".join(f"{np.mean(p == labels):.3f}" for p in preds)
            seconds = time.perf_counter() - started
            print(f"{name}: {args.seeds} models, {epochs} epochs, test accuracy {accs} ({seconds:.0f} s)")
            for i, j in itertools.combinations(range(args.seeds), 2):
                rows.append((name, "independent", row(f"seed {i} vs seed {j}", preds[i], preds[j], labels)))
            base = params[0]
            rows.append((name, "copy", row("same weights (re-zipped)", preds[0], preds[0].copy(), labels)))
            perturbed = predictions(name, perturb(base, 0.01, 1), data, work, "perturbed")
            rows.append((name, "copy", row("1 % of parameters perturbed", preds[0], perturbed, labels)))
            small = predictions(name, fine_tune(name, data, base, 1, 0.1, 101), data, work, "tuned-small")
            rows.append((name, "copy", row("fine-tuned 1 epoch, lr / 10", preds[0], small, labels)))
            more = predictions(name, fine_tune(name, data, base, 3, 1.0, 102), data, work, "tuned-more")
            rows.append((name, "copy", row("fine-tuned 3 epochs, same lr", preds[0], more, labels)))

    print()
    print("| model | kind | pair | error agreement | both wrong | same wrong | agreement |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, kind, (label, rate, both, same, agree) in rows:
        print(f"| {name} | {kind} | {label} | {rate:.3f} | {both} | {same} | {agree:.3f} |")
    for name in args.models:
        independent = [r[2][1] for r in rows if r[0] == name and r[1] == "independent"]
        copies = [r[2][1] for r in rows if r[0] == name and r[1] == "copy"]
        if independent:
            print(f"{name}: independent max {max(independent):.3f}; copies min {min(copies):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
