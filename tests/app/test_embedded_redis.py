"""The embedded Redis: a real server on a private Unix socket that keeps its data across restarts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.embedded_redis import RedisServer, embedded_url

pytestmark = pytest.mark.live  # a real redis-server


def test_embedded_redis_listens_privately_and_keeps_queued_messages(tmp_path: Path) -> None:
    server = RedisServer(directory=tmp_path / "redis")
    assert server.url == embedded_url(tmp_path)  # what the site and the worker derive on their own
    server.start()
    try:
        assert stat.S_IMODE(server.socket.stat().st_mode) == 0o700
        server.client().rpush("scoring", b"message")
    finally:
        server.stop()
    server.start()  # a restart, as after a crash or a reboot
    try:
        assert server.client().lrange("scoring", 0, -1) == [b"message"]
    finally:
        server.stop()
