"""``/readyz`` follows the real dependencies: Redis stopped and started, the only worker SIGKILLed."""

from __future__ import annotations

import re

import httpx

from tests.fixtures.db import ON_BOTH_DATABASES
from tests.fixtures.live_service import METRICS_TOKEN, QUICK_ZIP, Service, upload_bytes
from tests.fixtures.services import wait_for

SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def readyz(service: Service) -> httpx.Response:
    """The detailed answer (the metrics token); without it, only the status (see the first test)."""
    return httpx.get(f"{service.url}/readyz", headers=SCRAPE, timeout=30)


def wait_ready_status(service: Service, status: int, what: str) -> httpx.Response:
    response: httpx.Response = wait_for(lambda: (r := readyz(service)).status_code == status and r, what)
    return response


def test_readyz_reports_redis_down_and_no_live_worker(service: Service) -> None:
    ready = wait_ready_status(service, 200, "the service to be ready")
    body = ready.json()
    assert body["status"] == "ready" and body["failed"] == []
    assert [w["hostname"] for w in body["checks"]["workers"]["alive"]] == [service.worker.name]
    public = httpx.get(f"{service.url}/readyz", timeout=30)
    assert public.status_code == 200 and public.json() == {"status": "ready"}  # no host names, no queues
    assert service.worker.name not in public.text

    service.redis.stop()
    down = wait_ready_status(service, 503, "readyz to notice Redis is down")
    assert "redis" in down.json()["failed"]
    assert httpx.get(f"{service.url}/healthz", timeout=10).status_code == 200  # the process itself is fine

    service.redis.start()  # same port, same append-only file
    wait_ready_status(service, 200, "readyz to recover with Redis")

    service.worker.kill()  # SIGKILL: no goodbye, its presence key just expires
    lost = wait_ready_status(service, 503, "readyz to notice the worker is gone")
    assert lost.json()["failed"] == ["workers"]
    assert lost.json()["checks"]["workers"]["detail"] == "no live worker"


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name}{labels} not in:\n{text}"
    return float(match.group(1))


@ON_BOTH_DATABASES
def test_metrics_follow_an_upload_through_scoring_and_email(service: Service) -> None:
    before = httpx.get(f"{service.url}/metrics", headers=SCRAPE, timeout=30).text
    assert metric(before, "katakana_submissions", '{status="queued"}') == 0
    assert metric(before, "katakana_scrape_errors", '{source="redis"}') == 0

    client = service.login()
    response = upload_bytes(client, QUICK_ZIP)
    assert response.status_code == 201, response.text
    (row,) = service.wait_all_final()
    service.smtp.wait_for_messages(1)

    def settled() -> str | None:
        text = httpx.get(f"{service.url}/metrics", headers=SCRAPE, timeout=30).text
        # The presence key lives 3 s (refreshed each second): a stalled refresh on a loaded machine
        # can let it lapse for a moment, so "one live worker" is waited for, not sampled once.
        alive = metric(text, "katakana_workers_alive", '{queue="scoring"}') == 1
        return text if metric(text, "katakana_emails_pending") == 0 and alive else None

    text = wait_for(settled, "the email to leave the outbox and the worker to be seen")
    results = f'{{blame="",error_code="",status="{row.status.value}"}}'
    assert metric(text, "katakana_submission_results_total", results) == 1
    assert metric(text, "katakana_scoring_duration_seconds_count") == 1
    assert metric(text, "katakana_scoring_duration_seconds_sum") > 0
    assert metric(text, "katakana_queue_messages", '{queue="scoring"}') == 0
    assert metric(text, "katakana_workers_alive", '{queue="scoring"}') == 1
    assert metric(text, "katakana_emails", '{status="sent"}') == 1
    assert metric(text, "process_resident_memory_bytes") > 0

    service.redis.stop()
    degraded = httpx.get(f"{service.url}/metrics", headers=SCRAPE, timeout=30)
    assert degraded.status_code == 200  # the database half still reports
    assert metric(degraded.text, "katakana_scrape_errors", '{source="redis"}') == 1
    assert metric(degraded.text, "katakana_submissions", '{status="succeeded"}') == 1
    service.redis.start()
