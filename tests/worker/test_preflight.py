"""The pre-flight a worker runs takes the service's settings (the task that runs it and acts on the
verdict is tested in ``test_upload_checks``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from app.scoring_config import scoring_config
from app.settings import Settings
from worker.tasks.preflight import run_check


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(environment="test", data_dir=tmp_path, _env_file=None, **values)  # type: ignore[call-arg]


def _zip(tmp_path: Path) -> Path:
    path = tmp_path / "s.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("submit_katakana.py", "def predict(d):\n    return [0] * len(d)\n")
    return path


def test_the_workers_preflight_uses_the_settings(tmp_path: Path) -> None:
    report = run_check(_settings(tmp_path, sandbox_mode="bwrap"), _zip(tmp_path))
    assert report["ok"], report
    assert report["isolation"] == "bwrap"  # the whole CheckReport comes back, not a summary
    allowed = scoring_config(_settings(tmp_path, sandbox_mode="unsandboxed", allow_unsandboxed=True))
    assert allowed.sandbox.mode == "unsandboxed" and allowed.sandbox.allow_unsandboxed
