"""``/healthz`` and ``/readyz`` in-process, against dependencies that are really not there.

The live-service cases (Redis stopped and restarted, the worker SIGKILLed) are in
``tests/reliability/test_readiness.py``; here the database and Redis are loopback ports nobody
listens on, so every check must fail fast and be named.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fixtures.services import refused_port


def test_readyz_names_every_unreachable_dependency_while_healthz_stays_up(tmp_path: Path) -> None:
    with refused_port() as db_port, refused_port() as redis_port:
        _check_readyz_with_nothing_there(tmp_path, db_port, redis_port)


def _check_readyz_with_nothing_there(tmp_path: Path, db_port: int, redis_port: int) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path,
        database_url=f"postgresql+psycopg://nobody@127.0.0.1:{db_port}/nothing?connect_timeout=2",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        preflight=False,
        metrics_token="scrape-token",
    )
    with TestClient(create_app(settings, enqueue=lambda _id: None)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        public = client.get("/readyz")
        assert public.status_code == 503
        assert public.json() == {"status": "unready"}  # anyone may ask; the layout is not for anyone
        assert client.get("/readyz", headers={"Authorization": "Bearer wrong"}).json() == {"status": "unready"}
        response = client.get("/readyz", headers={"Authorization": "Bearer scrape-token"})
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unready"
        assert body["failed"] == ["database", "redis", "workers"]
        assert body["checks"]["database"]["detail"].startswith("database unreachable")
        assert body["checks"]["redis"]["detail"].startswith("Redis unreachable")

        metrics = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
        assert metrics.status_code == 200  # a scrape reports the outage instead of failing
        assert 'katakana_scrape_errors{source="database"} 1.0' in metrics.text
        assert 'katakana_scrape_errors{source="redis"} 1.0' in metrics.text
