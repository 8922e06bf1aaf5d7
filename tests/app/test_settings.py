"""Settings: working defaults for the embedded setup; production refuses to start when unsafe."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import PLACEHOLDER_SECRET, Settings

STRONG = "s" * 48


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_defaults_live_under_the_data_dir(tmp_path: Path) -> None:
    settings = _settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'katakana.sqlite3'}"
    assert settings.storage_dir == tmp_path / "storage"
    assert settings.mail_dir == tmp_path / "mail"
    assert settings.upload_max_bytes == 100 * 1024 * 1024
    assert settings.default_daily_limit == 3
    assert settings.default_timezone == "Asia/Tokyo"


def test_environment_variables_use_the_katakana_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATAKANA_DEFAULT_DAILY_LIMIT", "5")
    monkeypatch.setenv("KATAKANA_DATABASE_URL", "postgresql+psycopg://u@db/k")
    settings = _settings()
    assert settings.default_daily_limit == 5
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"secret_key": PLACEHOLDER_SECRET}, "KATAKANA_SECRET_KEY"),
        ({"secret_key": "short"}, "KATAKANA_SECRET_KEY"),
        ({"secret_key": STRONG, "sandbox_mode": "unsandboxed"}, "sandbox is disabled"),
        ({"secret_key": STRONG, "allow_unsandboxed": True}, "sandbox is disabled"),
        ({"secret_key": STRONG, "preflight": False}, "KATAKANA_PREFLIGHT"),
    ],
)
def test_production_refuses_unsafe_settings(values: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):  # pydantic wraps UnsafeSettingsError
        _settings(environment="production", **values)


def test_production_with_safe_settings_starts() -> None:
    settings = _settings(environment="production", secret_key=STRONG, sandbox_mode="bwrap")
    assert settings.is_production


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        _settings(default_timezone="Asia/Nowhere")
