"""The worker's pre-flight and its scoring share one engine configuration derived from Settings, and it
never falls back to an unsandboxed run unless an admin explicitly allowed it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app.scoring_config import TENSORFLOW_MIN_MEMORY_MB, scoring_config
from scorer.errors import Blame, ErrorCode
from scorer.pipeline import check_submission
from scorer.sandbox.types import Limits
from tests.fixtures.engine import engine_settings, trivial_zip


def test_the_default_refuses_to_run_unsandboxed(tmp_path: Path) -> None:
    config = scoring_config(engine_settings(tmp_path))
    assert config.sandbox.allow_unsandboxed is False
    no_bwrap = dataclasses.replace(config, sandbox=dataclasses.replace(config.sandbox, bwrap_path="/nonexistent/bwrap"))
    report = check_submission(trivial_zip(tmp_path), config=no_bwrap)
    assert report.error is not None and report.error.code is ErrorCode.SANDBOX_UNAVAILABLE
    assert report.error.code.blame is Blame.SERVER  # the trainee keeps their slot


def test_the_engine_gets_its_limits_from_the_settings_as_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KATAKANA_WALL_SECONDS", "30")
    monkeypatch.setenv("KATAKANA_MEMORY_MB", "2048")
    settings = engine_settings(tmp_path, cpus=2)
    monkeypatch.setenv("KATAKANA_WALL_SECONDS", "999")  # read once, into Settings: not again by the engine
    config = scoring_config(settings)
    assert (config.limits.wall_seconds, config.limits.memory_bytes, config.limits.cpus) == (30.0, 2048 * 1024**2, 2)
    assert scoring_config(engine_settings(tmp_path)).limits.wall_seconds == 999.0  # a new Settings reads it anew
    monkeypatch.delenv("KATAKANA_WALL_SECONDS")
    monkeypatch.delenv("KATAKANA_MEMORY_MB")
    assert scoring_config(engine_settings(tmp_path)).limits == Limits()  # unset: the course's defaults


def test_a_run_memory_too_small_for_the_tensorflow_runtime_stops_the_worker_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the floor every Keras run would die importing TensorFlow, each a refund: refuse to start."""
    python = tmp_path / "tf" / "bin" / "python"
    monkeypatch.setenv("KATAKANA_TENSORFLOW_RUNTIME_PYTHON", str(python))
    monkeypatch.setenv("KATAKANA_MEMORY_MB", str(TENSORFLOW_MIN_MEMORY_MB - 1))
    with pytest.raises(ValueError, match=f"KATAKANA_MEMORY_MB={TENSORFLOW_MIN_MEMORY_MB - 1} is too little") as raised:
        scoring_config(engine_settings(tmp_path))
    assert str(python) in str(raised.value)
    monkeypatch.setenv("KATAKANA_MEMORY_MB", str(TENSORFLOW_MIN_MEMORY_MB))
    assert scoring_config(engine_settings(tmp_path)).tensorflow_runtime is not None
