"""The workers' own settings: production refuses to run without the sandbox self-test."""

from __future__ import annotations

import pytest

from worker.config import WorkerConfig


@pytest.mark.parametrize("setting", ["KATAKANA_WORKER_SELFTEST", "KATAKANA_WORKER_SELFTEST_FORCE_FAIL"])
def test_production_refuses_a_worker_without_its_sandbox_self_test(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv(setting, "0" if setting.endswith("SELFTEST") else "1")
    assert WorkerConfig().environment == "development"  # allowed while developing
    monkeypatch.setenv("KATAKANA_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="unsafe production settings: KATAKANA_WORKER_SELFTEST"):
        WorkerConfig()


def test_production_accepts_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATAKANA_ENVIRONMENT", "production")
    assert WorkerConfig().selftest
