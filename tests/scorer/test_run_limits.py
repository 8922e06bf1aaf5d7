"""The run's memory limit holds for the run as a whole, through the whole pipeline.

Memory was limited per process (RLIMIT_AS) only: three children of 1.8 GiB each ran together under
a 4 GiB limit and the run succeeded. The run's control group (or, without one, the supervisor) ends
such a run as ``memory_limit``, the submission's fault.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from scorer.pipeline import ScoringConfig, score_submission
from scorer.runtime import find_runtime
from scorer.sandbox.types import GiB, Limits, MiB
from tests.fixtures.artifacts import DataSet

pytestmark = pytest.mark.sandbox  # limits enforced by the real sandbox

CHILDREN = """
import os, time
import numpy as np


def predict(test_data):
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            block = bytearray(int(1.8 * 1024 ** 3))  # 1.8 GiB: each one alone is within 4 GiB
            time.sleep(600)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return np.zeros(len(test_data), dtype=int)
"""


def test_three_children_of_1_8_gib_end_as_memory_limit_at_4_gib(tmp_path: Path, synthetic_set: DataSet) -> None:
    archive = tmp_path / "children.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("submit_katakana.py", CHILDREN)
    limits = Limits(wall_seconds=300.0, memory_bytes=4 * GiB, writable_bytes=64 * MiB)
    config = ScoringConfig(runtime=find_runtime(), limits=limits)
    report = score_submission(
        archive, test_data=synthetic_set.small_data, test_labels=synthetic_set.small_label, config=config
    )
    assert report.facts.isolation == "bwrap", "must run in the real sandbox"
    assert report.status == "failed", report.to_json()
    assert report.error is not None and report.error.code.value == "memory_limit", report.to_json()
    assert report.error.code.blame.value == "submission"
