"""The pre-flight runs on a worker: the site sends the stored zip's key and waits for the report."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from app.queue import NoWorkerAnswered, request_preflight
from app.scoring_config import scoring_config
from app.services.storage import key_for, path_for
from app.settings import Settings
from tests.fixtures.services import WorkerFactory
from tests.worker.conftest import PREDICT_RAISES, PREDICT_ZEROS, World, zip_with
from worker.tasks.preflight import run_check


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(environment="test", data_dir=tmp_path, _env_file=None, **values)  # type: ignore[call-arg]


def _zip(tmp_path: Path) -> Path:
    path = tmp_path / "s.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("submit_katakana.py", "def predict(d):\n    return [0] * len(d)\n")
    return path


def _store(settings: Settings, data: bytes) -> Path:
    assert settings.storage_dir is not None
    path = path_for(settings.storage_dir, key_for(hashlib.sha256(data).hexdigest()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_the_workers_preflight_uses_the_settings(tmp_path: Path) -> None:
    report = run_check(_settings(tmp_path, sandbox_mode="bwrap"), _zip(tmp_path))
    assert report["ok"], report
    assert report["isolation"] == "bwrap"  # the whole CheckReport comes back, not a summary
    allowed = scoring_config(_settings(tmp_path, sandbox_mode="unsandboxed", allow_unsandboxed=True))
    assert allowed.sandbox.mode == "unsandboxed" and allowed.sandbox.allow_unsandboxed


def test_a_worker_answers_the_sites_preflight_with_the_whole_report(world: World, celery_worker: object) -> None:
    good = request_preflight(world.settings, _store(world.settings, zip_with(PREDICT_ZEROS)), wait_s=120)
    assert good["ok"] is True and good["stage"] == "smoke" and good["entry"] == "submit_katakana.py"
    bad = request_preflight(world.settings, _store(world.settings, zip_with(PREDICT_RAISES)), wait_s=120)
    assert bad["ok"] is False
    assert bad["error"]["code"] == "predict_exception" and bad["error"]["blame"] == "submission"
    assert bad["error"]["message_ja"] and bad["error"]["message"]  # both languages travel with it


def test_without_a_preflight_worker_the_wait_ends_with_a_clear_refusal(
    world: World, celery_worker_factory: WorkerFactory, worker_env: dict[str, str]
) -> None:
    celery_worker_factory(worker_env, queues="scoring,email,maintenance")  # nobody serves pre-flights
    with pytest.raises(NoWorkerAnswered, match="no worker answered"):
        request_preflight(world.settings, _store(world.settings, zip_with(PREDICT_ZEROS)), wait_s=2)
