"""The downloadable templates: they parse, pass the service's static check, and actually work.

"Work" means: dropped into a folder next to a model saved as the course teaches (a dict of parameter
arrays, here the quick-trained MLP example's), the template predicts exactly what that example predicts,
and its self-check runs locally but never when the service imports it.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from examples import build_examples as be
from scorer.notebook import notebook_to_source
from scorer.static_check import check_entry_source
from tests.fixtures.artifacts import DataSet

TEMPLATES = Path(__file__).resolve().parents[2] / "scorer" / "templates"
PY = TEMPLATES / "submit_katakana.py"
IPYNB = TEMPLATES / "submit_katakana.ipynb"
MAGIC = re.compile(r"^\s*[%!]")


def notebook() -> dict:  # type: ignore[type-arg]
    return json.loads(IPYNB.read_text(encoding="utf-8"))


def code_cells_without_magics() -> list[str]:
    cells = [c for c in notebook()["cells"] if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]
    return ["\n".join(line for line in s.splitlines() if not MAGIC.match(line)) for s in sources]


def top_level_functions(source: str) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}


# ------------------------------------------------------------------------------------------------------
# Static shape


def test_py_template_compiles_and_defines_predict_with_one_argument() -> None:
    source = PY.read_text(encoding="utf-8")
    compile(source, str(PY), "exec")
    functions = top_level_functions(source)
    assert [a.arg for a in functions["predict"].args.args] == ["test_data"]
    assert "func_predict" not in functions


def test_ipynb_template_is_a_valid_nbformat4_notebook() -> None:
    nb = notebook()
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 5
    assert nb["metadata"]["kernelspec"]["language"] == "python"
    ids = [cell["id"] for cell in nb["cells"]]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids)
    for cell in nb["cells"]:
        assert cell["cell_type"] in {"code", "markdown"}
        assert isinstance(cell["metadata"], dict)
        assert isinstance(cell["source"], str | list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None  # shipped unexecuted
    assert sum(cell["cell_type"] == "code" for cell in nb["cells"]) >= 4


def test_ipynb_code_cells_compile_and_define_predict() -> None:
    cells = code_cells_without_magics()
    for i, source in enumerate(cells, start=1):
        compile(source, f"cell {i}", "exec")
    functions = top_level_functions("\n".join(cells))
    assert [a.arg for a in functions["predict"].args.args] == ["test_data"]


@pytest.mark.parametrize("path", [PY, IPYNB], ids=["py", "ipynb"])
def test_templates_pass_the_services_static_check_without_notices(path: Path) -> None:
    # What the pipeline does before a run: a notebook becomes source (its notices first), then the check.
    raw = path.read_bytes()
    if path.suffix == ".py":
        assert check_entry_source(raw, path.name) == []
    else:
        notebook = notebook_to_source(raw, path.name)
        assert notebook.notices + check_entry_source(notebook.source, path.name, notebook.locate) == []


def test_templates_are_shipped_as_package_data() -> None:
    folder = resources.files("scorer") / "templates"
    assert (folder / "submit_katakana.py").is_file() and (folder / "submit_katakana.ipynb").is_file()


# ------------------------------------------------------------------------------------------------------
# Running them next to a real model


@pytest.fixture
def mlp_folder(extracted: dict[str, Path], synthetic_set: DataSet, tmp_path: Path) -> Path:
    """A copy of the quick-trained MLP example with the training data beside it, as on a trainee's disk."""
    folder = tmp_path / "mine"
    shutil.copytree(extracted["mlp"], folder)
    shutil.copy(synthetic_set.train_data, folder / "train_data.npy")
    shutil.copy(synthetic_set.train_label, folder / "train_label.npy")
    return folder


def _template_source(kind: str) -> str:
    if kind == "py":
        return PY.read_text(encoding="utf-8")
    return notebook_to_source(IPYNB.read_bytes(), IPYNB.name).source  # the service's own conversion


@pytest.mark.parametrize("kind", ["py", "ipynb"])
def test_template_predicts_what_the_example_predicts_and_skips_its_self_check_on_import(
    kind: str,
    mlp_folder: Path,
    extracted: dict[str, Path],
    train_split: tuple[np.ndarray, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    images = train_split[0][:500]
    with be.imported_submission(extracted["mlp"]) as example:
        expected = np.asarray(example.predict(images))
    (mlp_folder / "submit_katakana.py").write_text(_template_source(kind), encoding="utf-8")

    with be.imported_submission(mlp_folder) as template:  # imported as the service does
        got = np.asarray(template.predict(images))

    assert np.array_equal(got, expected)
    assert "OK:" not in capsys.readouterr().out  # train_data.npy is there, yet the self-check stayed quiet


def test_py_template_self_check_runs_as_a_script(mlp_folder: Path) -> None:
    shutil.copy(PY, mlp_folder / "submit_katakana.py")
    done = subprocess.run(
        [sys.executable, "submit_katakana.py"], cwd=mlp_folder, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    accuracy = float(re.search(r"train accuracy = ([0-9.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    assert accuracy > 0.4


def test_ipynb_self_check_cell_runs_in_jupyter(mlp_folder: Path) -> None:
    """In Jupyter ``__name__`` is "__main__" (as under ``python -c``): there the guarded cell runs."""
    done = subprocess.run(
        [sys.executable, "-c", _template_source("ipynb")],
        cwd=mlp_folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "OK:" in done.stdout


@pytest.mark.parametrize("kind", ["py", "ipynb"])
def test_template_without_its_model_file_says_which_file_is_missing(kind: str, tmp_path: Path) -> None:
    (tmp_path / "submit_katakana.py").write_text(_template_source(kind), encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"katakana_model\.pickle"), be.imported_submission(tmp_path):
        pass
