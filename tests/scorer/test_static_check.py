"""Static check: syntax errors and a missing predict are found without running anything."""

from __future__ import annotations

import json
import re

import pytest

from scorer.bounded import StaticLimits, run_bounded
from scorer.errors import ErrorCode, ScoringError
from scorer.notebook import notebook_to_source
from scorer.static_check import check_entry_source

FILE = "submit_katakana.py"


def error_of(source: str | bytes) -> ScoringError:
    with pytest.raises(ScoringError) as caught:
        check_entry_source(source, FILE)
    return caught.value


def codes(source: str | bytes) -> list[str]:
    return [n.code for n in check_entry_source(source, FILE)]


@pytest.mark.parametrize(
    "source",
    [
        "def predict(test_data):\n    return test_data\n",
        "async def helper():\n    pass\npredict = lambda test_data: test_data\n",
        "from mymodel import predict\n",
        "from mymodel import infer as predict\n",
        "import mymodel.infer as predict\n",
        "import predict\n",
        "predict: object = None\n",
        "a, (b, predict) = 1, (2, 3)\n",
        "try:\n    from fast import predict\nexcept ImportError:\n    from slow import predict\n",
        "if True:\n    def predict(test_data):\n        return 1\n",
        "with open('m') as f:\n    class predict:\n        def __init__(self, test_data): pass\n",
        "for predict in [print]:\n    pass\n",
        "if (predict := print):\n    pass\n",
        "[(predict := print) for _ in range(1)]\n",
    ],
)
def test_predict_bound_at_module_level_passes(source: str) -> None:
    assert codes(source) == []


@pytest.mark.parametrize(
    "source",
    [
        "",
        "def train():\n    def predict(test_data):\n        return 1\n",
        "class Model:\n    def predict(self, test_data):\n        return 1\n",
        "predict: object\n",  # annotation only: binds nothing
        "f = lambda: (predict := 1)\n",
        "[predict for predict in range(3)]\n",
        "model.predict = print\n",
    ],
)
def test_missing_predict(source: str) -> None:
    err = error_of(source)
    assert err.code == ErrorCode.PREDICT_MISSING
    assert err.params == {"file": FILE}


def test_legacy_func_predict_message_shows_the_fix() -> None:
    err = error_of("def func_predict(test_data, test_label):\n    return 0.9, 0.1\n")
    assert err.code == ErrorCode.LEGACY_FUNC_PREDICT
    assert "def predict(test_data)" in err.message("en")
    assert "def predict(test_data)" in err.message("ja")
    assert FILE in err.message("en")
    # The whole migration, the preprocessing included, and the Japanese text in Japanese only.
    ja = err.message("ja")
    assert "前処理" in ja and "test_data / 255" in ja
    assert not re.search(r"\b(the|delete|lines|that|use|Change|compute|return the)\b", ja), ja


def test_legacy_is_fine_when_predict_exists_too() -> None:
    assert codes("def func_predict(a, b):\n    pass\ndef predict(test_data):\n    pass\n") == []


def test_syntax_error_reports_file_line_and_reason() -> None:
    err = error_of("import numpy as np\n\ndef predict(test_data)\n    return 1\n")
    assert err.code == ErrorCode.SYNTAX_ERROR
    assert err.params["file"] == FILE
    assert err.params["line"] == "line 3"
    assert "expected ':'" in err.params["reason"]
    assert "def predict(test_data)" in err.detail


def test_compiler_only_errors_are_syntax_errors_too() -> None:
    err = error_of("x = 1\nreturn x\n")
    assert err.code == ErrorCode.SYNTAX_ERROR
    assert err.params["line"] == "line 2"
    assert "outside function" in err.params["reason"]


def test_nothing_is_executed() -> None:
    source = "raise SystemExit('ran')\nimport os\nos._exit(3)\ndef predict(test_data):\n    pass\n"
    assert codes(source) == []


def test_non_utf8_bytes_say_how_to_fix_and_cookies_are_honoured() -> None:
    # Like an import, which compiles the bytes: CP932 in a string literal fails, in a comment it passes.
    cp932 = 'MODEL = "学習済みモデル.pkl"\ndef predict(test_data):\n    pass\n'.encode("cp932")
    err = error_of(cp932)
    assert err.code == ErrorCode.SYNTAX_ERROR
    assert err.params["line"] == "line 1"
    assert "UTF-8" in err.params["reason"]
    assert codes("# 学習済みモデル\ndef predict(test_data):\n    pass\n".encode("cp932")) == []
    assert codes(b"# -*- coding: cp932 -*-\n" + cp932) == []
    assert codes(b"\xef\xbb\xbfdef predict(test_data):\n    pass\n") == []


def test_null_bytes_are_a_syntax_error() -> None:
    assert error_of("def predict(x):\n    pass\n\x00").code == ErrorCode.SYNTAX_ERROR


def test_notebook_syntax_error_names_cell_and_line() -> None:
    raw = json.dumps(
        {
            "nbformat": 4,
            "cells": [
                {"cell_type": "code", "source": "%matplotlib inline\nimport numpy as np"},
                {"cell_type": "markdown", "source": "## Model"},
                {"cell_type": "code", "source": "x = 1\ns = 'unterminated\n"},
            ],
        }
    ).encode()
    nb = notebook_to_source(raw, "submit_katakana.ipynb")
    with pytest.raises(ScoringError) as caught:
        check_entry_source(nb.source, "submit_katakana.ipynb", nb.locate)
    # The third cell from the top (the markdown cell counts, as it does when counting in Jupyter).
    assert caught.value.params["line"] == "cell 3, line 2"
    assert "cell 3, line 2" in caught.value.message("en")
    assert "セル 3 の 2 行目" in caught.value.message("ja") and "cell 3" not in caught.value.message("ja")


def test_a_full_width_space_is_named_in_both_languages() -> None:
    err = error_of("def predict(test_data):\n\u3000return test_data\n")
    assert err.code == ErrorCode.SYNTAX_ERROR
    assert "全角スペース" in err.message("ja") and "U+3000" not in err.message("ja")
    assert "full-width space (U+3000" in err.message("en")


def test_a_star_import_from_the_trainees_package_does_not_hide_a_legacy_func_predict() -> None:
    source = (
        "from common.functions import *\n"
        "def makedataset():\n"
        "    return np.load('../1_data/train_data.npy') / 255\n"
        "def func_predict(test_data, test_label):\n"
        "    return 0.0, 1.0\n"
    )
    err = error_of(source)
    assert err.code == ErrorCode.LEGACY_FUNC_PREDICT
    assert "test_data / 255" in err.message("ja") and "makedataset()" in err.message("ja")
    assert "same preprocessing your makedataset()/training did (e.g. test_data / 255)" in err.message("en")


@pytest.mark.parametrize(
    ("signature", "notice"),
    [
        ("def predict(test_data, test_label):", "2 required"),
        ("def predict():", "0 required"),
        ("def predict(test_data, *, batch):", "batch"),
        ("async def predict(test_data):", "async"),
    ],
)
def test_odd_predict_signatures_only_warn(signature: str, notice: str) -> None:
    notices = check_entry_source(f"{signature}\n    pass\n", FILE)
    assert notices, signature
    assert any(notice in n.en for n in notices)
    assert all(n.ja for n in notices)


@pytest.mark.parametrize(
    "signature",
    ["def predict(test_data):", "def predict(x, batch=500):", "def predict(*args):", "def predict(x, /):"],
)
def test_usable_signatures_do_not_warn(signature: str) -> None:
    assert codes(f"{signature}\n    pass\n") == []


def test_star_import_is_given_the_benefit_of_the_doubt() -> None:
    assert codes("from mymodel import *\n") == ["predict_from_star_import"]


def test_get_ipython_left_in_an_exported_py_is_flagged() -> None:
    source = "get_ipython().run_line_magic('matplotlib', 'inline')\ndef predict(test_data):\n    pass\n"
    assert codes(source) == ["get_ipython"]


@pytest.mark.parametrize("source", ["x = 1\n" * 50_000, ("x = 1\n" * 50_000).encode(), "# " + "ア" * 90_000 + "\n"])
def test_source_over_the_limit_is_refused_before_it_is_parsed(source: str | bytes) -> None:
    error = error_of(source)  # 293 KiB, 293 KiB, 264 KiB: a character of katakana is 3 bytes
    assert error.code is ErrorCode.ENTRY_TOO_LARGE
    assert error.params["limit"] == "256 KiB" and error.params["file"] == FILE
    assert "np.save" in error.message("en") and "np.save" in error.message("ja")
    assert codes("x = 1\n" * 40_000 + "def predict(d):\n    return d\n") == []  # 234 KiB is fine


def test_a_notebook_is_measured_by_its_code_cells() -> None:
    def notebook(code: str, output: str) -> bytes:
        cell = {"cell_type": "code", "source": code, "metadata": {}, "execution_count": 1}
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": output}]
        return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()

    # Large outputs (plots, logs) are no code; code over the limit is refused before it is converted.
    assert notebook_to_source(notebook("def predict(d):\n    return d\n", "x" * 1_000_000), "nb.ipynb").source
    with pytest.raises(ScoringError) as caught:
        notebook_to_source(notebook("x = 1\n" * 50_000, ""), "nb.ipynb")
    assert caught.value.code is ErrorCode.ENTRY_TOO_LARGE and caught.value.params["file"] == "nb.ipynb"


def test_deep_nesting_is_a_syntax_error_in_a_bounded_check_too() -> None:
    # CPython's parser raises MemoryError for this with a few KiB in use: not the check's memory.
    source = "x = " + "-" * 10_000 + "1\ndef predict(d):\n    return d\n"
    with pytest.raises(ScoringError) as caught:
        run_bounded(check_entry_source, source, FILE, limits=StaticLimits())
    assert caught.value.code is ErrorCode.SYNTAX_ERROR
    assert caught.value.params["reason"] == "the code is nested too deeply"
