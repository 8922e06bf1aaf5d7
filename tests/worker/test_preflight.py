"""The pre-flight a worker runs takes the service's settings (the task that runs it and acts on the
verdict is tested in ``test_upload_checks``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.scoring_config import scoring_config
from tests.fixtures.engine import engine_settings, trivial_zip
from worker.tasks.preflight import run_check

pytestmark = pytest.mark.sandbox  # the worker's pre-flight runs the real sandbox


def test_the_workers_preflight_uses_the_settings(tmp_path: Path) -> None:
    report = run_check(engine_settings(tmp_path, sandbox_mode="bwrap"), trivial_zip(tmp_path))
    assert report["ok"], report
    assert report["isolation"] == "bwrap"  # the whole CheckReport comes back, not a summary
    allowed = scoring_config(engine_settings(tmp_path, sandbox_mode="unsandboxed", allow_unsandboxed=True))
    assert allowed.sandbox.mode == "unsandboxed" and allowed.sandbox.allow_unsandboxed
