"""The pre-flight's accuracy on the public images: pure selection and counting, then through the sandbox."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scorer.classes import NUM_CLASSES
from scorer.metrics import Predictions
from scorer.pipeline import ScoringConfig, check_submission
from scorer.runtime import find_runtime
from scorer.sandbox.types import Limits, MiB
from scorer.smoke import (
    PublicSetRejected,
    SmokeAccuracy,
    near_chance_text,
    select_smoke_sample,
    smoke_accuracy,
    validate_public_set,
)
from tests.fixtures.artifacts import DataSet
from tests.scorer.real_code.trainee import MODEL_FILE, common_files, zip_folder

LIMITS = Limits(wall_seconds=60.0, memory_bytes=2048 * MiB)

# The migrated entry, as a trainee following the old message literally writes it: the legacy
# makedataset() divided by 255, the new predict does not.
ENTRY = """import pickle
import numpy as np
from common.network import BatchNormNet

with open("katakana_model.pickle", "rb") as f:
    network = BatchNormNet(pickle.load(f))


def predict(test_data):
    x = test_data{scale}
    return network.predict(x).argmax(axis=1)
"""


@pytest.fixture(scope="module")
def config() -> ScoringConfig:
    return ScoringConfig(runtime=find_runtime(), limits=LIMITS, smoke_limits=LIMITS)


def _onehot(ids: list[int]) -> np.ndarray:
    return np.eye(NUM_CLASSES)[ids]


def test_the_sample_is_the_first_two_of_each_class_in_class_order() -> None:
    ids = [c for _ in range(3) for c in reversed(range(NUM_CLASSES))]  # 3 of each, in reverse order
    images = np.arange(len(ids), dtype=np.float32).reshape(-1, 1, 1, 1) * np.ones((1, 1, 28, 28), np.float32)
    sample, sample_ids = select_smoke_sample(images, _onehot(ids))
    assert sample_ids.tolist() == [c for c in range(NUM_CLASSES) for _ in range(2)]
    # Class 14 comes first in the file (positions 0 and 15), class 0 at positions 14 and 29.
    assert sample[0, 0, 0, 0] == 14 and sample[1, 0, 0, 0] == 29
    assert sample[-2, 0, 0, 0] == 0 and sample[-1, 0, 0, 0] == 15


def test_the_public_set_is_validated() -> None:
    images = np.zeros((30, 1, 28, 28), np.float32)
    good = _onehot([c % NUM_CLASSES for c in range(30)])
    assert validate_public_set(images, good) == [2] * NUM_CLASSES
    with pytest.raises(PublicSetRejected, match="shaped"):
        validate_public_set(np.zeros((30, 28, 28)), good)
    with pytest.raises(PublicSetRejected, match="one-hot"):
        validate_public_set(images, np.arange(30) % NUM_CLASSES)
    with pytest.raises(PublicSetRejected, match="one-hot"):
        validate_public_set(images, good * 2)
    with pytest.raises(PublicSetRejected, match="29 labels for 30 images"):
        validate_public_set(images, good[:29])
    with pytest.raises(PublicSetRejected, match=r"classes \[14\]"):
        validate_public_set(images, _onehot([c % 14 for c in range(30)]))


def test_accuracy_and_near_chance() -> None:
    truth = np.array([0, 1, 2, 3], dtype=np.int64)
    result = smoke_accuracy(Predictions(np.array([0, 1, 0, 0], dtype=np.int64), None), truth)
    assert result == SmokeAccuracy(correct=2, total=4) and result.accuracy == 0.5
    assert not result.near_chance(0.3) and result.near_chance(0.6)
    assert not SmokeAccuracy(0, 0).near_chance()  # nothing to judge by
    assert SmokeAccuracy.from_json(SmokeAccuracy(7, 30).to_json()) == SmokeAccuracy(7, 30)
    assert "7 %" in near_chance_text("ja", SmokeAccuracy(2, 30))
    assert "/ 255" in near_chance_text("en", SmokeAccuracy(2, 30))


def _submission(tmp_path: Path, model: bytes, scale: str, name: str) -> Path:
    files = {"submit_katakana.py": ENTRY.format(scale=scale).encode(), MODEL_FILE: model, **common_files()}
    return zip_folder(tmp_path / f"{name}.zip", "課題提出", files, "windows")


@pytest.mark.sandbox
def test_a_model_fed_as_in_training_scores_well_on_the_public_images(
    tmp_path: Path, synthetic_set: DataSet, trainee_model: bytes, config: ScoringConfig
) -> None:
    archive = _submission(tmp_path, trainee_model, " / 255", "good")
    report = check_submission(
        archive, config=config, sample_data=synthetic_set.train_data, sample_labels=synthetic_set.train_label
    )
    assert report.ok, report.to_json()
    assert report.smoke is not None and report.smoke.total == 30
    assert report.smoke.accuracy >= 0.6 and not report.smoke.near_chance()
    assert report.to_json()["smoke"]["correct"] == report.smoke.correct


@pytest.mark.sandbox
def test_a_missing_division_by_255_comes_out_near_chance(
    tmp_path: Path, synthetic_set: DataSet, trainee_model: bytes, config: ScoringConfig
) -> None:
    archive = _submission(tmp_path, trainee_model, "", "no255")
    report = check_submission(
        archive, config=config, sample_data=synthetic_set.train_data, sample_labels=synthetic_set.train_label
    )
    assert report.ok, report.to_json()  # it runs: only the accuracy tells
    assert report.smoke is not None and report.smoke.total == 30
    assert report.smoke.near_chance(), report.smoke


@pytest.mark.sandbox
def test_without_labels_no_accuracy_is_claimed(
    tmp_path: Path, synthetic_set: DataSet, trainee_model: bytes, config: ScoringConfig
) -> None:
    archive = _submission(tmp_path, trainee_model, "", "nolabels")
    assert check_submission(archive, config=config).smoke is None  # synthetic smoke images
    assert check_submission(archive, config=config, sample_data=synthetic_set.train_data).smoke is None


@pytest.mark.sandbox
def test_the_labels_never_enter_the_sandbox(tmp_path: Path, synthetic_set: DataSet, config: ScoringConfig) -> None:
    probe = (
        "import os\n"
        "import numpy as np\n"
        "assert not os.path.exists('/data')\n"  # the images came through a descriptor, closed since
        "for top in ('/work', '/tmp', '/submission', '/harness', '/input'):\n"
        "    for root, dirs, files in os.walk(top):\n"
        "        assert not any('label' in f or f.endswith('.npy') for f in files), (root, files)\n"
        "for fd in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        link = os.readlink(f'/proc/self/fd/{fd}')\n"
        "    except OSError:\n"
        "        continue\n"  # listdir's own descriptor, closed by now
        "    assert 'label' not in link and '.npy' not in link, link\n"
        "assert 'label' not in str(os.environ).lower()\n"
        "def predict(test_data):\n"
        "    return np.zeros(len(test_data), dtype=int)\n"
    )
    archive = zip_folder(tmp_path / "probe.zip", "probe", {"submit_katakana.py": probe.encode()}, "plain")
    report = check_submission(
        archive, config=config, sample_data=synthetic_set.train_data, sample_labels=synthetic_set.train_label
    )
    assert report.ok, report.to_json()
    # Always class 0: right for exactly the two ア images of the balanced sample.
    assert report.smoke == SmokeAccuracy(correct=2, total=30)


@pytest.mark.sandbox
def test_the_local_checker_prints_the_smoke_accuracy(
    tmp_path: Path, synthetic_set: DataSet, trainee_model: bytes
) -> None:
    import subprocess
    import sys

    archive = _submission(tmp_path, trainee_model, "", "cli")
    proc = subprocess.run(
        [sys.executable, "-m", "scorer", "--lang", "ja", "--wall-seconds", "60", "check", str(archive), "--sample",
         str(synthetic_set.train_data), "--sample-labels", str(synthetic_set.train_label)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "smoke accuracy:" in proc.stdout and "test_data / 255" in proc.stdout
