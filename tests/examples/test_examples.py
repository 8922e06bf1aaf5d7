"""The example submissions: what the build writes, and that their predict honours the service's contract.

The examples are quick-trained (examples.build_examples.QUICK_EPOCHS), so accuracy thresholds here only
say "clearly learned something"; the figures in docs/benchmarks.md come from the full build.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from examples import build_examples as be
from tests.fixtures.artifacts import DataSet, Examples

NAMES = list(be.EXAMPLE_NAMES)
CHANCE = 1 / 15


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global outside NumPy: a model file must not need the training script's classes."""

    def find_class(self, module: str, name: str) -> object:
        if module == "numpy" or module.startswith("numpy."):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"model file refers to {module}.{name}")


# ------------------------------------------------------------------------------------------------------
# What the build writes


@pytest.mark.parametrize("name", NAMES)
def test_zip_is_folder_style_with_code_and_model(name: str, example_zips: Examples) -> None:
    with zipfile.ZipFile(example_zips.dir / f"{name}.zip") as zf:
        names = zf.namelist()
    assert all(n.startswith(f"{name}/") for n in names), names
    assert {
        f"{name}/submit_katakana.py",
        f"{name}/common/__init__.py",
        f"{name}/katakana_model.pickle",
    } <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".npy"))]


@pytest.mark.parametrize("name", NAMES)
def test_model_file_is_a_dict_of_numpy_arrays_only(name: str, example_zips: Examples) -> None:
    with zipfile.ZipFile(example_zips.dir / f"{name}.zip") as zf:
        raw = zf.read(f"{name}/katakana_model.pickle")
    params = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    assert isinstance(params, dict)
    assert sorted(params) == sorted(f"{p}{i}" for p in "Wb" for i in range(1, len(params) // 2 + 1))
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in params.values())
    assert params[f"W{len(params) // 2}"].shape[1] == 15  # 15 class scores out


def test_report_records_accuracies_for_both_examples(example_zips: Examples) -> None:
    report = json.loads((example_zips.dir / be.REPORT_FILE).read_text(encoding="utf-8"))
    assert report["train_images"] == 3000 and report["test_images"] == 14_500
    for name in NAMES:
        entry = report["examples"][name]
        assert entry["epochs"] == be.QUICK_EPOCHS
        assert entry["zip"] == f"{name}.zip"
        assert CHANCE < entry["test_accuracy"] <= 1
    assert report["examples"]["mlp"]["test_loss"] is None  # class ids: no loss
    assert 0 < report["examples"]["cnn"]["test_loss"] < np.log(15)  # probabilities: better than uniform


# ------------------------------------------------------------------------------------------------------
# predict, imported in-process from the unpacked zip the way the service imports it


def test_mlp_predict_returns_one_class_id_per_image_for_a_chunk_of_500(
    extracted: dict[str, Path], train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    images = train_split[0][:500].copy()
    before = images.copy()
    with be.imported_submission(extracted["mlp"]) as module:
        pred = np.asarray(module.predict(images))
        short = np.asarray(module.predict(images[:7]))
    assert pred.shape == (500,)
    assert np.issubdtype(pred.dtype, np.integer)
    assert pred.min() >= 0 and pred.max() <= 14
    assert len(np.unique(pred)) > 5  # not one constant answer
    assert np.array_equal(short, pred[:7])  # the chunk size changes nothing
    assert np.array_equal(images, before)  # predict must not modify its input


def test_cnn_predict_returns_a_probability_row_per_image_for_a_chunk_of_500(
    extracted: dict[str, Path], train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    """The CNN example returns softmax rows, so the service also reports the loss."""
    images = train_split[0][:500].copy()
    before = images.copy()
    with be.imported_submission(extracted["cnn"]) as module:
        probs = np.asarray(module.predict(images))
        short = np.asarray(module.predict(images[:7]))
    assert probs.shape == (500, 15)
    assert (probs >= 0).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    ids = probs.argmax(axis=1)
    assert len(np.unique(ids)) > 5
    assert np.allclose(short, probs[:7], atol=1e-6)  # the chunk size changes nothing
    assert np.array_equal(images, before)
    assert be.probability_loss(probs, train_split[1][:500]) is not None


@pytest.mark.parametrize("name", NAMES)
def test_quick_trained_example_beats_chance_clearly_on_train_data(
    name: str, extracted: dict[str, Path], train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = train_split
    with be.imported_submission(extracted[name]) as module:
        accuracy = float(np.mean(be.predict_in_chunks(module.predict, images) == labels))
    assert accuracy > 6 * CHANCE  # 40 %; quick training reaches about 70 % (MLP) and 89 % (CNN)


def test_examples_import_one_after_another_without_sharing_common(extracted: dict[str, Path]) -> None:
    """Both examples have a package named ``common``: each import must get its own, and leave none."""
    seen = {}
    for name in NAMES:
        with be.imported_submission(extracted[name]) as module:
            seen[name] = Path(sys.modules["common"].__file__ or "").parent
            assert Path.cwd() == extracted[name].resolve()
            assert callable(module.predict)
        assert "common" not in sys.modules and be.ENTRY_MODULE not in sys.modules
    assert seen == {name: extracted[name].resolve() / "common" for name in NAMES}


# ------------------------------------------------------------------------------------------------------
# Training and packaging pieces


def test_training_is_deterministic_for_a_seed(train_split: tuple[np.ndarray, np.ndarray]) -> None:
    split = be.Split(train_split[0][:300], train_split[1][:300])
    first = be.train("mlp", split, epochs=1, seed=0)
    again = be.train("mlp", split, epochs=1, seed=0)
    other = be.train("mlp", split, epochs=1, seed=1)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["W1"], other["W1"])


def test_cnn_trains_on_a_tiny_split(train_split: tuple[np.ndarray, np.ndarray]) -> None:
    params = be.train("cnn", be.Split(train_split[0][:100], train_split[1][:100]), epochs=1, seed=0)
    assert params["W1"].shape == (16, 1, 3, 3) and params["W4"].shape == (100, 15)
    assert all(np.isfinite(v).all() for v in params.values())


def test_zip_is_byte_identical_when_rebuilt(example_zips: Examples, tmp_path: Path) -> None:
    a = be.zip_folder(example_zips.dir / "mlp", tmp_path / "a.zip")
    b = be.zip_folder(example_zips.dir / "mlp", tmp_path / "b.zip")
    assert a.read_bytes() == b.read_bytes()


def test_random_shift_crops_each_image_at_its_own_offset() -> None:
    batch = np.random.default_rng(1).random((6, 1, 28, 28)).astype(np.float32)
    shifted = be.random_shift(batch, 2, np.random.default_rng(5))
    rng = np.random.default_rng(5)  # the same draws, in the same order
    dy, dx = rng.integers(0, 5, size=6), rng.integers(0, 5, size=6)
    padded = np.pad(batch, [(0, 0), (0, 0), (2, 2), (2, 2)])
    assert shifted.shape == batch.shape and shifted.dtype == batch.dtype
    for i in range(6):
        assert np.array_equal(shifted[i], padded[i, :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28])
    assert be.random_shift(batch, 0, rng) is batch


def test_refuses_to_build_into_the_example_sources() -> None:
    with pytest.raises(ValueError, match="refusing"):
        be._copy_example("mlp", be.EXAMPLES_DIR / "mlp")


def test_cli_builds_from_a_data_folder_and_reports_test_accuracy(
    synthetic_set: DataSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for split, count in (("train", 150), ("test", 60)):
        np.save(data / f"{split}_data.npy", np.load(getattr(synthetic_set, f"{split}_data"))[:count])
        np.save(data / f"{split}_label.npy", np.load(getattr(synthetic_set, f"{split}_label"))[:count])
    out = tmp_path / "out"

    assert be.main(["--out", str(out), "--data", str(data), "--epochs", "1", "--quiet"]) == 0

    printed = capsys.readouterr().out
    assert "mlp: train accuracy" in printed and "cnn: train accuracy" in printed and "test accuracy" in printed
    assert (out / "mlp.zip").is_file() and (out / "cnn.zip").is_file()
    report = json.loads((out / be.REPORT_FILE).read_text(encoding="utf-8"))
    assert report["train_images"] == 150 and report["test_images"] == 60
    assert report["examples"]["cnn"]["epochs"] == 1


# ------------------------------------------------------------------------------------------------------
# The CNN's im2col layers, checked against definitions rather than against themselves


@pytest.fixture
def cnn_common():  # type: ignore[no-untyped-def]
    with be.submission_context(be.EXAMPLES_DIR / "cnn", chdir=False):
        yield importlib.import_module("common.util"), importlib.import_module("common.conv_net")


def test_im2col_rows_are_the_filter_windows(cnn_common) -> None:  # type: ignore[no-untyped-def]
    util, _ = cnn_common
    x = np.random.default_rng(0).random((2, 3, 5, 6))
    col = util.im2col(x, 3, 3, stride=1, pad=1)
    padded = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    assert col.shape == (2 * 5 * 6, 3 * 3 * 3)
    row = 1 * 30 + 2 * 6 + 4  # image 1, output pixel (2, 4)
    assert np.array_equal(col[row], padded[1, :, 2:5, 4:7].ravel())


def test_col2im_is_the_adjoint_of_im2col(cnn_common) -> None:  # type: ignore[no-untyped-def]
    """<im2col(x), c> == <x, col2im(c)>: exactly what backpropagation through im2col requires."""
    util, _ = cnn_common
    rng = np.random.default_rng(0)
    for stride, pad, size in ((1, 1, 3), (2, 0, 2)):
        x = rng.random((2, 3, 6, 6))
        c = rng.random(util.im2col(x, size, size, stride, pad).shape)
        lhs = np.sum(util.im2col(x, size, size, stride, pad) * c)
        rhs = np.sum(x * util.col2im(c, x.shape, size, size, stride, pad))
        assert lhs == pytest.approx(rhs)


def test_cnn_backprop_matches_numerical_gradient(cnn_common) -> None:  # type: ignore[no-untyped-def]
    _, conv_net = cnn_common
    net = conv_net.ConvNet(
        input_dim=(1, 8, 8), conv_channels=(2, 3), hidden_size=5, output_size=4, seed=1, dtype=np.float64
    )
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((3, 1, 8, 8)), np.array([0, 3, 2])
    grads = net.gradient(x, t)
    for key in ("W1", "b2", "W3"):
        param, numeric = net.params[key], np.zeros_like(net.params[key])
        for i in np.ndindex(param.shape):
            old = param[i]
            param[i] = old + 1e-5
            up = net.loss(x, t)
            param[i] = old - 1e-5
            down = net.loss(x, t)
            param[i] = old
            numeric[i] = (up - down) / 2e-5
        assert np.allclose(grads[key], numeric, atol=1e-5), key
