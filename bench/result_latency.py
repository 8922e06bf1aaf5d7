"""How soon the result page learns of a stored result: the delay from the worker's commit to the
answer of the page's held long-poll request (``/submissions/{id}/status?known=…&wait=25``).

A trainee's submission is put back to ``queued`` each round; a thread holds the page's request; the
main thread then commits ``succeeded`` as the worker does and notes the time; the figure is when the
held request answered, minus that. The real app runs in-process (Starlette's client) on a migrated
SQLite file, so this is the server's own delay (no network).

    .venv/bin/python bench/result_latency.py [--rounds 15]

Target from the issue: the page shows the result within 0.3 s of it being stored.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from sqlalchemy import create_engine, update  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app.main import create_app  # noqa: E402
from app.models import Cohort, Enrollment, Role, Submission, SubmissionStatus, User  # noqa: E402
from app.security.passwords import hash_password  # noqa: E402
from app.settings import Settings  # noqa: E402

PASSWORD = "bench-password-123"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        config = Config(str(REPO / "alembic.ini"))
        config.set_main_option("script_location", str(REPO / "migrations"))
        config.set_main_option("sqlalchemy.url", url)
        command.upgrade(config, "head")
        engine = create_engine(url)
        with Session(engine) as db:
            cohort = Cohort(name="bench", title="bench", daily_limit=3, timezone="Asia/Tokyo")
            user = User(email="t@bench.example", name="t", role=Role.TRAINEE, password_hash=hash_password(PASSWORD))
            db.add_all([cohort, user])
            db.flush()
            db.add(Enrollment(user_id=user.id, cohort_id=cohort.id, role=Role.TRAINEE))
            now = dt.datetime.now(dt.UTC)
            row = Submission(
                user_id=user.id, cohort_id=cohort.id, status=SubmissionStatus.QUEUED, original_filename="a.zip",
                storage_key="x", zip_sha256="0" * 64, zip_size=1, quota_day=now.date(), created_at=now,
            )  # fmt: skip
            db.add(row)
            db.commit()
            sid = row.id
        settings = Settings(
            environment="test", database_url=url, data_dir=Path(tmp) / "var", preflight=False, _env_file=None,  # type: ignore[call-arg]
            secret_key=SecretStr("bench-secret-key-0123456789abcdef0123"),
        )  # fmt: skip
        app = create_app(settings, enqueue=lambda _id: None, deliver_email=lambda _id: None)
        delays = []
        with TestClient(app) as client:
            client.get("/login")
            client.post(
                "/login",
                data={"email": "t@bench.example", "password": PASSWORD, "csrf_token": client.cookies["katakana_csrf"]},
                follow_redirects=False,
            )
            for _ in range(args.rounds):
                with engine.begin() as conn:
                    conn.execute(update(Submission).values(status=SubmissionStatus.QUEUED, accuracy=None))
                answered: list[float] = []

                def hold(answered: list[float] = answered) -> None:
                    reply = client.get(f"/submissions/{sid}/status", params={"known": "queued:1", "wait": 25})
                    answered.append(time.perf_counter())
                    assert reply.json()["status"] == "succeeded", reply.text

                thread = threading.Thread(target=hold)
                thread.start()
                time.sleep(0.5)  # the request is held by now
                with engine.begin() as conn:
                    conn.execute(update(Submission).values(status=SubmissionStatus.SUCCEEDED, accuracy=0.9))
                stored = time.perf_counter()
                thread.join()
                delays.append((answered[0] - stored) * 1000)
        engine.dispose()
    delays.sort()
    print(f"result stored -> held request answered, {len(delays)} rounds (SQLite, in-process):")
    print(f"  median {statistics.median(delays):.0f} ms, p90 {delays[int(0.9 * (len(delays) - 1))]:.0f} ms, "
          f"max {delays[-1]:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
