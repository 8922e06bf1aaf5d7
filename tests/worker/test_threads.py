"""The worker's own numpy work runs on one BLAS thread unless the operator says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import worker, os; print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])"


@pytest.mark.parametrize(("given", "expected"), [(None, "1 1"), ("3", "3 1")])
def test_importing_the_worker_caps_blas_threads_unless_the_operator_set_them(given: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    shown = subprocess.run([sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.split() == expected.split()
