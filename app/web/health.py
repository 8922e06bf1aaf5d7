"""``/healthz`` and ``/readyz``: is this process alive, and can the service take and score uploads now?

- ``/healthz`` answers 200 as long as the process serves HTTP at all; it touches nothing else, so an
  orchestrator restarts the web process only when *it* is broken, not when Redis is.
- ``/readyz`` checks what an upload needs end to end — the database (``SELECT 1``), Redis (``PING``)
  and at least one live worker consuming the ``scoring`` queue and one consuming ``preflight`` (their
  presence keys in Redis, see :mod:`app.observability.worker_presence`) — and answers 503 naming
  every check that failed. Each
  check has a short timeout, so a probe never hangs on a dead dependency.

Uploads are still accepted while not ready (the row is committed and the sweeper sends it once Redis
or a worker is back); readiness is for load balancers, dashboards and the operator.

Anyone may ask, so the answer says only ``ready`` or ``unready`` (and the status code). Which checks
failed, why, and the live workers' host names and queues are the service's layout: they come only
with the access ``/metrics`` asks for (the metrics token as a Bearer token, or an admin's session).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import redis
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.observability.http import broker_url, metrics_allowed
from app.observability.redis_client import redis_for
from app.observability.worker_presence import live_workers
from app.queue import PREFLIGHT_QUEUE, SCORING_QUEUE

log = logging.getLogger(__name__)
router = APIRouter()


@dataclass
class Check:
    ok: bool
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, **self.extra}


def check_database(app: FastAPI) -> Check:
    try:
        with app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return Check(False, f"database unreachable: {type(exc).__name__}")
    return Check(True, "database answers")


def check_redis_and_workers(app: FastAPI) -> tuple[Check, Check]:
    client = redis_for(broker_url(app.state.settings))
    try:
        client.ping()
        workers = live_workers(client)
    except (redis.RedisError, OSError) as exc:
        return Check(False, f"Redis unreachable: {type(exc).__name__}"), Check(False, "unknown: Redis unreachable")
    finally:
        client.close()
    scoring = [w.hostname for w in workers if SCORING_QUEUE in w.queues]
    alive = {"alive": [{"hostname": w.hostname, "queues": list(w.queues), "machine": w.machine} for w in workers]}
    if not scoring:
        detail = "no live worker consumes the scoring queue" if workers else "no live worker"
        return Check(True, "Redis answers"), Check(False, detail, alive)
    # Uploads wait on a pre-flight worker's verdict: without one, every upload would be refused.
    if app.state.settings.preflight and not any(PREFLIGHT_QUEUE in w.queues for w in workers):
        return Check(True, "Redis answers"), Check(False, "no live worker consumes the preflight queue", alive)
    return Check(True, "Redis answers"), Check(True, f"{len(scoring)} scoring worker(s) alive", alive)


def readiness(app: FastAPI) -> dict[str, Check]:
    redis_check, workers_check = check_redis_and_workers(app)
    return {"database": check_database(app), "redis": redis_check, "workers": workers_check}


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> Response:
    checks = readiness(request.app)
    failed = [name for name, check in checks.items() if not check.ok]
    body: dict[str, Any] = {"status": "unready" if failed else "ready"}
    if metrics_allowed(request):
        body.update(failed=failed, checks={name: check.to_json() for name, check in checks.items()})
    if failed:
        log.warning("not ready: %s", ", ".join(f"{n} ({checks[n].detail})" for n in failed))
    return JSONResponse(body, status_code=503 if failed else 200, headers={"Cache-Control": "no-store"})
