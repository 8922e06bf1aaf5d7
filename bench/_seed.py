"""What the database benchmarks share: a private PostgreSQL, the schema migrated by Alembic as in
production, and bulk inserts (Core ``insert()`` with lists of rows, no ORM objects) of a cohort and
its trainees and their submissions. ``bench/leaderboard.py`` and ``bench/similarity.py`` seed on top
of this; the helpers here are what they used to repeat.
"""

from __future__ import annotations

import datetime as dt
import glob
import itertools
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import Connection, Engine, Table, insert, text  # noqa: E402

from app.folding import search_key  # noqa: E402
from app.models import Base, Cohort, Enrollment, Role, SubmissionStatus, User  # noqa: E402

T0 = dt.datetime(2026, 10, 1, 0, 0, tzinfo=dt.UTC)


def table(model: type[Base]) -> Table:
    found = model.__table__
    assert isinstance(found, Table)
    return found


def migrate(url: str) -> None:
    """The schema as production gets it: ``alembic upgrade head``."""
    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("script_location", str(REPO / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def insert_cohort(conn: Connection, name: str, **fields: Any) -> int:
    values = {"name": name, "title": "ベンチマーク", "daily_limit": 3, "timezone": "Asia/Tokyo",
              "leaderboard_visible": False, "archived": False, **fields}  # fmt: skip
    cohort = table(Cohort)
    return int(conn.execute(insert(cohort).returning(cohort.c.id), values).scalar_one())


def insert_users(
    conn: Connection,
    count: int,
    *,
    role: Role = Role.TRAINEE,
    name: Callable[[int], str] = lambda i: f"trainee {i}",
    email: Callable[[int], str] = lambda i: f"t{i:05d}@bench.example",
    password_hash: str | None = None,
    enrol_in: int | None = None,
) -> list[int]:
    """``count`` active users (ids in the order of ``i``), enrolled in ``enrol_in`` when given."""
    users = table(User)
    rows = [{"email": email(i), "name": name(i), "role": role, "language": "ja", "is_active": True,
             "created_at": T0, "password_hash": password_hash, "search_key": search_key(name(i), email(i))}
            for i in range(count)]  # fmt: skip
    ids = [
        int(i) for i in conn.execute(insert(users).returning(users.c.id, sort_by_parameter_order=True), rows).scalars()
    ]
    if enrol_in is not None:
        conn.execute(insert(table(Enrollment)), [{"user_id": i, "cohort_id": enrol_in, "role": role} for i in ids])
    return ids


def submission_row(user_id: int, cohort_id: int, at: dt.datetime, zip_sha256: str, **fields: Any) -> dict[str, Any]:
    """A scored submission's columns as a finished upload leaves them (the zip itself is not stored:
    nothing in a bench reads it); ``fields`` add columns or override these.

    A batch is inserted with the columns of its first row, so every row names the columns that
    differ between a success and a failure, even when they are empty.
    """
    return {"user_id": user_id, "cohort_id": cohort_id, "created_at": at, "quota_day": at.date(),
            "status": SubmissionStatus.SUCCEEDED, "counts_toward_limit": True, "original_filename": "submit.zip",
            "zip_sha256": zip_sha256, "zip_size": 1000, "storage_key": "zips/none.zip", "attempts": 1,
            "accuracy": None, "error_code": None, **fields}  # fmt: skip


def insert_in_batches(conn: Connection, target: Table, rows: Iterable[dict[str, Any]], batch: int) -> None:
    """Insert ``rows`` into ``target`` ``batch`` at a time: one statement per batch, so a seed of
    200,000 submissions never holds them all in memory."""
    remaining = iter(rows)
    while chunk := list(itertools.islice(remaining, batch)):
        conn.execute(insert(target), chunk)


def analyze(engine: Engine) -> None:
    """Fresh planner statistics, as autovacuum / a periodic ANALYZE would have on a running system."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


@contextmanager
def postgres() -> Iterator[str]:
    """A private PostgreSQL in a temporary folder (as the ``postgres`` user when run as root);
    yields its URL and removes everything afterwards."""
    from sqlalchemy import create_engine

    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if not bindir:
        raise SystemExit("PostgreSQL binaries not found (/usr/lib/postgresql/*/bin); use --only sqlite")
    bin_ = Path(bindir[0])
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run([*as_pg, str(bin_ / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust",
                    "--no-locale", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [*as_pg, str(bin_ / "postgres"), "-D", str(root / "data"), "-p", str(port), "-k", str(root),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        engine = create_engine(url)
        for _ in range(300):
            try:
                with engine.connect():
                    break
            except Exception:
                time.sleep(0.1)
        engine.dispose()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def cpu_calibration_ms() -> float:
    """CPU time of a fixed pure-Python loop, printed beside the figures: on a shared machine the
    same code runs several times slower when the cores are contended, and this says by how much."""
    start = time.process_time()
    total = 0
    for i in range(1_000_000):
        total += i
    return (time.process_time() - start) * 1000
