"""``/metrics``: the queues as trainees live them — uploads waiting per queue, the oldest wait, and
the slots of the live workers that serve each queue — from the database and Redis at scrape time."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session

from app.embedded_redis import RedisServer
from app.main import create_app
from app.models import Preflight, Submission, SubmissionStatus
from app.observability.worker_presence import announce
from app.settings import Settings
from tests.app.conftest import People

SCRAPE = {"Authorization": "Bearer scrape-token"}


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in:\n{text}"
    return float(match.group(1))


def test_the_queues_waiting_uploads_oldest_wait_and_worker_slots(
    settings: Settings, db: Session, people: People, redis_server: RedisServer, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    for minutes, status in ((10, SubmissionStatus.QUEUED), (2, SubmissionStatus.QUEUED), (1, SubmissionStatus.RUNNING)):
        when = now - dt.timedelta(minutes=minutes)
        db.add(Submission(
            user_id=people.trainee.id, cohort_id=people.cohort.id, status=status, created_at=when,
            quota_day=when.date(), original_filename="s.zip", zip_sha256="0" * 64, zip_size=1, storage_key="k",
        ))  # fmt: skip
    for seconds, started in ((40, None), (90, now)):  # one check waits 40 s, one a worker took
        when = now - dt.timedelta(seconds=seconds)
        db.add(Preflight(
            user_id=people.other_trainee.id, cohort_id=people.cohort.id, state="checking", storage_key="k",
            zip_sha256="1" * 64, zip_size=1, original_filename="c.zip", created_at=when, updated_at=when,
            started_at=started,
        ))  # fmt: skip
    db.commit()
    client = redis_server.client()
    announce(client, "scoring@host-a", ["scoring", "testsets"], ttl_s=60, slots=4)
    announce(client, "scoring@host-b", ["scoring"], ttl_s=60)  # a worker from before slots were told: one
    announce(client, "preflight@host-a", ["preflight"], ttl_s=60, slots=2)

    scraper = settings.model_copy(update={"redis_url": redis_server.url, "metrics_token": SecretStr("scrape-token")})
    with TestClient(create_app(scraper, enqueue=lambda _id: None)) as site:
        text = site.get("/metrics", headers=SCRAPE).text
    assert metric(text, "katakana_queue_waiting", '{queue="scoring"}') == 2  # the running one is not waiting
    assert 600 <= metric(text, "katakana_queue_oldest_wait_seconds", '{queue="scoring"}') < 3600
    assert metric(text, "katakana_queue_waiting", '{queue="preflight"}') == 1
    assert 40 <= metric(text, "katakana_queue_oldest_wait_seconds", '{queue="preflight"}') < 90
    assert metric(text, "katakana_queue_worker_slots", '{queue="scoring"}') == 5
    assert metric(text, "katakana_queue_worker_slots", '{queue="preflight"}') == 2
    assert metric(text, "katakana_workers_alive", '{queue="scoring"}') == 2
    assert metric(text, "katakana_queue_worker_slots", '{queue="email"}') == 0
