"""Submissions written the way the course's trainees write them, through the real sandbox.

One folder per case under ``cases/``: the trainee's ``submit_katakana.ipynb`` and ``case.json``
(how it is zipped, and the expected outcome and message). Every case is zipped with the trainee's
own ``common/`` package and a batch-norm model pickled as NumPy 1.x wrote it, then pre-flighted on
the public images (the synthetic training set stands in for the course's) with their labels, as
the site does once an admin has imported the public set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scorer.pipeline import ScoringConfig, check_submission
from scorer.runtime import find_runtime, find_tensorflow_runtime
from scorer.sandbox.types import Limits, MiB
from tests.fixtures.artifacts import DataSet
from tests.scorer.real_code.trainee import MODEL_FILE, common_files, zip_folder

CASES = Path(__file__).resolve().parent / "cases"
LIMITS = Limits(wall_seconds=60.0, memory_bytes=2048 * MiB)


def _cases() -> list[Any]:
    return [pytest.param(folder, id=folder.name) for folder in sorted(CASES.iterdir()) if folder.is_dir()]


@pytest.fixture(scope="module")
def config() -> ScoringConfig:
    tensorflow = find_tensorflow_runtime()
    assert tensorflow is not None, "the TensorFlow runtime is not installed: run scripts/setup.sh --test"
    return ScoringConfig(runtime=find_runtime(), tensorflow_runtime=tensorflow, limits=LIMITS, smoke_limits=LIMITS)


@pytest.mark.parametrize("folder", _cases())
@pytest.mark.sandbox
def test_case(
    folder: Path, tmp_path: Path, synthetic_set: DataSet, trainee_model: bytes, config: ScoringConfig
) -> None:
    case = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    files = {"submit_katakana.ipynb": (folder / "submit_katakana.ipynb").read_bytes()}
    if case["model"]:
        files[MODEL_FILE] = trainee_model
        assert b"numpy.core.multiarray" in trainee_model and b"numpy._core" not in trainee_model
    if case["common"]:
        files.update(common_files())
    archive = zip_folder(tmp_path / "submission.zip", case["folder"], files, case["zip"])

    report = check_submission(
        archive, config=config, sample_data=synthetic_set.train_data, sample_labels=synthetic_set.train_label
    )
    expect = case["expect"]
    assert report.ok is expect["ok"], report.to_json()
    if report.stage == "smoke":  # past intake: the real folder name, however it was zipped
        assert report.entry == f"{case['folder']}/submit_katakana.ipynb"
    if expect["ok"]:
        assert report.smoke is not None and report.smoke.total == 30
        assert report.smoke.near_chance() is expect["near_chance"], report.smoke
        return
    assert report.error is not None
    assert report.error.code.value == expect["code"], report.to_json()
    for text in expect["ja"]:
        assert text in report.error.message("ja"), report.error.message("ja")
    for text in expect["en"]:
        assert text in report.error.message("en"), report.error.message("en")


def test_every_case_folder_is_complete() -> None:
    folders = [f for f in CASES.iterdir() if f.is_dir()]
    assert len(folders) >= 7
    for folder in folders:
        case = json.loads((folder / "case.json").read_text(encoding="utf-8"))
        assert {"description", "zip", "folder", "model", "common", "expect"} <= set(case), folder.name
        assert (folder / "submit_katakana.ipynb").is_file(), folder.name
