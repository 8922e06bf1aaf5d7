"""A short-timeout Redis client for the broker URL, for the probes and metrics that read Redis directly.

Kombu spells the embedded Redis's Unix socket ``redis+socket:///path``, which redis-py does not
parse; and a probe must answer quickly when Redis is down rather than hang a scrape or a health check.
"""

from __future__ import annotations

import redis

PROBE_TIMEOUT_S = 1.0


def redis_for(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> redis.Redis:
    if url.startswith("redis+socket://"):
        path, _, query = url.removeprefix("redis+socket://").partition("?")
        db = 0
        for item in query.split("&"):
            key, _, value = item.partition("=")
            if key in ("db", "virtual_host") and value.isdigit():
                db = int(value)
        return redis.Redis(unix_socket_path=path, db=db, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
