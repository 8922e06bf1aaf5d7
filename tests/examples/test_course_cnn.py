"""The course-sized CNN example: scored through the real sandbox at the pass mark, and its layers
checked against definitions (numerical gradients, parameters saved with the batch norm's statistics).

Its cost per scoring (about half a minute of one core on the 14,500 images, over 1 GB) is what the
deadline bench measures; here one scoring of a tenth of the test set shows it works and how much
memory a chunk of 500 takes, which does not depend on how many chunks there are.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from examples import build_examples as be
from scorer.pipeline import ScoringConfig, score_submission
from scorer.runtime import find_runtime
from tests.fixtures.artifacts import DataSet, course_cnn_dir

PASS_MARK = 0.90  # the demo cohort's pass mark (app/cli.py); the course's is the same


@pytest.fixture(scope="module")
def subset(synthetic_set: DataSet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Every tenth test image (1,450, every class): the chunks are still of 500."""
    out = tmp_path_factory.mktemp("subset")
    np.save(out / "data.npy", np.load(synthetic_set.test_data)[::10])
    np.save(out / "label.npy", np.load(synthetic_set.test_label)[::10])
    return out / "data.npy", out / "label.npy"


# The first test to ask for the example trains it (minutes of one core, far more on a loaded machine).
BUILD_TIMEOUT = pytest.mark.timeout(1800)


@pytest.mark.slow
@pytest.mark.sandbox
@BUILD_TIMEOUT
def test_scores_at_the_pass_mark_in_the_sandbox_with_a_course_sized_peak(
    course_cnn_zip: Path, subset: tuple[Path, Path]
) -> None:
    """With the service's own limits (4 GiB, 10 min): the accuracy clears the pass mark, the loss is
    reported (predict returns probabilities), and a chunk of 500 takes what trainees' networks take."""
    config = ScoringConfig(runtime=find_runtime())
    report = score_submission(course_cnn_zip, test_data=subset[0], test_labels=subset[1], config=config)
    assert report.status == "succeeded", report.to_json()
    assert report.total == 1450
    assert report.accuracy is not None and report.accuracy >= PASS_MARK
    assert report.metrics is not None and report.metrics.loss is not None and report.metrics.loss < 0.5
    # The im2col matrices of one chunk (float64, kept by the layers until the next chunk): about 1.3 GB.
    assert report.facts.peak_memory_mb is not None and 800 < report.facts.peak_memory_mb < 2048


@pytest.mark.slow
@BUILD_TIMEOUT
def test_the_build_reports_its_training_and_keeps_the_batch_norm_statistics(course_cnn_zip: Path) -> None:
    report = json.loads((course_cnn_dir() / be.REPORT_FILE).read_text(encoding="utf-8"))
    entry = report["examples"][be.COURSE_CNN]
    assert entry["epochs"] == be.FULL_EPOCHS[be.COURSE_CNN] and entry["train_accuracy"] > 0.95
    with zipfile.ZipFile(course_cnn_zip) as zf:
        params = pickle.load(io.BytesIO(zf.read(f"{be.COURSE_CNN}/{be.MODEL_FILE}")))
    assert sorted(params) == sorted(
        [f"{p}{i}" for p in "Wb" for i in range(1, 6)]
        + [f"{p}{i}" for p in ("gamma", "beta", "running_mean", "running_var") for i in range(1, 5)]
    )
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in params.values())
    # Trained statistics, not the zeros a network starts with: predict normalises with them.
    assert all(params[f"running_var{i}"].mean() > 0 for i in range(1, 5))


def test_build_refuses_an_unknown_example(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown example"):
        be.build(tmp_path, names=("resnet",))


@pytest.fixture
def net_module():  # type: ignore[no-untyped-def]
    with be.submission_context(be.EXAMPLES_DIR / be.COURSE_CNN, chdir=False):
        yield importlib.import_module("common.bn_conv_net")


def _small_net(net_module, seed: int = 1):  # type: ignore[no-untyped-def]
    return net_module.BatchNormConvNet(
        input_dim=(1, 8, 8), conv_channels=(2, 3, 2), pools=(True, True, False), hidden_size=5, output_size=4,
        seed=seed,
    )  # fmt: skip


def test_backprop_through_batch_norm_matches_numerical_gradient(net_module) -> None:  # type: ignore[no-untyped-def]
    net = _small_net(net_module)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((4, 1, 8, 8)), np.array([0, 3, 2, 1])
    grads = net.gradient(x, t)
    assert set(grads) == {k for k in net.params if not k.startswith("running_")}
    for key in ("W1", "b2", "gamma1", "beta2", "W3", "gamma4", "W5"):
        param, numeric = net.params[key], np.zeros_like(net.params[key])
        for i in np.ndindex(param.shape):
            old = param[i]
            param[i] = old + 1e-5
            up = net.loss(x, t, train_flg=True)
            param[i] = old - 1e-5
            down = net.loss(x, t, train_flg=True)
            param[i] = old
            numeric[i] = (up - down) / 2e-5
        assert np.allclose(grads[key], numeric, atol=1e-6), key


def test_training_updates_the_saved_statistics_in_place_and_prediction_uses_them(net_module) -> None:  # type: ignore[no-untyped-def]
    """The batch norm's running mean and variance are arrays of ``params``, so pickling ``params``
    saves them; a network rebuilt from that dict predicts exactly as the trained one."""
    net = _small_net(net_module)
    x = np.random.default_rng(2).standard_normal((6, 1, 8, 8)) + 3.0
    net.gradient(x, np.array([0, 1, 2, 3, 0, 1]))
    assert net.params["running_mean1"].any() and net.params["running_var1"].any()

    copy = _small_net(net_module, seed=7)
    copy.load_params(pickle.loads(pickle.dumps(net.params)))
    assert np.array_equal(copy.predict(x), net.predict(x))
    with pytest.raises(KeyError, match="running_var2"):
        copy.load_params({k: v for k, v in net.params.items() if k != "running_var2"})
