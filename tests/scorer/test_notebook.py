"""Notebook → Python: IPython syntax is dropped without shifting lines, and lines map back to cells."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scorer.errors import ErrorCode, ScoringError
from scorer.notebook import NotebookSource, notebook_to_source


def nb(*cells: str | list[str] | dict[str, Any], nbformat: int = 4) -> bytes:
    """A notebook of code cells (a dict is taken as a whole cell, e.g. markdown)."""
    out: list[dict[str, Any]] = []
    for cell in cells:
        if isinstance(cell, dict):
            out.append(cell)
        else:
            out.append({"cell_type": "code", "metadata": {}, "outputs": [], "source": cell})
    return json.dumps({"nbformat": nbformat, "nbformat_minor": 5, "metadata": {}, "cells": out}).encode()


def convert(*cells: str | list[str] | dict[str, Any]) -> NotebookSource:
    return notebook_to_source(nb(*cells), "submit_katakana.ipynb")


def codes(result: NotebookSource) -> list[str]:
    return [n.code for n in result.notices]


def test_plain_cells_are_joined_in_order_and_map_back() -> None:
    result = convert("import numpy as np\n", {"cell_type": "markdown", "source": "# title"}, "x = 1\ny = 2")
    assert result.source == "import numpy as np\nx = 1\ny = 2\n"
    # Cells are counted among all cells, markdown included, as a trainee counts them in Jupyter.
    assert [result.locate(i) for i in (1, 2, 3)] == [(1, 1), (3, 1), (3, 2)]
    assert result.notices == []


def test_list_and_string_sources_give_the_same_code() -> None:
    as_list = convert(["def predict(test_data):\n", "    return test_data\n"])
    as_text = convert("def predict(test_data):\n    return test_data\n")
    assert as_list.source == as_text.source == "def predict(test_data):\n    return test_data\n"


def test_windows_line_endings_do_not_add_lines() -> None:
    assert convert("a = 1\r\nb = 2\r\n").source == "a = 1\nb = 2\n"


def test_line_magics_and_shell_escapes_are_dropped_in_place() -> None:
    result = convert(
        "%matplotlib inline\n!pip install tensorflow\nfiles = !ls\nnp.zeros?\n??np\nimport numpy as np\n",
        "x = 1",
    )
    assert result.source.split("\n")[:6] == ["", "", "", "", "", "import numpy as np"]
    assert result.locate(6) == (1, 6)
    assert result.locate(7) == (2, 1)
    assert codes(result) == ["magics_dropped"]
    compile(result.source, "nb", "exec")


def test_a_dropped_line_inside_a_block_becomes_pass_at_its_indentation() -> None:
    result = convert("for i in range(3):\n    !echo $i\nif True:\n    %time y = i\n")
    assert result.source == "for i in range(3):\n    pass\nif True:\n    y = i\n"
    compile(result.source, "nb", "exec")


def test_time_keeps_its_statement_and_timeit_drops_its_options() -> None:
    result = convert("%time model = train()\n%timeit -n 10 -r 3 predict(x)\n%timeit\n")
    assert result.source == "model = train()\npredict(x)\n\n"
    # The bare %timeit ran nothing: only that is reported as skipped.
    assert codes(result) == ["magics_dropped"]
    kept = convert("%time model = train()\n%timeit -n 10 predict(x)\n")
    assert codes(kept) == []  # the statements run: nothing may be announced as skipped


@pytest.mark.parametrize("magic", ["%%time", "%%timeit -n 1", "%%capture captured", "%%prun"])
def test_python_cell_magics_lose_only_their_first_line(magic: str) -> None:
    result = convert(f"{magic}\ndef predict(test_data):\n    return test_data\n")
    assert result.source == "\ndef predict(test_data):\n    return test_data\n"
    assert result.locate(2) == (1, 2)
    assert codes(result) == []  # the body runs: nothing was skipped


@pytest.mark.parametrize("magic", ["%%bash", "%%sh", "%%script bash", "%%html", "%%javascript", "%%latex"])
def test_non_python_cell_magics_drop_the_whole_cell(magic: str) -> None:
    result = convert("a = 1", f"{magic}\necho hi && rm -rf ~\n", "b = 2")
    assert result.source == "a = 1\nb = 2\n"
    assert result.locate(2) == (3, 1)
    assert codes(result) == ["cell_skipped"]
    assert "2" in result.notices[0].en


def test_writefile_cell_is_dropped_and_the_notice_names_the_file() -> None:
    result = convert("%%writefile -a util.py\ndef helper():\n    pass\n", "import util")
    assert result.source == "import util\n"
    assert codes(result) == ["writefile_skipped"]
    assert "util.py" in result.notices[0].en and "util.py" in result.notices[0].ja


def test_magic_lookalikes_inside_strings_and_brackets_are_python() -> None:
    cell = (
        'def f():\n    """Why?\n%d items\n!important\n    """\n    return 1\nx = (1,\n     2)\ny = 10 % 3\nz = a != b\n'
    )
    result = convert(cell)
    assert result.source == cell
    assert result.notices == []


def test_help_on_a_dotted_name_is_dropped_but_a_conditional_expression_is_not() -> None:
    result = convert("np.linalg.norm?\nv = a if b else c\n")
    assert result.source == "\nv = a if b else c\n"


def test_execution_counts_are_shown_when_present() -> None:
    raw = json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [
                {"cell_type": "code", "execution_count": 7, "source": "a = 1\nb = (", "outputs": []},
                {"cell_type": "code", "execution_count": None, "source": "c = 3", "outputs": []},
            ],
        }
    ).encode()
    result = notebook_to_source(raw, "x.ipynb")
    assert result.describe(2) == "cell 1 (In [7]), line 2"
    assert result.describe(3) == "cell 2, line 1"


def test_locate_maps_a_syntax_error_to_its_cell_and_line() -> None:
    result = convert("%matplotlib inline\nimport numpy as np", "x = 1\n\ndef predict(test_data)\n    return 1")
    with pytest.raises(SyntaxError) as caught:
        compile(result.source, "nb", "exec")
    assert caught.value.lineno is not None
    assert result.locate(caught.value.lineno) == (2, 3)


def test_locate_clamps_past_the_end_and_handles_empty_notebooks() -> None:
    result = convert("a = 1", "b = 2")
    assert result.locate(99) == (2, 1)
    assert convert().locate(1) == (0, 1)


def test_bom_is_accepted() -> None:
    assert notebook_to_source(b"\xef\xbb\xbf" + nb("a = 1"), "x.ipynb").source == "a = 1\n"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not"),
        (b"[1, 2]", "not a notebook"),
        (b'{"nbformat": 4}', "no list of cells"),
        (nb("a = 1", nbformat=3), "too old"),
        (b'{"nbformat": 3, "worksheets": []}', "too old"),
        (b'{"nbformat": 4, "cells": [1]}', "cell 1 is not an object"),
        (b'{"nbformat": 4, "cells": [{"cell_type": "code", "source": 5}]}', "not text"),
    ],
)
def test_unreadable_notebooks(raw: bytes, reason: str) -> None:
    with pytest.raises(ScoringError) as caught:
        notebook_to_source(raw, "submit_katakana.ipynb")
    assert caught.value.code == ErrorCode.NOTEBOOK_UNREADABLE
    assert caught.value.params["name"] == "submit_katakana.ipynb"
    assert reason in caught.value.params["reason"]


def test_run_and_load_say_that_their_code_is_missing() -> None:
    result = convert("%run helpers.py\nx = 1\n")
    assert result.source == "\nx = 1\n"
    assert codes(result) == ["run_skipped", "magics_dropped"]
    assert "helpers.py" in result.notices[0].en


def test_file_is_an_alias_of_writefile() -> None:
    assert codes(convert("%%file util.py\nx = 1\n")) == ["writefile_skipped"]
