"""Each worker says "I am alive, serving these queues" in Redis, under a key that expires.

Why a key and not a Celery ``ping``: a broadcast ping makes every readiness probe wait for its full
timeout when no worker answers and costs every worker a reply per probe; a key with a time-to-live
is one ``SCAN`` for the reader, survives nothing it should not (a SIGKILLed worker's key simply
expires), and tells *which* queues are served — a worker whose sandbox self-test failed stops
consuming ``scoring`` and so stops counting as a scoring worker.

The key is written by a daemon thread of the worker's main process (the one that consumes
messages), every ``ttl / 3`` seconds; a Redis outage only delays the next write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)

KEY_PREFIX = "katakana:worker:"


@dataclass(frozen=True)
class WorkerPresence:
    hostname: str
    queues: tuple[str, ...]
    pid: int
    machine: str
    seen_at: float
    slots: int = 1  # runs it does at once (its pool's processes); keys written before it: 1


def announce(client: redis.Redis, hostname: str, queues: Iterable[str], ttl_s: float, slots: int = 1) -> None:
    value = {
        "hostname": hostname,
        "queues": sorted(queues),
        "slots": slots,
        "pid": os.getpid(),
        "machine": socket.gethostname(),
        "seen_at": time.time(),
    }
    client.set(KEY_PREFIX + hostname, json.dumps(value), px=int(ttl_s * 1000))


def withdraw(client: redis.Redis, hostname: str) -> None:
    client.delete(KEY_PREFIX + hostname)


def live_workers(client: redis.Redis) -> list[WorkerPresence]:
    """Workers whose key has not expired; raises ``redis.RedisError`` when Redis cannot be read."""
    found: list[WorkerPresence] = []
    keys = list(client.scan_iter(match=KEY_PREFIX + "*", count=100))
    for raw in client.mget(keys) if keys else []:
        if raw is None:  # expired between SCAN and MGET
            continue
        try:
            data = json.loads(raw)
            found.append(
                WorkerPresence(
                    hostname=str(data["hostname"]),
                    queues=tuple(data["queues"]),
                    pid=int(data["pid"]),
                    machine=str(data.get("machine", "")),
                    seen_at=float(data["seen_at"]),
                    slots=max(1, int(data.get("slots", 1))),
                )
            )
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed worker presence key: %r", raw[:200])
    return sorted(found, key=lambda w: w.hostname)


class PresenceThread:
    """Re-announces the worker until stopped; withdraws the key on a clean stop."""

    def __init__(self, client: redis.Redis, hostname: str, queues: Iterable[str], ttl_s: float, slots: int = 1) -> None:
        self.client = client
        self.hostname = hostname
        self.queues = tuple(queues)
        self.ttl_s = ttl_s
        self.slots = slots
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="katakana-presence", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):  # otherwise the key expires by itself
            withdraw(self.client, self.hostname)

    def _run(self) -> None:
        failing = False
        while True:
            try:
                announce(self.client, self.hostname, self.queues, self.ttl_s, self.slots)
                if failing:
                    log.info("worker presence in Redis restored")
                failing = False
            except redis.RedisError as exc:
                if not failing:
                    log.warning("cannot announce this worker in Redis (will retry): %s", exc)
                failing = True
            if self._stop.wait(self.ttl_s / 3):
                return
