"""Train the example submissions (MLP, small CNN, course-sized CNN) and zip them exactly as a trainee would.

Each example folder (examples/mlp, examples/cnn, examples/course_cnn) holds a ``submit_katakana.py`` and
its own hand-written NumPy package ``common/``, as the course teaches. The MLP and the small CNN are
built by default; the course-sized CNN, which costs the scoring workers what trainees' networks cost,
only when named (``--example course_cnn``). This script trains each network with that folder's own
``common`` code, pickles only a dict of parameter arrays (so loading never depends on this script's module
path), copies the folder to ``out_dir/<name>/`` with the model file added, and zips it folder-style
(``mlp/submit_katakana.py``, ``mlp/common/...``, ``mlp/katakana_model.pickle``) to ``out_dir/<name>.zip``.

Accuracies are measured through the built folder's own ``predict``, imported the way the service imports
it (module ``submit_katakana``, the folder as working directory and first on sys.path, chunks of 500), so
the figures printed are the ones the scorer would report.

    python examples/build_examples.py --out examples/build            # full training (docs/benchmarks.md figures)
    python examples/build_examples.py --out /tmp/ex --quick            # 2 epochs each, for tests
    python examples/build_examples.py --out DIR --example course_cnn   # the course-sized CNN (minutes)
    python examples/build_examples.py --out DIR --data DIR_WITH_NPY    # train_data.npy, train_label.npy
                                                                       # (+ test_data.npy, test_label.npy)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

if __name__ == "__main__":
    # One BLAS thread, as in the scoring sandbox: on a shared 2-core machine extra threads only contend,
    # and the timings printed should be the ones a submission sees. Must be set before numpy loads.
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np

EXAMPLES_DIR = Path(__file__).resolve().parent
EXAMPLE_NAMES = ("mlp", "cnn")  # built by default: small and quick, the inputs of most tests
# The course-sized CNN: built only when asked for (it takes minutes to train and about half a minute of
# CPU to predict the test set), for the deadline bench and the capacity figures.
COURSE_CNN = "course_cnn"
ALL_NAMES = (*EXAMPLE_NAMES, COURSE_CNN)
MODEL_FILE = "katakana_model.pickle"
ENTRY_MODULE = "submit_katakana"
REPORT_FILE = "build_report.json"

BATCH_SIZE = 100  # the course's mini-batch size
CHUNK = 500  # the service calls predict on at most this many images at a time
QUICK_EPOCHS = 2  # --quick: enough to beat chance clearly, fast enough for the test suite
FULL_EPOCHS = {"mlp": 60, "cnn": 15, COURSE_CNN: 3}  # the figures in docs/benchmarks.md
SHIFT = 2  # data augmentation: each training image moved by up to this many pixels, anew every epoch

# Files a trainee's zip should not carry; left out of the copies and the zips.
_IGNORED = ("__pycache__", "*.pyc", ".ipynb_checkpoints", ".DS_Store", MODEL_FILE, "*.npy")
# A fixed timestamp makes the zips byte-identical from one build to the next.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Split:
    data: np.ndarray  # (N, 1, 28, 28), 0-255 as in train_data.npy (float32 in the course)
    labels: np.ndarray  # (N,) class ids 0-14


@dataclass(frozen=True)
class Data:
    train: Split
    test: Split | None  # None when the data folder has no test split


@dataclass
class Result:
    name: str
    epochs: int
    train_seconds: float
    predict_seconds: float | None  # predict over the whole test split, in chunks of 500
    # CPU time of this process: on a shared machine the wall-clock figures above say more about the load.
    train_cpu_seconds: float
    predict_cpu_seconds: float | None
    train_accuracy: float
    test_accuracy: float | None
    test_loss: float | None  # only when predict returns probabilities (the CNN example does)
    zip_path: Path


# --------------------------------------------------------------------------------------------------------
# Data


def _to_ids(labels: np.ndarray) -> np.ndarray:
    """One-hot (N, 15) → ids (N,); ids pass through. train_label.npy is one-hot in the course."""
    labels = np.asarray(labels)
    return labels.argmax(axis=1) if labels.ndim == 2 else labels.astype(np.int64)


def _load_split(data_dir: Path, split: str) -> Split | None:
    data_path, label_path = data_dir / f"{split}_data.npy", data_dir / f"{split}_label.npy"
    if not (data_path.exists() and label_path.exists()):
        return None
    data = np.load(data_path)
    labels = _to_ids(np.load(label_path))
    if data.ndim != 4 or data.shape[1:] != (1, 28, 28) or len(labels) != len(data):
        raise ValueError(f"{data_path}: expected (N, 1, 28, 28) images with N labels, got {data.shape}")
    return Split(data, labels)


def load_data(data_dir: Path) -> Data:
    train = _load_split(data_dir, "train")
    if train is None:
        raise FileNotFoundError(f"{data_dir} has no train_data.npy / train_label.npy")
    return Data(train=train, test=_load_split(data_dir, "test"))


def synthetic_data() -> Data:
    """The course's synthetic set (dataset seed 0), written to a temporary folder and read back.

    Going through the files rather than make_dataset keeps one loading path for --data and the default.
    """
    from scorer.dataset import write_dataset

    with tempfile.TemporaryDirectory(prefix="katakana-data-") as tmp:
        write_dataset(Path(tmp), seed=0)
        return load_data(Path(tmp))


# --------------------------------------------------------------------------------------------------------
# Importing an example's own code in isolation


def _local_names(folder: Path) -> set[str]:
    """Top-level module names a submission folder provides (common, util, submit_katakana, ...)."""
    names = {ENTRY_MODULE}
    for child in folder.iterdir():
        if child.suffix == ".py":
            names.add(child.stem)
        elif child.is_dir() and child.name.isidentifier():
            names.add(child.name)
    return names


@contextlib.contextmanager
def submission_context(folder: Path, *, chdir: bool = True) -> Iterator[None]:
    """Make ``folder`` importable as a submission: first on sys.path, its working directory, no clashes.

    Both examples have a package called ``common``; so does every trainee. Whatever of those names is
    already in sys.modules is set aside for the duration and put back afterwards, so importing one
    example never hands it the other's ``common``. Bytecode writing is off so the built folder stays
    exactly what was zipped.
    """
    folder = Path(folder).resolve()
    names = _local_names(folder)

    def ours(module_name: str) -> bool:
        return module_name.split(".", 1)[0] in names

    set_aside = {key: sys.modules.pop(key) for key in list(sys.modules) if ours(key)}
    old_path, old_cwd, old_bytecode = list(sys.path), os.getcwd(), sys.dont_write_bytecode
    sys.path.insert(0, str(folder))
    sys.dont_write_bytecode = True
    importlib.invalidate_caches()
    if chdir:
        os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        sys.dont_write_bytecode = old_bytecode
        for key in [key for key in sys.modules if ours(key)]:
            del sys.modules[key]
        sys.modules.update(set_aside)


@contextlib.contextmanager
def imported_submission(folder: Path) -> Iterator[ModuleType]:
    """Import ``folder/submit_katakana.py`` the way the service does, and yield the module."""
    with submission_context(folder):
        yield importlib.import_module(ENTRY_MODULE)


def run_predict(predict: Callable[[np.ndarray], Any], data: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Call predict as the service does (consecutive chunks of at most 500) and join what it returns:
    (N,) class ids or (N, 15) scores, whichever the submission gives."""
    out: list[np.ndarray] = []
    for start in range(0, len(data), chunk):
        part = data[start : start + chunk]
        result = np.asarray(predict(part))
        if result.shape not in ((len(part),), (len(part), 15)):
            raise ValueError(f"predict returned shape {result.shape} for {len(part)} images")
        out.append(result)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def predict_in_chunks(predict: Callable[[np.ndarray], Any], data: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Class ids (N,) from predict called as the service calls it; an (N, 15) score array is argmax-ed."""
    result = run_predict(predict, data, chunk)
    return (result.argmax(axis=1) if result.ndim == 2 else result).astype(np.int64)


def probability_loss(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """The service's cross-entropy ("Test loss"), when every row of ``scores`` is a probability vector."""
    if scores.ndim != 2 or (scores < 0).any() or not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return None
    picked = scores[np.arange(len(labels)), labels].astype(np.float64)
    return float(-np.sum(np.log(picked + 1e-7)) / len(labels))


# --------------------------------------------------------------------------------------------------------
# Training


def random_shift(batch: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Move each image by a random whole number of pixels (at most ``max_shift``) up/down and left/right.

    3,000 training images are few, and both networks otherwise learn where each writer put a stroke
    rather than its shape: on the synthetic set the shift alone lifts test accuracy by several points
    (MLP about 82 % → 90 %). The image is padded with background (0) and a 28 × 28 window cut out at a
    random offset; ``sliding_window_view`` lets every image in the batch take its own offset in one step.
    """
    if max_shift <= 0:
        return batch
    n, _, h, w = batch.shape
    m = max_shift
    padded = np.pad(batch, [(0, 0), (0, 0), (m, m), (m, m)], mode="constant")
    # windows[i, c, dy, dx] is the h × w crop of image i starting at (dy, dx): shape (n, C, 2m+1, 2m+1, h, w)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
    dy = rng.integers(0, 2 * m + 1, size=n)
    dx = rng.integers(0, 2 * m + 1, size=n)
    return windows[np.arange(n), :, dy, dx]  # (n, C, h, w), a copy


@dataclass(frozen=True)
class Recipe:
    """The choices a trainee varies when training one of the examples; the defaults build the examples.

    ``hidden`` is the MLP's hidden layer sizes, or a CNN's single hidden Affine size (one entry);
    ``channels`` a CNN's convolutions (two for the small CNN, three for the course-sized one).
    ``optimizer`` is "adam" or "sgd" from the example's ``common/optimizer.py``; ``shift`` the random
    shift's reach in pixels (0: no augmentation).
    """

    hidden: tuple[int, ...] = (100, 100)
    channels: tuple[int, ...] = (16, 32)
    optimizer: str = "adam"
    lr: float = 0.001
    shift: int = SHIFT
    batch_size: int = BATCH_SIZE


DEFAULT_RECIPES = {
    "mlp": Recipe(),
    "cnn": Recipe(hidden=(100,)),
    COURSE_CNN: Recipe(hidden=(100,), channels=(32, 32, 64)),
}
# The course-sized CNN's 2×2 poolings: after its first and second convolutions (28 → 14 → 7).
COURSE_CNN_POOLS = (True, True, False)


def _make_network(name: str, seed: int, recipe: Recipe | None = None) -> tuple[Any, Any]:
    """Build the network and optimizer from the example's own ``common`` (must be importable now)."""
    recipe = recipe or DEFAULT_RECIPES[name]
    optimizer_module = importlib.import_module("common.optimizer")
    if name == "mlp":
        net_module = importlib.import_module("common.multi_layer_net")
        network = net_module.MultiLayerNet(
            input_size=784, hidden_size_list=list(recipe.hidden), output_size=15, seed=seed
        )
    elif name == "cnn":
        net_module = importlib.import_module("common.conv_net")
        network = net_module.ConvNet(
            input_dim=(1, 28, 28),
            conv_channels=recipe.channels,
            filter_size=3,
            hidden_size=recipe.hidden[0],
            output_size=15,
            seed=seed,
        )
    elif name == COURSE_CNN:
        # Trained in float32 (half the time of the course's float64); its submission predicts in
        # float64, as a trainee's network whose parameters came from np.random.randn does.
        net_module = importlib.import_module("common.bn_conv_net")
        network = net_module.BatchNormConvNet(
            input_dim=(1, 28, 28),
            conv_channels=recipe.channels,
            pools=COURSE_CNN_POOLS,
            filter_size=3,
            hidden_size=recipe.hidden[0],
            output_size=15,
            seed=seed,
            dtype=np.float32,
        )
    else:
        raise ValueError(f"unknown example {name!r}")
    if recipe.optimizer == "sgd":
        return network, optimizer_module.SGD(lr=recipe.lr)
    return network, optimizer_module.Adam(lr=recipe.lr)


def train(
    name: str,
    data: Split,
    *,
    epochs: int,
    seed: int,
    log: Callable[[str], None] | None = None,
    recipe: Recipe | None = None,
    start: dict[str, np.ndarray] | None = None,
    after_epoch: Callable[[int, dict[str, np.ndarray]], None] | None = None,
) -> dict[str, np.ndarray]:
    """Train example ``name`` with its own common/ code and return its parameter dict (arrays only).

    Plain mini-batch training over shuffled epochs, as in the textbook's Trainer, with each batch
    randomly shifted (``random_shift``). Every random choice comes from ``seed``, so the same seed on
    the same machine gives the same parameters. ``recipe`` changes what a trainee would change (the
    default builds the examples); ``start`` continues from given parameters (fine-tuning a copy);
    ``after_epoch(epoch, params)`` sees a copy of the parameters after each epoch (snapshots).
    """
    recipe = recipe or DEFAULT_RECIPES[name]
    init_seed, shuffle_seed = np.random.SeedSequence([seed, ALL_NAMES.index(name)]).generate_state(2)
    rng = np.random.default_rng(int(shuffle_seed))
    images = data.data.astype(np.float32) / 255.0  # (N, 1, 28, 28): shift first, then flatten for the MLP
    t = data.labels
    with submission_context(EXAMPLES_DIR / name, chdir=False):
        network, optimizer = _make_network(name, int(init_seed), recipe)
        if start is not None:
            network.load_params({key: value.copy() for key, value in start.items()})
        for epoch in range(1, epochs + 1):
            order = rng.permutation(len(images))
            losses = []
            for first in range(0, len(images), recipe.batch_size):
                batch = order[first : first + recipe.batch_size]
                x = random_shift(images[batch], recipe.shift, rng)
                if name == "mlp":
                    x = x.reshape(len(x), -1)
                grads = network.gradient(x, t[batch])
                optimizer.update(network.params, grads)
                losses.append(network.last_layer.loss)
            if log:
                log(f"  {name} epoch {epoch}/{epochs}: mean batch loss {np.mean(losses):.4f}")
            if after_epoch:
                after_epoch(epoch, {key: value.copy() for key, value in network.params.items()})
        return {key: np.ascontiguousarray(value) for key, value in network.params.items()}


def predict_params(
    name: str, params: dict[str, np.ndarray], images: np.ndarray, recipe: Recipe | None = None
) -> np.ndarray:
    """Class ids from ``params`` through the example's own network code, with its submission's
    preprocessing (0–255 → 0–1, flattened for the MLP), in the service's chunks of 500: what the
    example's ``predict`` returns, for networks of any recipe (the submission file fixes the sizes)."""
    recipe = recipe or DEFAULT_RECIPES[name]
    with submission_context(EXAMPLES_DIR / name, chdir=False):
        network, _ = _make_network(name, 0, recipe)
        network.load_params({key: value.copy() for key, value in params.items()})

        def predict(chunk: np.ndarray) -> np.ndarray:
            x = np.asarray(chunk, dtype=np.float32) / 255.0
            return np.asarray(network.predict(x.reshape(len(x), -1) if name == "mlp" else x))

        return predict_in_chunks(predict, images)


# --------------------------------------------------------------------------------------------------------
# Packaging


def _copy_example(name: str, dest: Path) -> None:
    src = EXAMPLES_DIR / name
    if dest.resolve() == src.resolve() or src.resolve() in dest.resolve().parents:
        raise ValueError(f"refusing to build into the example source itself: {dest}")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*_IGNORED))


def zip_folder(folder: Path, zip_path: Path) -> Path:
    """Zip ``folder`` as a trainee's "compress this folder" would: every entry under ``<folder name>/``.

    Entries are sorted and timestamps fixed, so the same files give byte-identical zips.
    """
    root = folder.name
    files = sorted(p for p in folder.rglob("*") if "__pycache__" not in p.parts)
    tmp = zip_path.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(f"{root}/", date_time=_ZIP_DATE)
        info.external_attr = (0o40755 << 16) | 0x10
        zf.writestr(info, b"")
        for path in files:
            arcname = f"{root}/{path.relative_to(folder).as_posix()}"
            if path.is_dir():
                info = zipfile.ZipInfo(arcname + "/", date_time=_ZIP_DATE)
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    tmp.replace(zip_path)
    return zip_path


@dataclass(frozen=True)
class _Scores:
    train_accuracy: float
    test_accuracy: float | None = None
    test_loss: float | None = None
    predict_seconds: float | None = None
    predict_cpu_seconds: float | None = None


def _evaluate(folder: Path, data: Data) -> _Scores:
    """Accuracies (and loss) through the built folder's own predict, and the test-set predict time."""
    with imported_submission(folder) as module:
        train_acc = float(np.mean(predict_in_chunks(module.predict, data.train.data) == data.train.labels))
        if data.test is None:
            return _Scores(train_acc)
        started, cpu_started = time.perf_counter(), time.process_time()
        scores = run_predict(module.predict, data.test.data)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    pred = scores.argmax(axis=1) if scores.ndim == 2 else scores
    test_acc = float(np.mean(pred == data.test.labels))
    return _Scores(train_acc, test_acc, probability_loss(scores, data.test.labels), seconds, cpu_seconds)


def build_one(
    name: str,
    out_dir: Path,
    data: Data,
    *,
    epochs: int,
    seed: int,
    log: Callable[[str], None] | None = None,
) -> Result:
    started, cpu_started = time.perf_counter(), time.process_time()
    params = train(name, data.train, epochs=epochs, seed=seed, log=log)
    train_seconds, train_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

    folder = out_dir / name
    _copy_example(name, folder)
    with open(folder / MODEL_FILE, "wb") as f:
        pickle.dump(params, f, protocol=4)
    zip_path = zip_folder(folder, out_dir / f"{name}.zip")

    scores = _evaluate(folder, data)
    return Result(
        name,
        epochs,
        train_seconds,
        scores.predict_seconds,
        train_cpu_seconds,
        scores.predict_cpu_seconds,
        scores.train_accuracy,
        scores.test_accuracy,
        scores.test_loss,
        zip_path,
    )


def build(
    out_dir: Path,
    *,
    data_dir: Path | None = None,
    epochs: int | None = None,
    seed: int = 0,
    quick: bool = False,
    log: Callable[[str], None] | None = None,
    names: Sequence[str] = EXAMPLE_NAMES,
) -> dict[str, Path]:
    """Train the examples ``names`` (default: the MLP and the small CNN) and write ``out_dir/<name>.zip``
    for each; return those paths by name.

    ``data_dir`` holds train_data.npy/train_label.npy (and optionally the test split); without it the
    synthetic set is generated with ``scorer.dataset.write_dataset(tmp, seed=0)``. ``epochs`` applies to
    every model; None means the full training (FULL_EPOCHS), and ``quick=True`` means QUICK_EPOCHS (same
    network sizes, for tests and benchmarks). The unzipped folders stay in ``out_dir/<name>/`` and the
    accuracies and timings go to ``out_dir/build_report.json``.
    """
    unknown = [name for name in names if name not in ALL_NAMES]
    if unknown:
        raise ValueError(f"unknown example(s) {unknown}; known: {', '.join(ALL_NAMES)}")
    if quick:
        if epochs is not None:
            raise ValueError("give either epochs or quick=True, not both")
        epochs = QUICK_EPOCHS
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_data(Path(data_dir)) if data_dir is not None else synthetic_data()

    results: list[Result] = []
    for name in names:
        n_epochs = epochs if epochs is not None else FULL_EPOCHS[name]
        result = build_one(name, out_dir, data, epochs=n_epochs, seed=seed, log=log)
        results.append(result)
        if log:
            log(_summary(result))

    report = {
        "seed": seed,
        "train_images": len(data.train.data),
        "test_images": None if data.test is None else len(data.test.data),
        "examples": {
            r.name: {
                "epochs": r.epochs,
                "train_seconds": round(r.train_seconds, 2),
                "test_predict_seconds": None if r.predict_seconds is None else round(r.predict_seconds, 3),
                "train_cpu_seconds": round(r.train_cpu_seconds, 2),
                "test_predict_cpu_seconds": None if r.predict_cpu_seconds is None else round(r.predict_cpu_seconds, 3),
                "train_accuracy": r.train_accuracy,
                "test_accuracy": r.test_accuracy,
                "test_loss": r.test_loss,
                "zip": r.zip_path.name,
            }
            for r in results
        },
    }
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return {r.name: r.zip_path for r in results}


def _summary(r: Result) -> str:
    test = "n/a (no test split)" if r.test_accuracy is None else f"{r.test_accuracy:.4f}"
    if r.test_loss is not None:
        test += f", test loss {r.test_loss:.4f}"
    timing = f"trained {r.epochs} epochs in {r.train_seconds:.1f} s ({r.train_cpu_seconds:.1f} s of CPU)"
    if r.predict_seconds is not None:
        timing += f", predict on the test split {r.predict_seconds:.2f} s ({r.predict_cpu_seconds or 0:.2f} s of CPU)"
    return f"{r.name}: train accuracy {r.train_accuracy:.4f}, test accuracy {test} ({timing}) -> {r.zip_path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR / "build", help="output folder")
    parser.add_argument("--data", type=Path, default=None, help="folder with train_data.npy etc.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epoch(s) each (for tests)")
    group.add_argument("--epochs", type=int, default=None, help="epochs for every model built")
    parser.add_argument(
        "--example",
        action="append",
        choices=ALL_NAMES,
        help=f"build this example (repeatable); default: {' and '.join(EXAMPLE_NAMES)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-epoch progress")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet or not message.startswith("  "):
            print(message, flush=True)

    started = time.perf_counter()
    paths = build(
        args.out,
        data_dir=args.data,
        epochs=args.epochs,
        quick=args.quick,
        seed=args.seed,
        log=log,
        names=args.example or EXAMPLE_NAMES,
    )
    print(f"built {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
