"""Prometheus metrics at ``/metrics``, computed at scrape time from the database and Redis.

Design, and why: the numbers an operator needs on deadline day are facts about *shared* state —
messages waiting in Redis, submissions and emails in the database — not about one process. Reading
them when Prometheus scrapes gives the same answer from any web process, needs no Prometheus
multiprocess mode (its per-process files and ``PROMETHEUS_MULTIPROC_DIR`` clean-up rules), no
metrics port on the workers, and nothing lost when a worker is SIGKILLed or restarted: the scoring
duration histogram and the results counter are derived from the finished rows themselves, so they
are exactly as durable as the results and count each submission once, however often its task was
delivered. The cost is a handful of aggregate queries per scrape (indexes on ``status``), which is
negligible at a 15–60 s scrape interval.

Exposed (all ``katakana_``):
- ``queue_messages{queue}``: messages waiting in Redis per Celery queue (for the two queues that
  run trainee code a message only wakes a worker: their length is ``queue_waiting``);
- ``queue_waiting{queue}`` and ``queue_oldest_wait_seconds{queue}``: uploads waiting for a scoring
  or pre-flight worker (from the database: submissions ``queued``, checks no worker claimed yet) and
  how long the oldest has waited — the queue as a trainee lives it;
- ``workers_alive{queue}``: workers whose presence key is fresh, per queue they consume;
- ``queue_worker_slots{queue}``: runs those live workers can do at once (their pool sizes);
- ``submissions{status}``: submissions by current status (queued/running/succeeded/failed);
- ``oldest_queued_submission_age_seconds``: 0 when nothing waits; rising = workers missing or slow;
- ``submission_results_total{status,error_code,blame}``: finished submissions;
- ``scoring_duration_seconds``: histogram of the sandboxed scoring time of finished submissions;
- ``emails{status}`` and ``emails_pending``: the result-email outbox;
- ``scrape_errors{source}``: 1 when the database or Redis could not be read in this scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import redis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app import queue as queue_names
from app.models import EmailOutbox, EmailStatus, Preflight, PreflightState, Submission, SubmissionStatus, utcnow
from app.observability.worker_presence import live_workers

log = logging.getLogger(__name__)

QUEUES = queue_names.QUEUES
# Kombu's Redis transport keeps non-default priorities in sibling lists named queue + SEP + priority.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
# Scoring takes from about a second (a small MLP) to the sandbox's wall limit.
DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
FINAL = (SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED)


def queue_length(client: redis.Redis, queue: str) -> int:
    names = [queue, *(f"{queue}{_PRIORITY_SEP}{p}" for p in _PRIORITY_STEPS)]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
    return int(sum(pipe.execute()))


class ServiceCollector(Collector):
    """Collects on every scrape; each source (database, Redis) fails on its own, visibly."""

    def __init__(self, sessions: Callable[[], sessionmaker[Session]], redis_client: Callable[[], redis.Redis]) -> None:
        self._sessions = sessions
        self._redis = redis_client

    def collect(self) -> Iterator[Any]:
        errors = GaugeMetricFamily(
            "katakana_scrape_errors", "1 when a source could not be read during this scrape", labels=["source"]
        )
        try:
            yield from self._from_database()
            errors.add_metric(["database"], 0)
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreadable: %s", exc)
            errors.add_metric(["database"], 1)
        try:
            yield from self._from_redis()
            errors.add_metric(["redis"], 0)
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics: Redis unreadable: %s", exc)
            errors.add_metric(["redis"], 1)
        yield errors

    def _from_redis(self) -> Iterator[Any]:
        client = self._redis()
        queues = GaugeMetricFamily("katakana_queue_messages", "Messages waiting in Redis per queue", labels=["queue"])
        lengths = {queue: queue_length(client, queue) for queue in QUEUES}
        workers = live_workers(client)
        for queue, length in lengths.items():
            queues.add_metric([queue], length)
        alive = GaugeMetricFamily("katakana_workers_alive", "Live workers per queue they consume", labels=["queue"])
        slots = GaugeMetricFamily(
            "katakana_queue_worker_slots", "Runs the live workers consuming a queue can do at once", labels=["queue"]
        )
        for queue in QUEUES:
            alive.add_metric([queue], sum(queue in w.queues for w in workers))
            slots.add_metric([queue], sum(w.slots for w in workers if queue in w.queues))
        yield queues
        yield alive
        yield slots

    def _from_database(self) -> Iterator[Any]:
        with self._sessions()() as db:
            metrics = [*self._submission_metrics(db), *self._email_metrics(db), *self._waiting_metrics(db)]
        yield from metrics

    def _waiting_metrics(self, db: Session) -> Iterator[Any]:
        now = utcnow()
        waiting = GaugeMetricFamily(
            "katakana_queue_waiting", "Uploads waiting for a worker of the queue (from the database)", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "katakana_queue_oldest_wait_seconds", "How long the oldest upload waiting in the queue has waited",
            labels=["queue"],
        )  # fmt: skip
        unclaimed_check = (Preflight.state == PreflightState.CHECKING) & Preflight.started_at.is_(None)
        for queue, since, where in (
            (queue_names.SCORING_QUEUE, Submission.queued_at, Submission.status == SubmissionStatus.QUEUED),
            (queue_names.PREFLIGHT_QUEUE, Preflight.created_at, unclaimed_check),
        ):
            count, first = db.execute(select(func.count(), func.min(since)).where(where)).one()
            waiting.add_metric([queue], int(count or 0))
            oldest.add_metric([queue], max(0.0, (now - first).total_seconds()) if first else 0.0)
        yield waiting
        yield oldest

    def _submission_metrics(self, db: Session) -> Iterator[Any]:
        by_status = dict(db.execute(select(Submission.status, func.count()).group_by(Submission.status)).all())
        gauge = GaugeMetricFamily("katakana_submissions", "Submissions by current status", labels=["status"])
        for status in SubmissionStatus:
            gauge.add_metric([status.value], by_status.get(status, 0))
        yield gauge

        oldest = db.scalar(select(func.min(Submission.created_at)).where(Submission.status == SubmissionStatus.QUEUED))
        age = GaugeMetricFamily(
            "katakana_oldest_queued_submission_age_seconds", "Age of the oldest submission still queued"
        )
        age.add_metric([], max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0)
        yield age

        results = CounterMetricFamily(
            "katakana_submission_results",
            "Finished submissions by status and error code (from the stored results: each counted once)",
            labels=["status", "error_code", "blame"],
        )
        rows = db.execute(
            select(Submission.status, Submission.error_code, Submission.error_blame, func.count())
            .where(Submission.status.in_(FINAL))
            .group_by(Submission.status, Submission.error_code, Submission.error_blame)
        ).all()
        for status, code, blame, count in rows:
            results.add_metric([status.value, code or "", blame or ""], count)
        yield results

        finished = Submission.status.in_(FINAL) & Submission.duration_s.is_not(None)
        columns = [func.sum(case((Submission.duration_s <= b, 1), else_=0)) for b in DURATION_BUCKETS]
        row = db.execute(select(func.count(), func.sum(Submission.duration_s), *columns).where(finished)).one()
        total, seconds, *cumulative = row
        histogram = HistogramMetricFamily(
            "katakana_scoring_duration_seconds", "Sandboxed scoring time of finished submissions"
        )
        buckets = [(str(float(b)), int(c or 0)) for b, c in zip(DURATION_BUCKETS, cumulative, strict=True)]
        histogram.add_metric([], [*buckets, ("+Inf", int(total or 0))], float(seconds or 0.0))
        yield histogram

    def _email_metrics(self, db: Session) -> Iterator[Any]:
        by_status = dict(db.execute(select(EmailOutbox.status, func.count()).group_by(EmailOutbox.status)).all())
        emails = GaugeMetricFamily("katakana_emails", "Result emails in the outbox by status", labels=["status"])
        for status in EmailStatus:
            emails.add_metric([status.value], by_status.get(status, 0))
        yield emails
        pending = GaugeMetricFamily("katakana_emails_pending", "Result emails not yet delivered (pending or sending)")
        pending.add_metric([], by_status.get(EmailStatus.PENDING, 0) + by_status.get(EmailStatus.SENDING, 0))
        yield pending


def make_registry(
    sessions: Callable[[], sessionmaker[Session]], redis_client: Callable[[], redis.Redis]
) -> CollectorRegistry:
    """A registry of its own (not the global one): several apps in one test process stay apart."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(sessions, redis_client))
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
