"""The embedded service in one foreground process: Redis, migrations, workers, beat and the site.

``python -m app.cli serve`` runs this. Each part is the real program the production deployment
runs, started as a child process:

- Redis (app.embedded_redis) on a Unix socket under data_dir, unless KATAKANA_REDIS_URL names one;
- ``celery worker -Q scoring,testsets``: scoring (and the rare test-set import, which needs the
  test-set folder), so a slow submission never delays anything else;
- ``celery worker -Q preflight``: the upload pre-flights, so trainee code never runs in the site and
  a pre-flight never waits behind a scoring run;
- ``celery worker -Q email,maintenance -B``: emails, the sweeper, and beat scheduling the sweeper;
- ``uvicorn --factory app.main:create_app``.

A worker that dies (the OOM killer, a crash) is started again after a back-off that doubles with
each quick death, up to a minute; what it held is redelivered (acks are late) or reclaimed by the
sweeper. The exception is a worker that exits after failing its sandbox self-test: restarting it
would fail the same way, so the supervisor says so and leaves it stopped; the site stays up.

Ctrl-C (or SIGTERM) stops them in reverse order, each with SIGTERM first (Celery finishes or
re-queues what it holds: acks are late), then Redis, which flushes its append-only file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from alembic import command
from alembic.config import Config

from app.embedded_redis import RedisServer
from app.queue import (
    EMAIL_QUEUE,
    EXIT_SELFTEST_FAILED,
    MAINTENANCE_QUEUE,
    PREFLIGHT_QUEUE,
    SCORING_QUEUE,
    TESTSETS_QUEUE,
)
from app.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_S = 60.0
RESTART_BACKOFF_S = (1.0, 60.0)  # first wait, longest wait
STABLE_AFTER_S = 60.0  # a worker that ran this long starts its back-off afresh when it dies


def migrate_to_head(database_url: str) -> None:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, "head")


@dataclass
class Child:
    name: str
    argv: list[str]
    critical: bool = True  # the service cannot go on without it
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff_s: float = 0.0  # the wait before the next restart; 0 until it dies
    restart_at: float | None = None  # when it is due to start again, if it died

    def start(self, env: dict[str, str]) -> None:
        # Its own session: a Ctrl-C in the terminal reaches only the supervisor, which then stops
        # the children one by one (a second signal would turn Celery's warm shutdown cold).
        self.process = subprocess.Popen(
            self.argv, env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.started_at = time.monotonic()
        self.restart_at = None

    def schedule_restart(self, now: float) -> float:
        """Plan the next start: the wait doubles while it keeps dying young, and resets once it ran a while."""
        first, longest = RESTART_BACKOFF_S
        if now - self.started_at >= STABLE_AFTER_S or self.backoff_s == 0:
            self.backoff_s = first
        else:
            self.backoff_s = min(longest, self.backoff_s * 2)
        self.restart_at = now + self.backoff_s
        return self.backoff_s

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", *args]


def served_url(host: str, port: int) -> str:
    """The address the site serves on, as a link: a wildcard bind (``0.0.0.0``, ``::``) is reached
    by the machine's name, an IPv6 address in brackets."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - recognising a wildcard bind, not binding one
        host = socket.getfqdn()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass
class Supervisor:
    settings: Settings
    host: str = "127.0.0.1"
    port: int = 8000
    children: list[Child] = field(default_factory=list)
    redis: RedisServer | None = None
    _stopping: bool = False

    def child_env(self, redis_url: str) -> dict[str, str]:
        """The children's settings: the parent's, with paths made absolute and the broker pinned."""
        env = dict(os.environ)
        env["KATAKANA_DATA_DIR"] = str(self.settings.data_dir.resolve())
        env["KATAKANA_DATABASE_URL"] = self.settings.database_url
        env["KATAKANA_REDIS_URL"] = redis_url
        for name in ("storage_dir", "testset_dir", "mail_dir"):
            value = getattr(self.settings, name)
            env[f"KATAKANA_{name.upper()}"] = str(Path(value).resolve())
        # Links in mail lead where the site really answers, unless the operator named an address.
        given = self.settings.base_url_given
        env["KATAKANA_BASE_URL"] = self.settings.base_url if given else served_url(self.host, self.port)
        return env

    def plan(self) -> list[Child]:
        beat_schedule = str(self.settings.data_dir.resolve() / "celerybeat-schedule")
        scoring = celery("worker", "-Q", f"{SCORING_QUEUE},{TESTSETS_QUEUE}", "-c", "1", "-n", "scoring@%h")
        scoring += ["--loglevel", "INFO"]
        preflight = celery("worker", "-Q", PREFLIGHT_QUEUE, "-c", str(self.settings.preflight_concurrency))
        preflight += ["-n", "preflight@%h", "--loglevel", "INFO"]
        mail = celery("worker", "-Q", f"{EMAIL_QUEUE},{MAINTENANCE_QUEUE}", "-c", "1", "-n", "mail@%h")
        mail += ["-B", "-s", beat_schedule, "--loglevel", "INFO"]
        web = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
        # The app resolves X-Forwarded-For itself (KATAKANA_TRUSTED_PROXIES); uvicorn must not.
        web += ["--host", self.host, "--port", str(self.port), "--no-proxy-headers"]
        return [
            # Workers are started again when they die; one that failed its sandbox self-test stays
            # stopped, without taking the site down with it.
            Child("scoring worker", scoring, critical=False),
            Child("pre-flight worker", preflight, critical=False),
            Child("email and maintenance worker", mail, critical=False),
            Child("web", web),
        ]

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            redis_url = self._start_redis()
            migrate_to_head(self.settings.database_url)
            env = self.child_env(redis_url)
            self.children = self.plan()
            for child in self.children:
                child.start(env)
            print(f"katakana-scorer is running at http://{self.host}:{self.port}  (Ctrl-C stops it)", flush=True)
            print(public_set_line(self.settings), flush=True)
            return self._watch(env)
        except KeyboardInterrupt:
            return 0
        finally:
            self.stop()

    def _start_redis(self) -> str:
        if self.settings.redis_url:
            return self.settings.redis_url
        self.redis = RedisServer(directory=self.settings.data_dir.resolve() / "redis")
        self.redis.start()
        return self.redis.url

    def _watch(self, env: dict[str, str]) -> int:
        while not self._stopping:
            now = time.monotonic()
            for child in self.children:
                if child.process is None:
                    if child.restart_at is not None and now >= child.restart_at:
                        print(f"katakana-scorer: starting the {child.name} again", file=sys.stderr, flush=True)
                        child.start(env)
                    continue
                code = child.process.poll()
                if code is None:
                    continue
                child.process = None
                if child.critical:
                    print(f"katakana-scorer: the {child.name} exited with {code}; stopping", file=sys.stderr)
                    return 1
                self._report_optional_exit(child, code, now)
            time.sleep(0.5)
        return 0

    @staticmethod
    def _report_optional_exit(child: Child, code: int, now: float) -> None:
        if code == EXIT_SELFTEST_FAILED:
            reason = (
                "its sandbox self-test failed (see its log above); install bubblewrap or check "
                "KATAKANA_SANDBOX_MODE. Until it runs, uploads are refused at the pre-flight or stay "
                "queued for scoring, spending nothing"
            )
            print(f"katakana-scorer: NO SANDBOX — the {child.name} stopped: {reason}", file=sys.stderr, flush=True)
            return
        wait = child.schedule_restart(now)
        print(
            f"katakana-scorer: the {child.name} exited with {code}; starting it again in {wait:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def stop(self) -> None:
        self._stopping = True
        for child in reversed(self.children):
            child.stop()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def public_set_line(settings: Settings) -> str:
    """Whether the pre-flight's near-chance guard is on, for the start-up lines: it needs the
    course's public set (``import-public``), and without one a model that predicts a single class
    is scored and spends an upload without a question."""
    from app.services.public_set import public_set

    stored = public_set(settings)
    if stored is None:
        return (
            "katakana-scorer: NO public set stored, so the pre-flight's near-chance guard is OFF; store the "
            "course's training set with: python -m app.cli import-public train_data.npy train_label.npy"
        )
    return (
        f"katakana-scorer: public set of {stored.n_images} images stored: the pre-flight's near-chance guard is on "
        f"(below {settings.preflight_near_chance_below:.0%} right on its images, the trainee is asked before an"
        " upload is spent)"
    )


def serve(settings: Settings, *, host: str, port: int) -> int:
    return Supervisor(settings, host=host, port=port).run()
