"""Deadline rush: N trainees each log in and upload within a window, against the live service.

The submission is the course-sized CNN example by default (``examples/course_cnn``: what trainees'
networks cost a scoring worker, tens of seconds of one core and over 1 GB per run); ``--model cnn``
or ``--model mlp`` takes the small examples instead.

Everything real, on loopback: one uvicorn process (the site; it runs no trainee code), a pre-flight
Celery worker as wide as the machine, K Celery scoring workers (concurrency 1 each, the sandbox in
bubblewrap), one mail/maintenance worker, Redis, SQLite (or PostgreSQL with --database-url), mail
written to the mail folder. Each trainee uploads a distinct zip (the example model plus a file
naming them), so every pre-flight really runs.

Two phases: every trainee signs in within the window, then every trainee uploads within the window
(before a deadline most are signed in already; the phases apart keep each figure its own).

Reported:
- upload latency p50/p95/max (the POST /upload, which waits for the pre-flight's verdict at most
  ``KATAKANA_PREFLIGHT_INLINE_WAIT_S``, then answers with the check's page) and any server error;
- time to verdict p50/p95/max (the upload request until its check settled, followed by long poll
  like the check page); the web process's CPU time per upload (what the site itself spends on one);
- login latency p50/p95 (each is one Argon2 verification, at most one per CPU at a time);
- the web process's RSS at start, peak and end (sampled every 0.5 s): memory must stay flat;
- the scoring queue's peak length, and the drain rate: submissions scored per minute, per scoring
  worker (each worker is one core: concurrency 1, the sandbox's BLAS on 1 thread);
- per-core throughput: the scoring workers' CPU seconds per scored submission (the workers, their
  sandboxes and the sandbox pre-warmed for the next run, all counted) and what that makes per core
  per hour. On a shared machine this is the figure to size by: the wall-clock rate above also
  measures everyone else's load;
- memory per run: the sandbox's peak (its cgroup, as stored with each result) and the peak resident
  memory of one scoring worker with everything under it (Celery, the run, the pre-warmed sandbox);
- the wait each trainee saw: from the upload's acceptance to its result, split into the time queued
  and the time scored (each trainee listed when there are at most 40, percentiles always);
- sandboxed scoring time (the worker's measured duration, median) against the example's bare
  predict time on the same images (``bench/sandbox_overhead.py``'s measurement; ``--bare-runs``);
- the wait each trainee was told against the wait they had: every result page's live feed is read
  every ``--wait-every`` seconds while its upload waits, as the page itself does, and each wait it
  tells ("the result in about N s") is compared with when the result came; the error is
  (told − had) / had, its median and the 95th percentile of its size, over every reading and over
  the first reading of each upload (target: the median within ±30 %);
- the load average the run went under (the machine may be shared).

    .venv/bin/python bench/deadline_rush.py                      # 300 trainees in 5 minutes
    .venv/bin/python bench/deadline_rush.py --trainees 60 --window 60   # the quick run
    .venv/bin/python bench/deadline_rush.py --trainees 20 --window 3 --model mlp   # 20 uploads in 3 s
    .venv/bin/python bench/deadline_rush.py --trainees 6 --window 3 --workers 2    # the capacity figures
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import Row, func, select  # noqa: E402

from app.db import make_engine, make_sessionmaker  # noqa: E402
from app.embedded_redis import RedisServer  # noqa: E402
from app.models import Cohort, Enrollment, Language, Role, Submission, SubmissionStatus, User  # noqa: E402
from app.security.passwords import hash_password  # noqa: E402
from bench.sandbox_overhead import bare_predict_seconds  # noqa: E402
from examples.build_examples import ALL_NAMES, COURSE_CNN  # noqa: E402
from scorer.pipeline import ScoringConfig  # noqa: E402
from scorer.runtime import find_runtime  # noqa: E402
from tests.fixtures.artifacts import course_cnn_dir, example_zips_dir, synthetic_set_dir  # noqa: E402

PASSWORD = "deadline-rush-password"
METRICS_TOKEN = "deadline-rush-metrics-token"  # /readyz lists the live workers only to a scraper or an admin
FINAL = (SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def artifacts(model: str) -> tuple[Path, Path, Path]:
    """(test images, test labels, example zip) from the test suite's cache, keyed by the code that
    makes them: built on first use (the course-sized CNN trains for minutes), never stale."""
    data_dir = synthetic_set_dir()
    example_dir = course_cnn_dir() if model == COURSE_CNN else example_zips_dir()
    return data_dir / "test_data.npy", data_dir / "test_label.npy", example_dir / f"{model}.zip"


def personal_zip(example: bytes, trainee: int) -> bytes:
    """The example submission plus a note naming the trainee: a distinct file, as in real life."""
    source = zipfile.ZipFile(io.BytesIO(example))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            out.writestr(item, source.read(item.filename))
        out.writestr("README_trainee.txt", f"trainee {trainee}\n")
    return buffer.getvalue()


def start_postgres(root: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """A private PostgreSQL 15 on loopback (as root, the server runs as the ``postgres`` user)."""
    bindir = Path(os.environ.get("KATAKANA_TEST_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    pg_root = root / "pg"
    pg_root.mkdir()
    if os.geteuid() == 0:
        shutil.chown(pg_root, "postgres", "postgres")
        os.chmod(root, 0o755)
    subprocess.run(
        [*as_pg, str(bindir / "initdb"), "-D", str(pg_root / "data"), "-U", "postgres", "-A", "trust",
         "-E", "UTF8", "--no-locale", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [*as_pg, str(bindir / "postgres"), "-D", str(pg_root / "data"), "-p", str(port), "-k", str(pg_root),
         "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        done = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True, check=False
        )
        if done.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise SystemExit("PostgreSQL did not start")
        time.sleep(0.2)
    subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "katakana"],
                   check=True)  # fmt: skip
    return f"{url}/katakana", server


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    redis: RedisServer
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    web: subprocess.Popen[bytes] | None = None
    preflight: subprocess.Popen[bytes] | None = None
    scoring: list[subprocess.Popen[bytes]] = field(default_factory=list)
    url: str = ""

    def spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.root / log_name).open("ab") as log:
            process = subprocess.Popen(
                argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.redis.stop()


def start_stack(root: Path, args: argparse.Namespace, data: Path, labels: Path) -> Stack:
    redis_server = RedisServer(directory=root / "redis", port=free_port())
    redis_server.start()
    database_url = args.database_url or f"sqlite:///{root / 'katakana.sqlite3'}"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "KATAKANA_ENVIRONMENT": "test",
        "KATAKANA_SECRET_KEY": "deadline-rush-secret-key-0123456789-abcdefghij",
        "KATAKANA_DATA_DIR": str(root / "data"),
        "KATAKANA_DATABASE_URL": database_url,
        "KATAKANA_REDIS_URL": redis_server.url,
        "KATAKANA_BASE_URL": "http://rush.example.test",
        "KATAKANA_METRICS_TOKEN": METRICS_TOKEN,
    }
    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("script_location", str(REPO / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, "head")
    stack = Stack(root=root, env=env, redis=redis_server)
    imported = subprocess.run(
        [sys.executable, "-m", "app.cli", "import-testset", str(data), str(labels), "--version", "rush"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if imported.returncode != 0:
        raise SystemExit(f"import-testset failed: {imported.stdout}{imported.stderr}")
    celery = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--concurrency", "1",
              "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]  # fmt: skip
    for i in range(args.workers):
        stack.scoring.append(stack.spawn([*celery, "-Q", "scoring", "-n", f"scoring{i}@rush"], f"scoring{i}.log"))
    # The pre-flights run on workers too (never in the site): a pool as wide as the machine.
    preflight = [*celery[:7], str(os.cpu_count() or 1), *celery[8:]]
    stack.preflight = stack.spawn([*preflight, "-Q", "preflight", "-n", "preflight@rush"], "preflight.log")
    stack.spawn([*celery, "-Q", "email,maintenance", "-n", "mail@rush"], "mail.log")
    port = free_port()
    stack.web = stack.spawn(
        [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        "web.log",
    )  # fmt: skip
    stack.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    try:
        while True:  # ready = site, Redis, database and every scoring worker (its sandbox self-test passed)
            try:
                body = httpx.get(f"{stack.url}/readyz", timeout=5, headers=headers).json()
                scoring = [w for w in body["checks"]["workers"].get("alive", []) if "scoring" in w["queues"]]
                if body["status"] == "ready" and len(scoring) >= args.workers:
                    return stack
            except (httpx.TransportError, ValueError):
                pass
            if time.monotonic() > deadline or stack.web.poll() is not None:
                raise SystemExit(f"the stack did not become ready; see {root}")
            time.sleep(0.5)
    except BaseException:  # never leave the workers and Redis running behind a failed start
        stack.stop()
        raise


def add_trainees(database_url: str, count: int) -> list[str]:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    hashed = hash_password(PASSWORD)  # one hash for all: creating users is not what is measured
    emails = [f"trainee{i:04d}@rush.example.test" for i in range(count)]
    with sessions.begin() as session:
        cohort = Cohort(name="rush", title="Deadline rush", daily_limit=3, timezone="Asia/Tokyo")
        session.add(cohort)
        session.flush()
        for i, email in enumerate(emails):
            user = User(email=email, name=f"受講生 {i}", role=Role.TRAINEE, language=Language.JA, password_hash=hashed)
            session.add(user)
            session.flush()
            session.add(Enrollment(user_id=user.id, cohort_id=cohort.id, role=Role.TRAINEE))
    engine.dispose()
    return emails


@dataclass
class Outcome:
    login_s: float = 0.0
    upload_s: float = 0.0  # the POST /upload, request to response
    verdict_s: float = 0.0  # request to the check settled (the same when the verdict came inline)
    status: int = 0
    error: str = ""
    submission_id: int | None = None
    told: list[tuple[float, float]] = field(default_factory=list)  # (wait told, when: time.time())


def wait_errors(outcomes: list[Outcome], finished: dict[int, float], *, first_only: bool = False) -> list[float]:
    """(told − had) / had for the waits told: had is from the telling to the result."""
    errors = []
    for out in outcomes:
        end = finished.get(out.submission_id or -1)
        for told, at in out.told[:1] if first_only else out.told:
            if end is not None and end > at:
                errors.append((told - (end - at)) / (end - at))
    return errors


async def log_in(client: httpx.AsyncClient, email: str, start_at: float, out: Outcome) -> None:
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    try:
        began = time.monotonic()
        await client.get("/login")
        login = await client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": client.cookies["katakana_csrf"]},
        )
        out.login_s = time.monotonic() - began
        if login.status_code != 303:
            out.status, out.error = login.status_code, "login failed"
    except httpx.HTTPError as exc:
        out.status, out.error = 0, f"{type(exc).__name__}: {exc}"


async def upload(client: httpx.AsyncClient, body: bytes, start_at: float, out: Outcome) -> None:
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    if out.error:  # not signed in
        return
    try:
        began = time.monotonic()
        response = await client.post(
            "/upload",
            files={"file": ("rush_submit_katakana.zip", body, "application/zip")},
            data={"csrf_token": client.cookies["katakana_csrf"]},
            headers={"Accept": "application/json"},
        )
        out.upload_s = time.monotonic() - began
        if response.status_code == 202:  # answered before the verdict: follow the check, as its page does
            url = response.json()["url"]
            while True:
                state = (await client.get(f"{url}/status", params={"known": "checking", "wait": 25})).json()
                if state["final"]:
                    break
            response = await client.get(url, headers={"Accept": "application/json"})
        out.verdict_s = time.monotonic() - began
        out.status = response.status_code
        if response.status_code == 201:
            out.submission_id = int(response.json()["id"])
            if response.json().get("wait_s") is not None:
                out.told.append((float(response.json()["wait_s"]), time.time()))
        if response.status_code != 201:
            try:
                error = response.json()["error"]
                out.error = f"{error.get('code')}: {error.get('message_en')} {error.get('detail') or ''}"[:500]
            except (ValueError, KeyError, TypeError):
                out.error = response.text[:500]
    except httpx.HTTPError as exc:
        out.status, out.error = 0, f"{type(exc).__name__}: {exc}"


async def follow_waits(
    clients: list[httpx.AsyncClient], outcomes: list[Outcome], every_s: float, timeout_s: float
) -> None:
    """Read every waiting upload's result-page feed every ``every_s`` seconds until all are final
    (or ``timeout_s`` passed), keeping each wait it tells."""
    deadline = time.monotonic() + timeout_s
    pending = [(c, o) for c, o in zip(clients, outcomes, strict=True) if o.submission_id]

    async def read(client: httpx.AsyncClient, out: Outcome) -> bool:
        status = (await client.get(f"/submissions/{out.submission_id}/status")).json()
        if status.get("wait_s") is not None:
            out.told.append((float(status["wait_s"]), time.time()))
        return bool(status["final"])

    while pending and time.monotonic() < deadline:
        done = await asyncio.gather(*(read(client, out) for client, out in pending))
        pending = [item for item, final in zip(pending, done, strict=True) if not final]
        await asyncio.sleep(every_s)


@dataclass(frozen=True)
class Wait:
    """What one trainee lived through: from the upload's acceptance (the row's creation, when the
    upload was spent and queued) until its result was stored."""

    trainee: str
    accepted_s: float  # after the first accepted upload
    queued_s: float  # until a worker started it
    scoring_s: float  # until its result
    status: str

    @property
    def total_s(self) -> float:
        return self.queued_s + self.scoring_s

    def as_json(self) -> dict[str, object]:
        return {
            "trainee": self.trainee,
            "accepted_s": round(self.accepted_s, 1),
            "queued_s": round(self.queued_s, 1),
            "scoring_s": round(self.scoring_s, 1),
            "wait_s": round(self.total_s, 1),
            "status": self.status,
        }


def trainee_waits(rows: Sequence[Row[Any]]) -> list[Wait]:
    """One Wait per finished submission, in the order the uploads were accepted."""
    rows = sorted(rows, key=lambda r: r.created_at)
    first = rows[0].created_at if rows else None
    return [
        Wait(
            trainee=r.email.split("@", 1)[0],
            accepted_s=(r.created_at - first).total_seconds(),
            queued_s=(r.started_at - r.created_at).total_seconds(),
            scoring_s=(r.finished_at - r.started_at).total_seconds(),
            status=r.status.value,
        )
        for r in rows
        if first is not None and r.started_at is not None and r.finished_at is not None
    ]


def print_waits(waits: list[Wait], limit: int = 40) -> None:
    """Each trainee's wait (the first ``limit`` when there are more; all are in --json's file)."""
    if not waits:
        return
    print(f"the wait each trainee saw ({min(len(waits), limit)} of {len(waits)}), in the order accepted:")
    print("  trainee        accepted at   queued   scoring   wait    result")
    for w in waits[:limit]:
        print(f"  {w.trainee:<13} {w.accepted_s:9.1f} s {w.queued_s:7.1f} s {w.scoring_s:7.1f} s "
              f"{w.total_s:7.1f} s  {w.status}")  # fmt: skip


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and every process under it (a scoring worker: Celery, its pool
    process, the sandbox of the run and the one pre-warmed for the next)."""
    total = 0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # ended between the listing and the reading
            continue
    return total


class Sampler(threading.Thread):
    """Samples the web process's RSS, each scoring worker's (with everything under it) and the
    scoring queue's length every half second."""

    def __init__(self, pid: int, redis_server: RedisServer, scoring_pids: list[int], preflight_pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.redis = redis_server.client()
        self.scoring_pids = scoring_pids
        self.cpu_roots = {"scoring": scoring_pids, "preflight": [preflight_pid]}
        self.rss: list[int] = []
        self.queue: list[int] = []
        self.worker_rss_peak = 0  # the largest one scoring worker reached
        # Each process ever seen under a worker, by kind: its own CPU at the last sample. A finished
        # run's sandbox is killed, not waited for, so its CPU never reaches the worker's
        # children's times; sampled here it is counted to within one interval per process.
        self.cpu_seen: dict[str, dict[tuple[int, float], float]] = {kind: {} for kind in self.cpu_roots}
        self.cpu_lock = threading.Lock()  # the main thread samples too, at the window's edges
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            try:
                self.rss.append(self.process.memory_info().rss)
                self.queue.append(int(self.redis.llen("scoring")))
                for pid in self.scoring_pids:
                    self.worker_rss_peak = max(self.worker_rss_peak, tree_rss(pid))
                for kind in self.cpu_roots:
                    self.sample_cpu(kind)
            except Exception:  # sampling must never end the run
                continue

    def sample_cpu(self, kind: str) -> float:
        """Samples the ``kind`` ("scoring", "preflight") workers' processes; returns their CPU
        seconds so far (every process seen since the sampler started, by its own times, never twice)."""
        with self.cpu_lock:
            seen = self.cpu_seen[kind]
            for root in self.cpu_roots[kind]:
                tree = psutil.Process(root)
                for process in [tree, *tree.children(recursive=True)]:
                    try:
                        times = process.cpu_times()
                        seen[(process.pid, process.create_time())] = times.user + times.system
                    except psutil.Error:  # ended between the listing and the reading
                        continue
            return sum(seen.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainees", type=int, default=300)
    parser.add_argument("--window", type=float, default=300.0, help="seconds over which uploads start")
    parser.add_argument("--workers", type=int, default=1, help="scoring worker processes (one core each)")
    parser.add_argument("--model", choices=ALL_NAMES, default=COURSE_CNN, help="the example every trainee uploads")
    parser.add_argument("--drain-timeout", type=float, default=7200.0)
    parser.add_argument(
        "--bare-runs", type=int, default=1, help="bare predict runs to compare the sandbox with (0: none)"
    )
    parser.add_argument("--wait-every", type=float, default=10.0, help="seconds between readings of the told wait")
    parser.add_argument("--database-url", default="", help="default: SQLite in the run's folder")
    parser.add_argument("--postgres", action="store_true", help="start a private PostgreSQL 15 and use it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, database)")
    args = parser.parse_args()

    data, labels, example = artifacts(args.model)
    root = Path(tempfile.mkdtemp(prefix="katakana-rush-"))
    postgres: subprocess.Popen[bytes] | None = None
    if args.postgres:
        args.database_url, postgres = start_postgres(root)
    n_images = int(np.load(data, mmap_mode="r").shape[0])
    database = "PostgreSQL" if "postgresql" in args.database_url else "SQLite"
    load_before = os.getloadavg()
    print(f"{args.trainees} trainees within {args.window:.0f} s; {args.workers} scoring worker(s); "
          f"{args.model} example on {n_images} images; {database}; run folder {root}; "
          f"load average {load_before[0]:.1f} on {os.cpu_count()} CPUs", flush=True)  # fmt: skip
    try:
        stack = start_stack(root, args, data, labels)
    except BaseException:
        if postgres is not None:
            postgres.terminate()
        raise
    try:
        assert stack.web is not None
        emails = add_trainees(stack.env["KATAKANA_DATABASE_URL"], args.trainees)
        example_bytes = example.read_bytes()
        bodies = [personal_zip(example_bytes, i) for i in range(args.trainees)]
        rng = random.Random(args.seed)
        scoring_pids = [p.pid for p in stack.scoring]
        assert stack.preflight is not None
        sampler = Sampler(stack.web.pid, stack.redis, scoring_pids, stack.preflight.pid)
        sampler.start()
        time.sleep(1.5)
        rss_start = sampler.rss[-1]
        offsets = sorted(rng.uniform(0, args.window) for _ in emails)
        outcomes = [Outcome() for _ in emails]
        web = psutil.Process(stack.web.pid)
        web_cpu: dict[str, float] = {}
        scoring_cpu_before: list[float] = []
        t0 = time.monotonic()

        async def rush() -> None:
            """Everyone signs in within the window, then everyone uploads within the window.

            Apart, so the upload figures are the uploads' own: before a deadline trainees are
            mostly signed in already (sessions last two weeks), and the login figures are
            reported on their own (each is one Argon2 hash in the web process).
            """
            nonlocal t0
            clients = [httpx.AsyncClient(base_url=stack.url, timeout=600) for _ in emails]
            try:
                start = time.monotonic()
                await asyncio.gather(
                    *(
                        log_in(c, e, start + o, out)
                        for c, e, o, out in zip(clients, emails, offsets, outcomes, strict=True)
                    )
                )
                await asyncio.sleep(2)  # let the web process settle
                cpu = web.cpu_times()
                preflight_before = sampler.sample_cpu("preflight")
                scoring_cpu_before.append(sampler.sample_cpu("scoring"))
                t0 = time.monotonic()
                await asyncio.gather(
                    *(
                        upload(c, b, t0 + o, out)
                        for c, b, o, out in zip(clients, bodies, offsets, outcomes, strict=True)
                    )
                )
                after = web.cpu_times()
                web_cpu["uploads"] = (after.user + after.system) - (cpu.user + cpu.system)
                web_cpu["preflight"] = sampler.sample_cpu("preflight") - preflight_before
                await follow_waits(clients, outcomes, args.wait_every, args.drain_timeout)
            finally:
                for client in clients:
                    await client.aclose()

        asyncio.run(rush())
        uploads_done = time.monotonic() - t0
        print(f"uploads finished after {uploads_done:.1f} s; waiting for the queue to drain", flush=True)

        engine = make_engine(stack.env["KATAKANA_DATABASE_URL"])
        sessions = make_sessionmaker(engine)
        accepted = sum(o.status == 201 for o in outcomes)
        deadline = time.monotonic() + args.drain_timeout
        while True:
            with sessions() as session:
                final = session.scalar(select(func.count()).where(Submission.status.in_(FINAL))) or 0
            if final >= accepted or time.monotonic() > deadline:
                break
            time.sleep(1)
        drained = time.monotonic() - t0
        # Every scoring run in this window, with the sandbox pre-warmed for the next (its start-up
        # is part of what a run costs); the worker's idle wake-ups are noise next to a run.
        scoring_cpu = sampler.sample_cpu("scoring") - scoring_cpu_before[0]
        load_after = os.getloadavg()
        time.sleep(2)
        sampler.stop_event.set()
        sampler.join()
        with sessions() as session:
            rows = session.execute(
                select(Submission.status, Submission.error_code, Submission.created_at, Submission.started_at,
                       Submission.finished_at, Submission.duration_s, Submission.attempts,
                       Submission.peak_memory_mb, User.email, Submission.id)
                .join(User, User.id == Submission.user_id)
                .order_by(Submission.created_at)
            ).all()  # fmt: skip
        engine.dispose()

        scored = [r for r in rows if r.status in FINAL]
        succeeded = sum(r.status == SubmissionStatus.SUCCEEDED for r in rows)
        first_start = min(r.started_at for r in scored)
        last_finish = max(r.finished_at for r in scored)
        busy_min = (last_finish - first_start).total_seconds() / 60
        durations = [r.duration_s for r in scored if r.duration_s]
        peaks = [r.peak_memory_mb for r in scored if r.peak_memory_mb]
        waits = trainee_waits(scored)
        cpu_per_run = scoring_cpu / len(scored) if scored else float("nan")
        config = ScoringConfig(runtime=find_runtime(stack.env.get("KATAKANA_RUNTIME_PYTHON")))
        bare = statistics.median(
            [
                bare_predict_seconds(example, data, str(config.runtime.python), str(config.limits.cpus))
                for _ in range(args.bare_runs)
            ]
            or [float("nan")]
        )
        uploads = [o.upload_s for o in outcomes if o.status == 201]
        verdicts = [o.verdict_s for o in outcomes if o.status == 201]
        server_errors = [o for o in outcomes if o.status >= 500 or o.status == 0]
        refused = [o for o in outcomes if o.status not in (201,) and o not in server_errors]
        figures: dict[str, object] = {
            "load_average_before_after": [round(load_before[0], 1), round(load_after[0], 1)],
            "cpus": os.cpu_count(),
            "trainees": args.trainees,
            "window_s": args.window,
            "scoring_workers": args.workers,
            "model": args.model,
            "database": database,
            "test_images": n_images,
            "accepted": accepted,
            "refused": len(refused),
            "server_errors": len(server_errors),
            "scored": len(scored),
            "succeeded": succeeded,
            "scored_more_than_once": sum(r.attempts > 1 for r in rows),
            "upload_p50_s": round(percentile(uploads, 0.50), 3),
            "upload_p95_s": round(percentile(uploads, 0.95), 3),
            "upload_max_s": round(max(uploads, default=float("nan")), 3),
            "verdict_p50_s": round(percentile(verdicts, 0.50), 3),
            "verdict_p95_s": round(percentile(verdicts, 0.95), 3),
            "verdict_max_s": round(max(verdicts, default=float("nan")), 3),
            "login_p50_s": round(percentile([o.login_s for o in outcomes if o.login_s], 0.5), 3),
            "login_p95_s": round(percentile([o.login_s for o in outcomes if o.login_s], 0.95), 3),
            "web_cpu_s_per_upload": round(web_cpu.get("uploads", float("nan")) / max(1, len(emails)), 3),
            # The smoke runs' CPU (pre-flight worker and its sandboxes): on C cores, the last of N
            # uploads cannot be answered before N x this / C seconds, whatever the site does.
            "preflight_cpu_s_per_upload": round(web_cpu.get("preflight", float("nan")) / max(1, len(emails)), 3),
            "web_rss_mb_start": round(rss_start / 2**20, 1),
            "web_rss_mb_peak": round(max(sampler.rss) / 2**20, 1),
            "web_rss_mb_end": round(sampler.rss[-1] / 2**20, 1),
            "scoring_queue_peak": max(sampler.queue, default=0),
            "uploads_done_s": round(uploads_done, 1),
            "drained_s": round(drained, 1),
            "scored_per_min_per_worker": round(len(scored) / busy_min / args.workers, 2) if busy_min else None,
            # Per core, from CPU time: what the capacity table in docs/operations.md is sized by.
            "scoring_cpu_s_per_run": round(cpu_per_run, 2),
            "scored_per_core_hour": round(3600 / cpu_per_run, 1) if cpu_per_run > 0 else None,
            "sandbox_peak_memory_mb_median": round(statistics.median(peaks), 1) if peaks else None,
            "sandbox_peak_memory_mb_max": round(max(peaks), 1) if peaks else None,
            "scoring_worker_rss_mb_peak": round(sampler.worker_rss_peak / 2**20, 1),
            "wait_p50_s": round(percentile([w.total_s for w in waits], 0.50), 1),
            "wait_p95_s": round(percentile([w.total_s for w in waits], 0.95), 1),
            "wait_max_s": round(max((w.total_s for w in waits), default=float("nan")), 1),
            "sandboxed_scoring_median_s": round(statistics.median(durations), 3) if durations else None,
            "bare_predict_median_s": round(bare, 3),
            "waits": [w.as_json() for w in waits],
        }
        if durations:
            figures["sandbox_ratio"] = round(statistics.median(durations) / bare, 2)
        finished = {r.id: r.finished_at.timestamp() for r in scored if r.finished_at}
        errors = wait_errors(outcomes, finished)
        first = wait_errors(outcomes, finished, first_only=True)
        figures["waits_told"] = len(errors)
        if errors:
            figures["wait_error_median_pct"] = round(100 * statistics.median(errors), 1)
            figures["wait_error_p95_abs_pct"] = round(100 * percentile([abs(e) for e in errors], 0.95), 1)
            figures["first_wait_error_median_pct"] = round(100 * statistics.median(first), 1)
            figures["first_wait_error_p95_abs_pct"] = round(100 * percentile([abs(e) for e in first], 0.95), 1)
        figures["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps({k: v for k, v in figures.items() if k != "waits"}, indent=2))
        print_waits(waits)
        if errors:
            load = figures["load_average_1_5_15"]
            print(f"wait told vs wait had, {len(errors)} readings of {len(first)} uploads' pages: median error "
                  f"{figures['wait_error_median_pct']:+.1f} % (target within ±30 %), 95th percentile of |error| "
                  f"{figures['wait_error_p95_abs_pct']:.1f} %; each upload's first: median "
                  f"{figures['first_wait_error_median_pct']:+.1f} %, p95 |error| "
                  f"{figures['first_wait_error_p95_abs_pct']:.1f} %; load average {load}")  # fmt: skip
        for outcome in (server_errors + refused)[:5]:
            print(f"  not accepted: {outcome.status} {outcome.error}")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        stack.stop()
        if postgres is not None:
            postgres.terminate()
            postgres.wait(timeout=60)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
