"""Settings: one object for web, workers and scorer; working defaults; production refuses the unsafe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.settings import PLACEHOLDER_SECRET, Settings, UnsafeSettingsError, WorkerSettings

STRONG = "s" * 48
SITE = "https://scorer.example.ac.jp"


def environment_variables() -> dict[str, str]:
    """Every ``KATAKANA_*`` variable the settings read, mapped to its attribute path on ``Settings``:
    what the documentation and the deployment files are held against."""
    names: dict[str, str] = {}
    for name in Settings.model_fields:
        if name == "worker":  # split once after WORKER: see app/settings.py
            names |= {f"KATAKANA_WORKER_{sub.upper()}": f"worker.{sub}" for sub in WorkerSettings.model_fields}
        else:
            names[f"KATAKANA_{name.upper()}"] = name
    return names


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


def test_the_preflight_confirmation_window_is_read_under_its_name_and_its_old_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().preflight_confirm_ttl_h == 24
    monkeypatch.setenv("KATAKANA_UPLOAD_CHECK_CONFIRM_TTL_H", "6")  # a deployment's setting from before the rename
    assert Settings().preflight_confirm_ttl_h == 6
    monkeypatch.setenv("KATAKANA_PREFLIGHT_CONFIRM_TTL_H", "3")
    assert Settings().preflight_confirm_ttl_h == 3
    assert Settings(preflight_confirm_ttl_h=2).preflight_confirm_ttl_h == 2


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"secret_key": PLACEHOLDER_SECRET}, "KATAKANA_SECRET_KEY"),
        ({"secret_key": "short"}, "KATAKANA_SECRET_KEY"),
        ({"secret_key": STRONG, "sandbox_mode": "unsandboxed"}, "sandbox is disabled"),
        ({"secret_key": STRONG, "allow_unsandboxed": True}, "sandbox is disabled"),
        ({"secret_key": STRONG, "preflight": False}, "KATAKANA_PREFLIGHT"),
        ({"secret_key": STRONG, "worker": {"selftest": False}}, "KATAKANA_WORKER_SELFTEST is off"),
        ({"secret_key": STRONG, "worker": {"selftest_force_fail": True}}, "KATAKANA_WORKER_SELFTEST_FORCE_FAIL"),
        ({"secret_key": STRONG, "base_url": ""}, "KATAKANA_BASE_URL is not set"),
    ],
)
def test_production_refuses_unsafe_settings(values: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):  # pydantic wraps UnsafeSettingsError
        _settings(environment="production", **{"base_url": SITE, **values})


def test_production_with_safe_settings_starts() -> None:
    settings = _settings(environment="production", secret_key=STRONG, sandbox_mode="bwrap", base_url=SITE + "/")
    assert settings.is_production and settings.base_url == SITE


def test_without_a_base_url_links_point_at_the_configured_port_outside_production() -> None:
    assert _settings().base_url == "http://127.0.0.1:8000"
    assert _settings(port=8123).base_url == "http://127.0.0.1:8123"
    assert not _settings(port=8123).base_url_given and _settings(base_url=SITE).base_url_given


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        _settings(default_timezone="Asia/Nowhere")


def test_each_unsafe_setting_is_refused_on_its_own_and_allowed_while_developing() -> None:
    safe = {"secret_key": STRONG, "base_url": SITE}
    for unsafe in (
        {"sandbox_mode": "unsandboxed"},
        {"allow_unsandboxed": True},
        {"preflight": False},
        {"worker": {"selftest": False}},
        {"worker": {"selftest_force_fail": True}},
        {"base_url": ""},
    ):
        assert not _settings(**{**safe, **unsafe}).is_production  # a laptop may do all of these
        with pytest.raises(ValueError, match="unsafe production settings") as caught:
            _settings(environment="production", **{**safe, **unsafe})
        assert isinstance(caught.value.errors()[0]["ctx"]["error"], UnsafeSettingsError)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("variable", "value", "path", "expected"),
    [
        ("KATAKANA_WORKER_HEARTBEAT_INTERVAL_S", "0.5", "worker.heartbeat_interval_s", 0.5),
        ("KATAKANA_WORKER_STALE_AFTER_S", "300", "worker.stale_after_s", 300.0),
        ("KATAKANA_WORKER_MAX_ATTEMPTS", "7", "worker.max_attempts", 7),
        ("KATAKANA_WORKER_SMTP_TIMEOUT_S", "5", "worker.smtp_timeout_s", 5.0),
        ("KATAKANA_WORKER_PRESENCE_TTL_S", "3", "worker.presence_ttl_s", 3.0),
        ("KATAKANA_WORKER_SELFTEST", "0", "worker.selftest", False),
        ("KATAKANA_LOG_FORMAT", "json", "log_format", "json"),
        ("KATAKANA_PORT", "8123", "port", 8123),
        ("KATAKANA_PREFLIGHT_WAIT_S", "9", "preflight_wait_s", 9.0),  # not mistaken for a nested "preflight"
    ],
)
def test_every_variable_keeps_its_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, path: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    settings = _settings()
    target: object = settings
    for part in path.split("."):
        target = getattr(target, part)
    assert target == expected
    assert environment_variables()[variable] == path


def test_worker_variables_and_init_values_combine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATAKANA_WORKER_HEARTBEAT_INTERVAL_S", "2")
    settings = _settings(worker={"stale_after_s": 9})
    assert (settings.worker.heartbeat_interval_s, settings.worker.stale_after_s) == (2.0, 9.0)


@pytest.mark.parametrize(
    ("worker", "complaint"),
    [
        ({"heartbeat_interval_s": 30, "stale_after_s": 30}, "KATAKANA_WORKER_STALE_AFTER_S"),
        ({"scoring_soft_time_limit_s": 100, "scoring_time_limit_s": 100}, "KATAKANA_WORKER_SCORING_TIME_LIMIT_S"),
        ({"preflight_soft_time_limit_s": 90, "preflight_time_limit_s": 60}, "KATAKANA_WORKER_PREFLIGHT_TIME_LIMIT_S"),
        ({"presence_ttl_s": 0.5}, "presence_ttl_s"),
    ],
)
def test_inconsistent_worker_timings_are_refused(worker: dict[str, float], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        _settings(worker=worker)


def test_an_unknown_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATAKANA_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        _settings()


def test_the_operations_guide_lists_every_setting_and_no_other() -> None:
    repo = Path(__file__).resolve().parents[2]
    guide = (repo / "docs" / "operations.md").read_text(encoding="utf-8")
    table = guide.split("\n## 7. Settings\n", 1)[1]
    listed = re.findall(r"^\| `(KATAKANA_[A-Z0-9_]+)` \|", table, flags=re.MULTILINE)
    assert sorted(listed) == sorted(environment_variables())
    # Elsewhere in the docs and the README, a KATAKANA_ name is a real setting (or a family of them).
    pages = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    text = "".join(page.read_text(encoding="utf-8") for page in pages)
    not_settings = {"KATAKANA_TEST_ARTEFACTS"}  # the test suite's own variable, documented in the README
    mentioned = set(re.findall(r"KATAKANA_[A-Z0-9_]*[A-Z0-9]", text)) - not_settings
    families = {name for name in mentioned if any(known.startswith(name + "_") for known in environment_variables())}
    assert mentioned - families <= set(environment_variables())
