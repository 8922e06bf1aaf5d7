"""The runtime a submission gets, decided from what its code imports, statically (nothing runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorer.errors import Blame, ErrorCode, ScoringError
from scorer.notebook import notebook_to_source
from scorer.runtime import Runtime, RuntimeName, Runtimes, RuntimeUnavailable
from scorer.runtime_choice import RuntimeChoice, choose_runtime, framework_imports
from tests.scorer.test_notebook import nb

NUMPY = Runtime(Path("/numpy/bin/python"))
TENSORFLOW = Runtime(Path("/tensorflow/bin/python"), name=RuntimeName.TENSORFLOW)
BOTH = Runtimes(NUMPY, TENSORFLOW)


def imports(tmp_path: Path, source: str, files: dict[str, str] | None = None) -> list[str]:
    for name, text in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return [f"{i.module}@{i.file}:{i.where}" for i in framework_imports(source, "submit_katakana.py", tmp_path)]


@pytest.mark.parametrize(
    "source",
    [
        "import tensorflow as tf",
        "from tensorflow import keras",
        "from tensorflow.keras.models import load_model",
        "import keras",
        "from keras.models import load_model",
        "import tf_keras",
        "def predict(x):\n    import keras\n    return x",
        "import importlib\nm = importlib.import_module('keras')",
        "tf = __import__('tensorflow')",
        "from importlib import import_module\nimport_module('tensorflow.keras')",
    ],
)
def test_every_way_of_importing_a_framework_is_seen(tmp_path: Path, source: str) -> None:
    found = imports(tmp_path, source)
    assert found and found[0].split("@")[0].split(".")[0] in ("tensorflow", "keras", "tf_keras")


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nimport pickle",
        "from sklearn.model_selection import train_test_split",
        "# import tensorflow\nx = 'import keras'",
        "import tensorflowish\nimport kerasy",
        "import importlib\nname = 'keras'\nimportlib.import_module(name)",  # not a literal: not seen
    ],
)
def test_numpy_code_imports_no_framework(tmp_path: Path, source: str) -> None:
    assert imports(tmp_path, source) == []


def test_imports_inside_the_trainees_own_modules_are_followed(tmp_path: Path) -> None:
    files = {
        "common/__init__.py": "",
        "common/network.py": "from .layers import Dense\n",
        "common/layers.py": "import numpy as np\nfrom tensorflow import keras\n",
        "helpers.py": "import os\n",
    }
    found = imports(tmp_path, "import helpers\nfrom common.network import Net\n", files)
    assert found == ["tensorflow@common/layers.py:line 2"]


def test_a_from_import_of_an_own_submodule_is_followed(tmp_path: Path) -> None:
    files = {"lib/__init__.py": "", "lib/model.py": "import keras\n"}
    assert imports(tmp_path, "from lib import model\n", files) == ["keras@lib/model.py:line 1"]


def test_own_modules_are_looked_up_beside_the_entry_only(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "elsewhere.py").write_text("import keras\n")
    # The entry lives in sub/: Python finds own modules there (sys.path[0]), not one folder up.
    found = framework_imports("import elsewhere\n", "submit_katakana.py", tmp_path / "sub")
    assert found == []


def test_a_module_that_does_not_parse_is_skipped_and_cycles_end(tmp_path: Path) -> None:
    files = {"a.py": "import b\n", "b.py": "import a\nimport keras\n", "broken.py": "def (:\n"}
    assert imports(tmp_path, "import a\nimport broken\n", files) == ["keras@b.py:line 2"]


def test_a_relative_import_climbing_out_of_the_top_is_ignored(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": "from ... import keras\n"}
    assert imports(tmp_path, "import pkg\n", files) == []


def test_a_notebook_import_is_located_by_cell(tmp_path: Path) -> None:
    converted = notebook_to_source(nb("import numpy as np", "x = 1\nfrom keras.models import load_model"), "nb")
    found = framework_imports(converted.source, "submit_katakana.ipynb", tmp_path, converted.locate)
    assert [(f.module, f.file, f.where, f.where_ja) for f in found] == [
        (
            "keras.models",
            "submit_katakana.ipynb",
            "cell 2, line 2",
            "セル 2 の 2 行目",
        )
    ]


def test_numpy_code_runs_in_the_numpy_runtime_even_where_tensorflow_is_allowed(tmp_path: Path) -> None:
    assert choose_runtime([], BOTH, allowed={RuntimeName.NUMPY, RuntimeName.TENSORFLOW}) is NUMPY


def test_keras_code_runs_in_the_tensorflow_runtime(tmp_path: Path) -> None:
    found = framework_imports("import keras\n", "submit_katakana.py", tmp_path)
    assert choose_runtime(found, BOTH, allowed=set(RuntimeName)) is TENSORFLOW
    assert choose_runtime(found, BOTH) is TENSORFLOW  # scoring: whatever is installed


def test_a_cohort_limited_to_numpy_refuses_keras_code_saying_nothing_was_spent(tmp_path: Path) -> None:
    found = framework_imports("import numpy\nfrom tensorflow import keras\n", "submit_katakana.py", tmp_path)
    with pytest.raises(ScoringError) as caught:
        choose_runtime(found, BOTH, allowed={RuntimeName.NUMPY})
    error = caught.value
    assert error.code is ErrorCode.RUNTIME_NOT_OFFERED and error.code.blame is Blame.SUBMISSION
    assert "tensorflow" in error.message("en") and "line 2" in error.message("en")
    assert "NumPy runtime only" in error.message("en") and "does not count" in error.message("en")
    assert "NumPy の採点環境だけ" in error.message("ja") and "2 行目" in error.message("ja")
    assert "数えていません" in error.message("ja")


def test_without_the_tensorflow_runtime_keras_code_is_refused_at_the_preflight(tmp_path: Path) -> None:
    found = framework_imports("import keras\n", "submit_katakana.py", tmp_path)
    with pytest.raises(ScoringError) as caught:
        choose_runtime(found, Runtimes(NUMPY), allowed=set(RuntimeName))
    assert caught.value.code is ErrorCode.RUNTIME_NOT_OFFERED
    assert "not installed on this server" in caught.value.message("en")
    assert "インストールされていません" in caught.value.message("ja")


def test_when_scoring_a_missing_tensorflow_runtime_is_the_servers_fault(tmp_path: Path) -> None:
    found = framework_imports("import keras\n", "submit_katakana.py", tmp_path)
    with pytest.raises(RuntimeUnavailable):
        choose_runtime(found, Runtimes(NUMPY), refuse_missing=False)


def test_the_purposes_rules_as_a_value(tmp_path: Path) -> None:
    """The pre-flight's choice (the cohort's runtimes, a missing one refused) and scoring's (whatever
    the code needs), and a runtime forced by name as the command line's --runtime does."""
    keras = framework_imports("import keras\n", "submit_katakana.py", tmp_path)
    preflight = RuntimeChoice(allowed={RuntimeName.NUMPY}, refuse_missing=True)
    with pytest.raises(ScoringError):
        preflight.choose(keras, BOTH)
    assert preflight.choose([], BOTH) is NUMPY
    assert RuntimeChoice().choose(keras, BOTH) is TENSORFLOW
    assert RuntimeChoice(forced=RuntimeName.TENSORFLOW).choose([], BOTH) is TENSORFLOW
    assert RuntimeChoice(forced=RuntimeName.NUMPY).choose(keras, BOTH) is NUMPY
    with pytest.raises(RuntimeUnavailable):
        RuntimeChoice(forced=RuntimeName.TENSORFLOW).choose([], Runtimes(NUMPY))
