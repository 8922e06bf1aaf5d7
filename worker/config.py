"""Knobs that only the worker reads: heartbeats, the sweeper's patience, email retries, time limits.

They live apart from :class:`app.settings.Settings` because the site never needs them, and they are
read from ``KATAKANA_WORKER_*`` environment variables so tests and operators can shorten the waits
(a test cannot wait two minutes for a heartbeat to go stale).
"""

from __future__ import annotations

import functools
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.settings import UnsafeSettingsError
from scorer.sandbox.types import Limits


class WorkerConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KATAKANA_WORKER_", extra="ignore")

    # A running submission's heartbeat is refreshed this often; the sweeper considers the worker
    # dead once the heartbeat is older than stale_after_s (several missed beats, not one slow one).
    heartbeat_interval_s: float = Field(default=15.0, gt=0)
    stale_after_s: float = Field(default=120.0, gt=0)
    # A queued row this old whose message the broker may have lost is sent again (safe: idempotent).
    requeue_after_s: float = Field(default=300.0, ge=0)
    # Deliveries a submission gets before it is failed as the server's fault.
    max_attempts: int = Field(default=3, ge=1)
    sweep_interval_s: float = Field(default=60.0, gt=0)

    # Housekeeping in the sweep: interrupted upload parts are deleted after this age (zips no
    # submission names after the web settings' refused_upload_retention_s); the store is walked at
    # most every store_purge_interval_s.
    incoming_ttl_s: float = Field(default=24 * 3600.0, ge=0)
    store_purge_interval_s: float = Field(default=3600.0, ge=0)

    # Email: retry SMTP failures with exponential backoff, capped; the sweeper re-sends what is left.
    email_retry_base_s: float = Field(default=10.0, gt=0)
    email_retry_max_s: float = Field(default=600.0, gt=0)
    email_max_retries: int = Field(default=12, ge=0)
    email_pending_after_s: float = Field(default=900.0, ge=0)
    smtp_timeout_s: float = Field(default=30.0, gt=0)

    # Celery's limits for the scoring task: above the sandbox's own wall limit, so the sandbox is
    # always the one that stops a slow submission (with TIME_LIMIT, the trainee's fault) and
    # Celery's limit only catches the worker itself hanging.
    scoring_soft_time_limit_s: float = Field(default=Limits().wall_seconds * 2 + 120, gt=0)
    scoring_time_limit_s: float = Field(default=Limits().wall_seconds * 2 + 180, gt=0)

    # Celery's limits for the pre-flight task: above the smoke run's own 60 s wall limit, for the
    # same reason; the site stops waiting after KATAKANA_PREFLIGHT_WAIT_S anyway.
    preflight_soft_time_limit_s: float = Field(default=90.0, gt=0)
    preflight_time_limit_s: float = Field(default=120.0, gt=0)

    # The sandbox self-test at worker start; force_fail exists so the refusal path can be tested.
    # Production refuses to start with either (a worker must never score in an untested sandbox).
    selftest: bool = True
    selftest_force_fail: bool = False
    environment: str = Field(default="development", validation_alias="KATAKANA_ENVIRONMENT")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.stale_after_s <= self.heartbeat_interval_s:
            raise ValueError("KATAKANA_WORKER_STALE_AFTER_S must exceed the heartbeat interval")
        if self.scoring_time_limit_s <= self.scoring_soft_time_limit_s:
            raise ValueError("KATAKANA_WORKER_SCORING_TIME_LIMIT_S must exceed the soft limit")
        if self.preflight_time_limit_s <= self.preflight_soft_time_limit_s:
            raise ValueError("KATAKANA_WORKER_PREFLIGHT_TIME_LIMIT_S must exceed the soft limit")
        if self.environment == "production" and (not self.selftest or self.selftest_force_fail):
            raise UnsafeSettingsError(
                "unsafe production settings: KATAKANA_WORKER_SELFTEST is off (or forced to fail); "
                "the sandbox self-test must run before a worker takes trainee code"
            )
        return self


@functools.lru_cache(maxsize=1)
def get_worker_config() -> WorkerConfig:
    return WorkerConfig()
