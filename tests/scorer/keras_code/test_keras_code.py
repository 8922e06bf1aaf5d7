"""Keras submissions written the way the course's Keras trainees write them, through the real sandbox
and the real TensorFlow runtime.

Each case zips the trainee's entry (and model, and own modules) and pre-flights it on the public
images with their labels, as the site does: which runtime ran it, whether it is accepted, and the
code and message a trainee gets. The models are trained once per suite (tests/fixtures/artifacts.py,
``keras_models``). Every case starts a fresh sandbox that imports TensorFlow (seconds each): the
corpus is kept to the mistakes that need their own message.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scorer.errors import ErrorCode
from scorer.pipeline import ScoringConfig, check_submission
from scorer.runtime import RuntimeName, find_runtime, find_tensorflow_runtime
from scorer.runtime_choice import RuntimeChoice
from scorer.sandbox.types import Limits, MiB
from tests.fixtures.artifacts import DataSet

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]  # each case starts a TensorFlow sandbox

LIMITS = Limits(wall_seconds=120.0, memory_bytes=3072 * MiB)

LOAD_H5 = """\
import numpy as np
from tensorflow import keras

model = keras.models.load_model("katakana_model.h5")


def predict(test_data):
    x = test_data.transpose(0, 2, 3, 1) / 255  # (N, 1, 28, 28) -> (N, 28, 28, 1), as in training
    return np.argmax(model.predict(x, verbose=0), axis=1)
"""

MODEL_CODE = """\
from tensorflow import keras


def build():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(15, activation="softmax"),
    ])
"""


def notebook(*cells: str) -> bytes:
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": []} for c in cells],
        }
    ).encode()


@dataclass(frozen=True)
class Case:
    files: dict[str, str | bytes]  # name in the zip -> text, or the name of a file of keras_models
    runtime: str = "tensorflow"
    ok: bool = True
    near_chance: bool = False
    code: str = ""
    en: tuple[str, ...] = ()
    ja: tuple[str, ...] = ()
    allowed: tuple[RuntimeName, ...] = tuple(RuntimeName)
    limits: Limits = field(default=LIMITS)


MODEL = b"model:"  # a file value starting with this names a file (or folder) of keras_models

CASES: dict[str, Case] = {
    "sequential_h5": Case({"submit_katakana.py": LOAD_H5, "katakana_model.h5": MODEL + b"sequential.h5"}),
    "native_keras": Case(
        {
            "submit_katakana.py": LOAD_H5.replace("from tensorflow import keras", "import keras").replace(
                'keras.models.load_model("katakana_model.h5")', 'keras.saving.load_model("katakana_model.keras")'
            ),
            "katakana_model.keras": MODEL + b"native.keras",
        }
    ),
    # The entry imports only NumPy and its own module; the module's Keras import picks the runtime.
    "weights_and_model_code": Case(
        {
            "submit_katakana.py": "import numpy as np\nfrom model_def import build\n\nmodel = build()\n"
            'model.load_weights("cnn.weights.h5")\n\n\ndef predict(test_data):\n'
            "    return model.predict(test_data.transpose(0, 2, 3, 1) / 255, verbose=0)\n",
            "model_def.py": MODEL_CODE,
            "cnn.weights.h5": MODEL + b"cnn.weights.h5",
        }
    ),
    # Saved by Keras 2.2.4, loaded as the course's notebooks did.
    "keras2_legacy_h5_notebook": Case(
        {
            "submit_katakana.ipynb": notebook(
                "import numpy as np\nfrom keras.models import load_model",
                'model = load_model("katakana_model.h5")',
                "def predict(test_data):\n    x = test_data.transpose(0, 2, 3, 1) / 255\n"
                "    return model.predict(x, verbose=0).argmax(axis=1)",
            ),
            "katakana_model.h5": MODEL + b"keras2.h5",
        }
    ),
    "savedmodel_folder": Case(
        {
            "submit_katakana.py": "import numpy as np\nimport keras\n\n"
            'layer = keras.layers.TFSMLayer("katakana_model", call_endpoint="serving_default")\n\n\n'
            "def predict(test_data):\n    x = (test_data.transpose(0, 2, 3, 1) / 255).astype('float32')\n"
            "    return np.asarray(next(iter(layer(x).values()))).argmax(axis=1)\n",
            "katakana_model": MODEL + b"savedmodel",
        }
    ),
    "savedmodel_with_load_model": Case(
        {
            "submit_katakana.py": LOAD_H5.replace('"katakana_model.h5"', '"katakana_model"'),
            "katakana_model": MODEL + b"savedmodel",
        },
        ok=False,
        code="keras_savedmodel",
        en=("TFSMLayer", "katakana_model", "model.save"),
        ja=("SavedModel", "TFSMLayer"),
    ),
    "channels_first_input": Case(
        {
            "submit_katakana.py": LOAD_H5.replace("test_data.transpose(0, 2, 3, 1) / 255", "test_data / 255"),
            "katakana_model.h5": MODEL + b"sequential.h5",
        },
        ok=False,
        code="channels_first_input",
        en=("(N, 28, 28, 1)", "transpose(0, 2, 3, 1)"),
        ja=("(N, 1, 28, 28)", "transpose(0, 2, 3, 1)"),
    ),
    # Forgot / 255: this model (ReLU convolutions, max-pooling, softmax, no normalisation) only scales
    # its logits by 255, so its answers hardly change and the public-image check rightly lets it pass.
    "missing_scaling_on_a_scale_free_cnn": Case(
        {
            "submit_katakana.py": LOAD_H5.replace(
                "test_data.transpose(0, 2, 3, 1) / 255", "test_data.transpose(0, 2, 3, 1)"
            ),
            "katakana_model.h5": MODEL + b"sequential.h5",
        },
    ),
    # Forgot / 255 with a batch-norm model: about as right as guessing on the public images, so the
    # pre-flight asks before the upload is spent (app/services/lifecycle.py), as for NumPy models.
    "missing_scaling_on_a_batch_norm_model": Case(
        {
            "submit_katakana.py": LOAD_H5.replace('"katakana_model.h5"', '"katakana_model.keras"').replace(
                "test_data.transpose(0, 2, 3, 1) / 255", "test_data.transpose(0, 2, 3, 1)"
            ),
            "katakana_model.keras": MODEL + b"batchnorm.keras",
        },
        near_chance=True,
    ),
    "one_hot_predictions": Case(
        {
            "submit_katakana.py": LOAD_H5.replace(
                "return np.argmax(model.predict(x, verbose=0), axis=1)",
                "return np.eye(15)[np.argmax(model.predict(x, verbose=0), axis=1)]",
            ),
            "katakana_model.h5": MODEL + b"sequential.h5",
        }
    ),
    "predict_classes": Case(
        {
            "submit_katakana.py": LOAD_H5.replace(
                "np.argmax(model.predict(x, verbose=0), axis=1)", "model.predict_classes(x)"
            ),
            "katakana_model.h5": MODEL + b"sequential.h5",
        },
        ok=False,
        code="keras_removed_api",
        en=("predict_classes", "TensorFlow 2.6", "np.argmax(model.predict(x), axis=1)"),
        ja=("predict_classes", "削除"),
    ),
    "tensorflow_1_session": Case(
        {
            "submit_katakana.py": "import tensorflow as tf\n\nsess = tf.Session()\n\n\ndef predict(test_data):\n"
            "    return sess.run(None)\n",
        },
        ok=False,
        code="tensorflow_1_code",
        en=("tf.Session", "tf.compat.v1.Session"),
        ja=("TensorFlow 1.x", "tf.Session"),
    ),
    "custom_layer_not_in_zip": Case(
        {
            "submit_katakana.py": LOAD_H5.replace('"katakana_model.h5"', '"katakana_model.keras"'),
            "katakana_model.keras": MODEL + b"custom_layer.keras",
        },
        ok=False,
        code="keras_custom_object",
        en=("Doubled", "custom_objects"),
        ja=("Doubled", "custom_objects"),
    ),
    # The notebook's training cell is left in: every cell runs, so it trains until the time limit.
    "notebook_that_trains": Case(
        {
            "submit_katakana.ipynb": notebook(
                "import numpy as np\nfrom tensorflow import keras",
                "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(15)])\n"
                'model.compile("adam", "mse")\nx = np.zeros((64, 4))\nwhile True:\n'
                "    model.fit(x, np.zeros((64, 15)), epochs=1, verbose=0)",
                "def predict(test_data):\n    return np.zeros(len(test_data), dtype=int)",
            ),
        },
        ok=False,
        code="training_time_limit",
        en=("model.fit", "cell 2, line 5", "training cells"),
        ja=("セル 2 の 5 行目", "学習"),
        # TensorFlow's import is off the run's clock (scorer/warm.py): the training loop alone meets it.
        limits=Limits(wall_seconds=10.0, memory_bytes=3072 * MiB),
    ),
    "cohort_limited_to_numpy": Case(
        {"submit_katakana.py": LOAD_H5, "katakana_model.h5": MODEL + b"sequential.h5"},
        runtime="",
        ok=False,
        code="runtime_not_offered",
        en=("tensorflow", "line 2", "NumPy runtime only", "does not count"),
        ja=("NumPy の採点環境だけ", "数えていません"),
        allowed=(RuntimeName.NUMPY,),
    ),
}


@pytest.fixture(scope="module")
def config() -> ScoringConfig:
    tensorflow = find_tensorflow_runtime()
    assert tensorflow is not None, "the TensorFlow runtime is not installed: run scripts/setup.sh --test"
    return ScoringConfig(runtime=find_runtime(), tensorflow_runtime=tensorflow, limits=LIMITS, smoke_limits=LIMITS)


def zipped(path: Path, files: dict[str, str | bytes], models: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            if isinstance(content, bytes) and content.startswith(MODEL):
                source = models / content[len(MODEL) :].decode()
                for item in [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file()):
                    inside = name if item == source else f"{name}/{item.relative_to(source).as_posix()}"
                    archive.write(item, f"katakana/{inside}")
            else:
                archive.writestr(f"katakana/{name}", content)
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_case(name: str, tmp_path: Path, synthetic_set: DataSet, keras_models: Path, config: ScoringConfig) -> None:
    import dataclasses

    case = CASES[name]
    archive = zipped(tmp_path / "submission.zip", case.files, keras_models)
    run_config = dataclasses.replace(config, smoke_limits=case.limits)
    report = check_submission(
        archive,
        config=run_config,
        sample_data=synthetic_set.train_data,
        sample_labels=synthetic_set.train_label,
        runtime=RuntimeChoice(allowed=case.allowed, refuse_missing=True),
    )
    assert report.runtime == case.runtime, report.to_json()
    assert report.ok is case.ok, report.to_json()
    if case.ok:
        assert report.smoke is not None and report.smoke.total == 30
        assert report.smoke.near_chance() is case.near_chance, report.smoke
        return
    assert report.error is not None
    assert report.error.code is ErrorCode(case.code), report.to_json()
    for text in case.en:
        assert text in report.error.message("en"), report.error.message("en")
    for text in case.ja:
        assert text in report.error.message("ja"), report.error.message("ja")


def test_tensorflow_noise_is_not_in_the_trainees_log(
    tmp_path: Path, synthetic_set: DataSet, keras_models: Path, config: ScoringConfig
) -> None:
    """A Keras submission that fails shows its traceback, not TensorFlow's start-up notices."""
    source = LOAD_H5.replace("def predict(test_data):", "def predict(test_data):\n    raise ValueError('mine')")
    files: dict[str, str | bytes] = {"submit_katakana.py": source, "katakana_model.h5": MODEL + b"sequential.h5"}
    report = check_submission(zipped(tmp_path / "s.zip", files, keras_models), config=config)
    assert report.runtime == "tensorflow" and report.error is not None
    assert report.error.code is ErrorCode.PREDICT_EXCEPTION
    assert "ValueError: mine" in report.log
    for noise in ("oneDNN", "cpu_feature_guard", "absl::InitializeLog", "Compiled the loaded model", "UserWarning"):
        assert noise not in report.log, report.log


def test_the_zip_files_are_built_as_a_trainee_zips_them(tmp_path: Path, keras_models: Path) -> None:
    files: dict[str, str | bytes] = {"a.py": "x", "katakana_model": MODEL + b"savedmodel"}
    names = zipfile.ZipFile(io.BytesIO(zipped(tmp_path / "z.zip", files, keras_models).read_bytes())).namelist()
    assert "katakana/a.py" in names and "katakana/katakana_model/saved_model.pb" in names


def test_the_batch_norm_model_is_right_with_its_scaling_and_guesses_without(keras_models: Path) -> None:
    """What the near-chance case relies on, measured where the model was trained (on held-out images)."""
    trained = json.loads((keras_models / "trained.json").read_text())
    assert trained["batchnorm_accuracy"] > 0.8
    assert trained["batchnorm_unscaled_accuracy"] < 0.3
