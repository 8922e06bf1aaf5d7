"""The embedded service in one foreground process: Redis, migrations, workers, beat and the site.

``python -m app.cli serve`` runs this. Each part is the real program the production deployment
runs, started as a child process:

- Redis (worker.embedded) on a Unix socket under data_dir, unless KATAKANA_REDIS_URL names one;
- ``celery worker -Q scoring``: scoring only, so a slow submission never delays anything else;
- ``celery worker -Q email,maintenance -B``: emails, the sweeper, and beat scheduling the sweeper;
- ``uvicorn --factory app.main:create_app``.

Ctrl-C (or SIGTERM) stops them in reverse order, each with SIGTERM first (Celery finishes or
re-queues what it holds: acks are late), then Redis, which flushes its append-only file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from alembic import command
from alembic.config import Config

from app.settings import Settings
from worker.celery_app import EMAIL_QUEUE, MAINTENANCE_QUEUE, SCORING_QUEUE
from worker.embedded import RedisServer
from worker.startup import EXIT_SELFTEST_FAILED

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_S = 60.0


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

    def start(self, env: dict[str, str]) -> None:
        # Its own session: a Ctrl-C in the terminal reaches only the supervisor, which then stops
        # the children one by one (a second signal would turn Celery's warm shutdown cold).
        self.process = subprocess.Popen(
            self.argv, env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, start_new_session=True
        )

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
        return env

    def plan(self) -> list[Child]:
        beat_schedule = str(self.settings.data_dir.resolve() / "celerybeat-schedule")
        scoring = celery("worker", "-Q", SCORING_QUEUE, "-c", "1", "-n", "scoring@%h", "--loglevel", "INFO")
        mail = celery("worker", "-Q", f"{EMAIL_QUEUE},{MAINTENANCE_QUEUE}", "-c", "1", "-n", "mail@%h")
        mail += ["-B", "-s", beat_schedule, "--loglevel", "INFO"]
        web = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
        # The app resolves X-Forwarded-For itself (KATAKANA_TRUSTED_PROXIES); uvicorn must not.
        web += ["--host", self.host, "--port", str(self.port), "--no-proxy-headers"]
        return [
            # Refusing work after a failed self-test must not take the site down with it.
            Child("scoring worker", scoring, critical=False),
            Child("email and maintenance worker", mail),
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
            return self._watch()
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

    def _watch(self) -> int:
        while not self._stopping:
            for child in self.children:
                code = child.process.poll() if child.process else None
                if code is None:
                    continue
                if not child.critical:
                    self._report_optional_exit(child, code)
                    child.process = None
                    continue
                print(f"katakana-scorer: the {child.name} exited with {code}; stopping", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0

    @staticmethod
    def _report_optional_exit(child: Child, code: int) -> None:
        reason = (
            "its sandbox self-test failed (see its log above); install bubblewrap or check "
            "KATAKANA_SANDBOX_MODE. Uploads stay queued until a scoring worker runs"
            if code == EXIT_SELFTEST_FAILED
            else f"it exited with {code}"
        )
        print(f"katakana-scorer: NO SCORING — the {child.name} stopped: {reason}", file=sys.stderr, flush=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def stop(self) -> None:
        self._stopping = True
        for child in reversed(self.children):
            child.stop()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def serve(settings: Settings, *, host: str, port: int) -> int:
    return Supervisor(settings, host=host, port=port).run()
