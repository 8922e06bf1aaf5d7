"""The service's settings: one object for the web process, every worker and the scoring engine.

Read once per process from ``KATAKANA_*`` environment variables (or ``.env``). The web tier, the
workers and the engine's configuration (:mod:`app.scoring_config`, handed to ``scorer`` as a value)
all read this one object, so a value cannot differ between the process that states a limit and the
process that applies it, and the production checks below see every setting together.

The workers' own knobs sit in :class:`WorkerSettings` under ``Settings.worker``; their variables keep
the ``KATAKANA_WORKER_`` prefix (``KATAKANA_WORKER_HEARTBEAT_INTERVAL_S`` is
``settings.worker.heartbeat_interval_s``) because the environment splits ``KATAKANA_WORKER_<name>``
once, after ``WORKER``.

Every path has a default under ``data_dir`` so the embedded setup needs no configuration at all,
while a production deployment refuses to start on settings that would be unsafe there (the
placeholder secret, scoring without the sandbox or its self-test) instead of discovering them later.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scorer.sandbox.types import Limits

PLACEHOLDER_SECRET = "change-me-development-only"  # noqa: S105 - the known-bad value we refuse
MIB = 1024 * 1024


class UnsafeSettingsError(ValueError):
    """Raised at start-up when production settings would be unsafe."""


class WorkerSettings(BaseModel):
    """Knobs only the workers act on: heartbeats, the sweeper's patience, email retries, time limits.

    Operators and tests shorten the waits through ``KATAKANA_WORKER_*`` (a test cannot wait two
    minutes for a heartbeat to go stale).
    """

    # A running submission's heartbeat is refreshed this often; the sweeper considers the worker
    # dead once the heartbeat is older than stale_after_s (several missed beats, not one slow one).
    heartbeat_interval_s: float = Field(default=15.0, gt=0)
    stale_after_s: float = Field(default=120.0, gt=0)
    # A queued row this old whose message the broker may have lost is sent again (safe: idempotent).
    requeue_after_s: float = Field(default=300.0, ge=0)
    # Attempts a submission gets when a run is lost mid-way: a lost one is run again until this many
    # have been made; then a lost host fails it as the server's fault (slot back), a lost worker
    # process as its own (see worker/celery_app.py). 2: every lost run is run again once.
    max_attempts: int = Field(default=2, ge=1)
    sweep_interval_s: float = Field(default=60.0, gt=0)
    # How long a silent worker still counts as alive: its presence key in Redis, rewritten every
    # third of this, expires after it, and /readyz and /metrics stop counting the worker.
    presence_ttl_s: float = Field(default=30.0, ge=1)

    # Housekeeping in the sweep: interrupted upload parts are deleted after this age (zips no
    # submission names after KATAKANA_REFUSED_UPLOAD_RETENTION_S); the store is walked at most
    # every store_purge_interval_s.
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

    # Celery's limits for the pre-flight task: above the smoke run's own wall limit
    # (KATAKANA_SMOKE_WALL_SECONDS, 60 s), for the same reason; the site stops waiting after
    # KATAKANA_PREFLIGHT_WAIT_S anyway.
    preflight_soft_time_limit_s: float = Field(default=90.0, gt=0)
    preflight_time_limit_s: float = Field(default=120.0, gt=0)

    # The sandbox self-test at worker start; force_fail exists so the refusal path can be tested.
    # Production refuses to start with either (a worker must never score in an untested sandbox).
    selftest: bool = True
    selftest_force_fail: bool = False

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.stale_after_s <= self.heartbeat_interval_s:
            raise ValueError("KATAKANA_WORKER_STALE_AFTER_S must exceed the heartbeat interval")
        if self.scoring_time_limit_s <= self.scoring_soft_time_limit_s:
            raise ValueError("KATAKANA_WORKER_SCORING_TIME_LIMIT_S must exceed the soft limit")
        if self.preflight_time_limit_s <= self.preflight_soft_time_limit_s:
            raise ValueError("KATAKANA_WORKER_PREFLIGHT_TIME_LIMIT_S must exceed the soft limit")
        return self


class Settings(BaseSettings):
    # The nested delimiter "_" split at most once maps KATAKANA_WORKER_<NAME> onto worker.<name>;
    # it touches no other field (only model-valued fields are split).
    model_config = SettingsConfigDict(
        env_prefix="KATAKANA_",
        env_file=".env",
        extra="ignore",
        env_nested_delimiter="_",
        env_nested_max_split=1,
    )

    environment: Literal["development", "test", "production"] = "development"
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)

    data_dir: Path = Path("var")
    database_url: str = ""  # empty: SQLite at data_dir/katakana.sqlite3
    redis_url: str = ""  # empty: the worker starts an embedded Redis
    storage_dir: Path | None = None  # uploaded zips, by content hash
    testset_dir: Path | None = None
    public_set_dir: Path | None = None  # the course's public training set, for the pre-flight (import-public)
    mail_dir: Path | None = None  # the embedded mail folder, shown to admins

    smtp_host: str = ""  # empty: write mail to mail_dir instead of sending it
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    mail_from: str = "katakana-scorer <noreply@localhost>"
    # The site's public address, for the links in mail. Empty: production refuses to start; elsewhere
    # http://127.0.0.1:<port>, and `serve` gives its children the address it serves on.
    base_url: str = ""
    port: int = Field(default=8000, ge=1, le=65535)  # `python -m app serve`'s default --port
    # "kv": key=value lines for people; "json": one object per line for log shippers that parse it.
    log_format: Literal["kv", "json"] = "kv"

    upload_max_bytes: int = Field(default=100 * MIB, gt=0)
    # What a trainee's zips may hold in the store before a submission names them (checks under way,
    # near-chance questions, refused zips kept for support): see app/services/upload_budget.py.
    upload_storage_budget_bytes: int = Field(default=500 * MIB, gt=0)
    default_daily_limit: int = Field(default=3, ge=0)
    default_timezone: str = "Asia/Tokyo"
    # A font with Japanese glyphs for the history chart download (PNG); empty: the usual
    # Debian/Ubuntu ones are looked for (fonts-ipafont-gothic, fonts-noto-cjk), else it is in English.
    chart_font: Path | None = None

    runtime_python: Path | None = None
    # The TensorFlow + Keras runtime (KATAKANA_TENSORFLOW_RUNTIME_PYTHON); empty: where setup.sh
    # builds it, and none (Keras submissions refused at the pre-flight) when it is not there.
    tensorflow_runtime_python: Path | None = None
    # The scoring run's limits (KATAKANA_WALL_SECONDS, _MEMORY_MB, _CPUS); empty: the course's defaults.
    wall_seconds: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)
    cpus: int | None = Field(default=None, ge=1)
    sandbox_mode: Literal["auto", "bwrap", "unsandboxed"] = "auto"
    allow_unsandboxed: bool = False
    # A run's memory (with its tmpfs) and processes limited as a whole: see scorer/sandbox/cgroup.py.
    sandbox_cgroup_mode: Literal["auto", "v2", "v1", "supervisor"] = "auto"
    sandbox_cgroup_parent: str = "katakana-sandbox"
    # Each worker process starts its next run's sandbox ahead of the job (scorer/warm.py); a warm
    # sandbox idle longer than this is replaced (its own PID-1 backstop covers idle + wall time).
    sandbox_prewarm: bool = True
    sandbox_prewarm_idle_seconds: float = Field(default=900.0, gt=0)
    # Keep a warm TensorFlow sandbox too (when that runtime is installed): about 0.7 GB resident per
    # worker process while idle; false: a Keras job waits for TensorFlow's import (off its clock).
    sandbox_prewarm_tensorflow: bool = True
    preflight: bool = True
    # Smoke runs the embedded pre-flight worker runs at once; more uploads wait their turn (their
    # time limit starts when they run). Unbounded, a deadline burst would share the CPUs so thinly
    # that sound zips hit the smoke run's time limit.
    preflight_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # What a run on the hidden test set shows of its own output, traceback and error parameters
    # together (trainees: page, log download, email), and what is kept for instructors and admins.
    # See scorer/disclosure.py: more is a channel for the hidden images.
    hidden_run_excerpt_bytes: int = Field(default=2048, ge=0, le=64 * 1024)
    hidden_run_stored_log_bytes: int = Field(default=64 * 1024, ge=0, le=MIB)
    # The instructors' similarity page lists a pair of trainees when independence would give its copy
    # index at most this often (per pair: docs/instructors.md, "Similarity"), or when they handed in
    # an identical file that at most this many trainees of the cohort hand in (a file more share is
    # the course's, not evidence about a pair).
    similarity_false_alarm_rate: float = Field(default=0.001, gt=0.0, le=0.05)
    similarity_rare_file_max_trainees: int = Field(default=2, ge=2)
    # With the public set imported, a smoke accuracy below this asks the trainee to confirm the upload.
    preflight_near_chance_below: float = Field(default=0.30, ge=0.0, le=1.0)
    # The smoke run's time limit: long enough for a cold start of the heaviest runtime (a cold
    # `import tensorflow` takes 4.5-9 s here) with its model's load and a few predictions, many times
    # over on a loaded host. Checks claim the pre-flight fairly, so a trainee's check waits at most
    # one such limit for a worker (the longest check running ahead of it) and then runs its own.
    smoke_wall_seconds: float = Field(default=60.0, gt=0)
    # How long an upload waits for a worker's pre-flight verdict before it is refused as the
    # server's fault (nothing spent; the zip stays stored): a smoke limit's wait, plus its own run.
    preflight_wait_s: float = Field(default=120.0, gt=0)
    # How long the upload request itself waits for that verdict before it answers with the check's
    # page, which follows the check live: short, so a deadline rush is answered at once. A verdict
    # from the cache (the same zip again) comes within it; a smoke run (0.3 s of CPU at best) rarely.
    preflight_inline_wait_s: float = Field(default=0.3, ge=0)
    # A near-chance pre-flight waits this long for the trainee's "upload it anyway"; then the sweeper
    # ends it as expired and deletes its zip (nothing spent): an unanswered question must not keep a
    # zip in the store for ever, and a day covers a trainee who comes back the next morning.
    # KATAKANA_UPLOAD_CHECK_CONFIRM_TTL_H is its old name, still read so a deployment keeps its value.
    preflight_confirm_ttl_h: float = Field(
        default=24.0,
        gt=0,
        validation_alias=AliasChoices(
            "preflight_confirm_ttl_h", "KATAKANA_PREFLIGHT_CONFIRM_TTL_H", "KATAKANA_UPLOAD_CHECK_CONFIRM_TTL_H"
        ),
    )
    # How long a test-set import through the API waits for a scoring worker (the one holding the
    # test-set folder); it may first finish the submission it is scoring.
    testset_import_wait_s: float = Field(default=300.0, gt=0)

    session_max_age_s: int = 14 * 24 * 3600
    login_max_failures: int = 5  # per email and IP address ...
    login_window_s: int = 15 * 60  # ... within this window
    password_token_ttl_s: int = 24 * 3600
    # Password spraying: once this many different accounts failed from one address within
    # ``login_window_s``, that address waits (a class behind one NAT stays well below it).
    login_max_accounts_per_ip: int = Field(default=10, ge=1)
    # Addresses (or CIDR networks), comma-separated, whose X-Forwarded-For is believed; empty: none.
    trusted_proxies: str = ""

    # Free pre-flights: one at a time per trainee, and at most this many an hour each.
    preflight_per_hour: int = Field(default=20, ge=1)
    # A pre-flight that ran into the smoke time limit counts this many toward that hourly rate: a
    # trainee whose checks keep timing out holds the shared pre-flight workers longest, so waits longer.
    preflight_timeout_weight: int = Field(default=5, ge=1)
    preflight_lease_s: int = Field(default=15 * 60, gt=0)  # a crashed process's slot frees after this
    refused_upload_retention_s: int = Field(default=24 * 3600, ge=0)  # refused zips kept for support
    # Long polls (a result or check page following its state) one user may hold at once in each web
    # process; more are answered at once, with Retry-After (see app/web/long_poll.py).
    long_poll_per_user: int = Field(default=4, ge=1)
    # A request body that sends nothing for this long, or takes longer than the total, is dropped.
    body_idle_timeout_s: float = Field(default=30.0, gt=0)
    body_total_timeout_s: float = Field(default=15 * 60.0, gt=0)

    metrics_token: SecretStr = SecretStr("")  # /metrics wants "Authorization: Bearer <token>" or an admin
    metrics_public: bool = False  # True: /metrics open to anyone who can reach it
    hsts_max_age_s: int = Field(default=365 * 24 * 3600, ge=0)  # sent in production only (HTTPS)
    # An invitation waits in an inbox until the course starts: it lives much longer than a reset link.
    invite_token_ttl_days: int = Field(default=7, ge=1, le=90)

    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    # Whether KATAKANA_BASE_URL was set (base_url itself is then never empty): `serve` tells its
    # children the address it serves on only when the operator named none.
    _base_url_given: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _derive_and_check(self) -> Self:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'katakana.sqlite3'}"
        self.storage_dir = self.storage_dir or self.data_dir / "storage"
        self.testset_dir = self.testset_dir or self.data_dir / "testsets"
        self.public_set_dir = self.public_set_dir or self.data_dir / "public"
        self.mail_dir = self.mail_dir or self.data_dir / "mail"
        self._base_url_given = bool(self.base_url)
        self.base_url = self.base_url.rstrip("/") or f"http://127.0.0.1:{self.port}"
        if self.upload_storage_budget_bytes < self.upload_max_bytes:
            raise ValueError(
                "KATAKANA_UPLOAD_STORAGE_BUDGET_BYTES must hold at least one upload (KATAKANA_UPLOAD_MAX_BYTES)"
            )
        try:
            ZoneInfo(self.default_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"KATAKANA_DEFAULT_TIMEZONE is not a known time zone: {exc}") from exc
        if self.worker.preflight_soft_time_limit_s <= self.smoke_wall_seconds:
            # Celery would kill slow checks as the server's fault before the smoke limit stops them.
            raise ValueError("KATAKANA_WORKER_PREFLIGHT_SOFT_TIME_LIMIT_S must exceed KATAKANA_SMOKE_WALL_SECONDS")
        if self.environment == "production":
            self._refuse_unsafe_production()
        return self

    def _refuse_unsafe_production(self) -> None:
        problems: list[str] = []
        secret = self.secret_key.get_secret_value()
        if secret == PLACEHOLDER_SECRET or len(secret) < 32:
            problems.append(
                "KATAKANA_SECRET_KEY is the placeholder or shorter than 32 characters; "
                'set one from `python -c "import secrets; print(secrets.token_urlsafe(48))"`'
            )
        if self.sandbox_mode == "unsandboxed" or self.allow_unsandboxed:
            problems.append(
                "the sandbox is disabled (KATAKANA_SANDBOX_MODE=unsandboxed or KATAKANA_ALLOW_UNSANDBOXED); "
                "install bubblewrap and use KATAKANA_SANDBOX_MODE=bwrap"
            )
        if not self.preflight:
            problems.append("KATAKANA_PREFLIGHT is off: broken zips would spend trainees' daily uploads")
        if not self._base_url_given:
            problems.append(
                "KATAKANA_BASE_URL is not set: the links in mail would point at this machine's loopback; "
                "set the address trainees open the site at (https://scorer.example.ac.jp)"
            )
        if not self.worker.selftest or self.worker.selftest_force_fail:
            problems.append(
                "KATAKANA_WORKER_SELFTEST is off (or KATAKANA_WORKER_SELFTEST_FORCE_FAIL on): "
                "the sandbox self-test must run, and pass, before a worker takes trainee code"
            )
        if problems:
            raise UnsafeSettingsError("unsafe production settings: " + "; ".join(problems))

    @property
    def base_url_given(self) -> bool:
        return self._base_url_given

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once (tests build their own ``Settings`` instead)."""
    return Settings()
