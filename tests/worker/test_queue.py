"""Enqueueing: each task lands on its own queue, and a broker that is down fails nobody."""

from __future__ import annotations

import base64
import json

from app.embedded_redis import RedisServer
from app.queue import (
    EMAIL_QUEUE,
    MAINTENANCE_QUEUE,
    SCORE_TASK,
    SCORING_QUEUE,
    enqueue_email,
    enqueue_scoring,
)
from tests.fixtures.services import enqueue_sweep
from tests.worker.conftest import World


def queued(redis_server: RedisServer) -> dict[str, list[tuple[str, list[int]]]]:
    client = redis_server.client()
    result: dict[str, list[tuple[str, list[int]]]] = {}
    for queue in (SCORING_QUEUE, EMAIL_QUEUE, MAINTENANCE_QUEUE):
        messages = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
        result[queue] = [(m["headers"]["task"], json.loads(_body(m))[0]) for m in messages]
    return result


def _body(message: dict[str, object]) -> str:
    return base64.b64decode(str(message["body"])).decode()


def test_each_task_lands_on_its_own_queue_once(world: World, redis_server: RedisServer) -> None:
    assert enqueue_scoring(7, world.settings)
    assert enqueue_email(8, world.settings)
    assert enqueue_sweep(world.settings)
    found = queued(redis_server)
    assert found[SCORING_QUEUE] == [(SCORE_TASK, [7])]
    assert [args for _, args in found[EMAIL_QUEUE]] == [[8]]
    assert [args for _, args in found[MAINTENANCE_QUEUE]] == [[]]


def test_a_broker_that_is_down_makes_enqueue_report_false_not_raise(world: World, redis_server: RedisServer) -> None:
    redis_server.stop()
    assert enqueue_scoring(7, world.settings) is False  # the sweeper re-sends it later
    redis_server.start()
    assert enqueue_scoring(7, world.settings) is True
    assert queued(redis_server)[SCORING_QUEUE] == [(SCORE_TASK, [7])]
