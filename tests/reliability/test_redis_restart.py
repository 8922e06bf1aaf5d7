"""Redis restarts while submissions wait in it and while uploads keep arriving.

Every upload must end one of two ways: accepted (201) and eventually scored exactly once, with one
email; or refused with a clear message in Japanese and English. Nothing accepted may be lost — an
upload committed as ``queued`` while Redis was down has no message anywhere, and the sweeper must
send it once Redis is back.
"""

from __future__ import annotations

import threading
import time

import httpx

from app.models import SubmissionStatus
from tests.fixtures.live_service import QUICK_ZIP, Service, upload_bytes
from tests.fixtures.services import enqueue_sweep
from tests.worker.conftest import zip_with

SLOW = """import time

import numpy as np


def predict(test_data):
    time.sleep(1.5)
    return np.zeros(len(test_data), dtype=np.int64)
"""


def classify(responses: list[httpx.Response]) -> tuple[list[int], list[httpx.Response]]:
    """The accepted submission ids, and the refusals (each must explain itself in both languages)."""
    accepted, refused = [], []
    for response in responses:
        if response.status_code == 201:
            accepted.append(int(response.json()["id"]))
            continue
        assert response.status_code < 500 or response.status_code in (503, 507), response.text
        error = response.json()["error"]
        assert error["message_ja"] and error["message_en"], response.text
        refused.append(response)
    return accepted, refused


def test_uploads_across_a_redis_restart_are_all_scored_once_or_clearly_refused(service: Service) -> None:
    service.set_daily_limit(100)
    client = service.login()
    slow = zip_with(SLOW)
    responses: list[httpx.Response] = []

    # 1. A backlog in Redis: the worker takes one, the rest wait as messages.
    responses += [upload_bytes(client, slow, f"backlog_{i}.zip") for i in range(4)]
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]

    # 2. Redis goes away with that backlog in it (SIGTERM: its append-only file is flushed).
    service.redis.stop()
    responses += [upload_bytes(client, QUICK_ZIP, f"outage_{i}.zip") for i in range(3)]

    # 3. Uploads keep arriving while Redis comes back.
    during: list[httpx.Response] = []

    def keep_uploading() -> None:
        other = service.login()
        try:
            for i in range(3):
                during.append(upload_bytes(other, QUICK_ZIP, f"restart_{i}.zip"))
                time.sleep(0.3)
        finally:
            other.close()

    uploader = threading.Thread(target=keep_uploading)
    uploader.start()
    time.sleep(0.5)
    service.redis.start()  # same port, same data folder
    uploader.join()
    responses += during
    responses += [upload_bytes(client, QUICK_ZIP, "after.zip")]

    accepted, refused = classify(responses)
    assert len(accepted) + len(refused) == len(responses) == 11
    rows = service.submissions()
    assert sorted(r.id for r in rows) == sorted(accepted)  # no row without a 201, no 201 without a row

    # The beat schedule runs the sweeper every minute in production; here we ask for one now.
    assert enqueue_sweep(service.settings())
    final = service.wait_all_final()
    assert all(r.status == SubmissionStatus.SUCCEEDED for r in final), [(r.id, r.status, r.error_code) for r in final]
    assert all(r.attempts == 1 for r in final)  # scored once each, however often the message came
    assert all(r.counts_toward_limit for r in final)

    # One email per submission — still one after another sweep and every duplicate delivery.
    messages = service.smtp.wait_for_messages(len(accepted))
    assert enqueue_sweep(service.settings())
    service.worker.wait_task_succeeded("worker.tasks.sweeper.sweep", count=2)
    outbox = service.outbox()
    assert len(outbox) == len(accepted) and {o.submission_id for o in outbox} == set(accepted)
    assert len(service.smtp.messages) == len(messages) == len(accepted)
    assert service.alive()
