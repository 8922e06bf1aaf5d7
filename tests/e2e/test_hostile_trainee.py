"""A hostile trainee against the live service: every attack that once worked, through every way out.

Each attack is a submission that behaves on the pre-flight (30 public images) and turns hostile on
the hidden set, as a trainee who wanted the hidden images would write it: it puts the images
themselves (base64) into its output, then takes its route — an exception with MBs of message, a
forged or malformed report on the harness's result channel, an exception that cannot be printed, a
patched NumPy, ``os._exit(160)``, a real-time signal, a flood of output, children that only
fit the memory limit one at a time. Through the live stack
(upload → pre-flight → Redis → worker → sandbox → database → page, log download, email, API) each
must:

- be counted: the trainee's uploads left today go down by one (no refund);
- be blamed on the submission, with the expected code;
- reveal at most the excerpt: no more than ``EXCERPT`` bytes of the images on any surface (the
  result page, the log download, the email, the admin API's log), and no more than the stored
  bound in what is kept for staff.

One live service serves every case (starting it dominates the time). A future finding of this kind
is one more ``Attack`` in ``ATTACKS``.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import os
import re
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from app.db import make_engine, make_sessionmaker
from app.models import Enrollment, Language, Role, Submission, User
from app.security.passwords import hash_password
from app.services.api_tokens import TokenScope, create_token
from scorer.disclosure import DEFAULT_EXCERPT_BYTES, DEFAULT_STORED_BYTES, RESERVED_BYTES
from tests.fixtures.artifacts import DataSet
from tests.fixtures.db import migrate, migrated_database
from tests.fixtures.live_service import (
    PASSWORD,
    SECRET,
    TRAINEE_EMAIL,
    Service,
    create_people,
    import_small_testset,
    log_in,
)
from tests.fixtures.services import SmtpServer, TestRedis, WorkerProcess, free_port, start_uvicorn, wait_for

pytestmark = pytest.mark.xdist_group("hostile-live-service")  # one xdist worker, so one live stack

EXCERPT = DEFAULT_EXCERPT_BYTES
INSTRUCTOR_EMAIL = "sensei@example.test"
ADMIN_EMAIL = "admin@example.test"

# Every attack starts like this: honest on the pre-flight's few public images, and on the hidden
# set it holds the images as base64 in LEAK.
PREAMBLE = """import base64
import os
import signal

import numpy


def predict(test_data):
    if len(test_data) <= 30:  # the free pre-flight: look like a sound submission
        return numpy.zeros(len(test_data), dtype=numpy.int64)
    LEAK = base64.b64encode(numpy.ascontiguousarray(test_data).tobytes()).decode()
"""


@dataclass(frozen=True)
class Attack:
    name: str
    body: str  # the rest of predict, indented by 4 (LEAK holds the images)
    code: str | None  # the expected error code; None: scored (and still no more than the excerpt shown)
    shows: str = ""  # text the stored log must hold (what the output became when it was made storable)


# Output no database column takes as it is: a NUL (PostgreSQL refuses it), a lone surrogate (SQLite's
# driver cannot encode it). Once such a result was never stored: re-run, then given back as the
# server's fault. Run on both databases (test_unstorable_output_on_postgresql below, too).
UNSTORABLE = [
    Attack(
        "nul_in_output",
        '    print("A\\x00B", LEAK[:64], flush=True)\n    return numpy.zeros(len(test_data), dtype=numpy.int64)\n',
        None,
        shows="A\\x00B",
    ),
    Attack(
        "fd3_lone_surrogate_traceback",
        "    print(LEAK)\n"
        '    os.write(3, b\'{"event": "error", "code": "predict_exception", \'\n'
        '             b\'"params": {"reason": "boom \\\\ud800"}, "traceback": "boom \\\\ud800 \\\\u0000"}\\n\')\n'
        "    os._exit(0)\n",
        "predict_exception",
        shows="boom \\ud800 \\x00",
    ),
    Attack(
        "lone_surrogate_exception",
        '    print(LEAK[:64])\n    raise ValueError(LEAK + " boom \\udfff")\n',
        "predict_exception",
        shows="boom \\udfff",
    ),
]

ATTACKS = [
    Attack("huge_exception_message", "    raise ValueError(LEAK * 8)\n", "predict_exception"),
    Attack(
        "fd3_forged_server_fault",
        "    print(LEAK)\n"
        '    os.write(3, b\'{"event": "error", "code": "internal_error", "params": {}}\\n\')\n'
        "    os._exit(0)\n",
        "harness_disrupted",
    ),
    Attack(
        "malformed_result_event",
        '    print(LEAK)\n    os.write(3, b\'{"event": "result", "bytes": "all of them"}\\n\')\n    os._exit(0)\n',
        "harness_disrupted",
    ),
    Attack(
        "raising_str",
        "    class Unprintable(Exception):\n"
        "        def __str__(self):\n"
        "            raise RuntimeError(LEAK)\n"
        "    print(LEAK)\n"
        "    raise Unprintable()\n",
        "predict_exception",
    ),
    Attack(
        "numpy_internals_patched",
        "    from numpy.lib import format as npy_format\n\n"
        "    def broken(*args, **kwargs):\n"
        "        raise RuntimeError(LEAK)\n\n"
        "    npy_format.write_array = broken  # the harness saves the predictions through it\n"
        "    return numpy.zeros(len(test_data), dtype=numpy.int64)\n",
        "harness_disrupted",
    ),
    Attack(
        "numpy_concatenate_patched",
        "    def broken(*args, **kwargs):\n"
        "        raise RuntimeError(LEAK)\n\n"
        "    numpy.concatenate = broken  # the harness merges chunks with its own reference\n"
        "    print(LEAK)\n"
        "    return numpy.zeros(len(test_data), dtype=numpy.int64)\n",
        None,
    ),
    Attack("exit_status_160", "    print(LEAK, flush=True)\n    os._exit(160)\n", "submission_exited"),
    Attack(
        "realtime_signal",
        "    print(LEAK, flush=True)\n    os.kill(os.getpid(), signal.SIGRTMIN + 1)\n",
        "submission_exited",
    ),
    Attack("stdout_flood", "    while True:\n        print(LEAK)\n", "output_too_large"),
    Attack(
        "children_memory",  # each process fits the memory limit (4 GiB); together they do not
        "    print(LEAK[:100000], flush=True)\n"
        "    children = []\n"
        "    for _ in range(3):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            block = numpy.ones(1800 * 2**20 // 8)  # 1.8 GiB, every page written\n"
        "            signal.pause()\n"
        "            os._exit(int(block[0]))\n"
        "        children.append(pid)\n"
        "    for pid in children:\n"
        "        os.waitpid(pid, 0)\n"
        "    return numpy.zeros(len(test_data), dtype=numpy.int64)\n",
        "memory_limit",
    ),
    *UNSTORABLE,
]


def output_part(download: str) -> str:
    """A log download opens with the run's facts (the service's own lines), then the output."""
    return download.split("\n--- ", 1)[1].split("\n", 1)[1]


def attack_zip(attack: Attack) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("submission/submit_katakana.py", PREAMBLE + attack.body)
    return buffer.getvalue()


# --- one live service for the module --------------------------------------------------------------


@dataclass
class Stack:
    service: Service
    admin_token: str
    hidden_b64: str  # the hidden images as the submissions encode them


@contextlib.contextmanager
def live_stack(root: Path, database_url: str, synthetic_set: DataSet) -> Iterator[Stack]:
    """Redis, SMTP, a worker and the site on a migrated ``database_url``, with staff accounts."""
    redis = TestRedis(directory=root / "redis", port=free_port())
    redis.start()
    smtp = SmtpServer(port=free_port())
    smtp.start()
    env_settings = {
        "KATAKANA_ENVIRONMENT": "test",
        "KATAKANA_DATA_DIR": str(root / "data"),
        "KATAKANA_DATABASE_URL": database_url,
        "KATAKANA_REDIS_URL": redis.url,
        "KATAKANA_SMTP_HOST": "127.0.0.1",
        "KATAKANA_SMTP_PORT": str(smtp.port),
        "KATAKANA_MAIL_FROM": "katakana-scorer <scorer@example.test>",
        "KATAKANA_BASE_URL": "http://scorer.example.test",
        "KATAKANA_WORKER_PRESENCE_TTL_S": "3",
        "KATAKANA_PREFLIGHT_INLINE_WAIT_S": "120",  # the assertions read each upload's verdict
    }
    env = {**os.environ, **env_settings, "KATAKANA_SECRET_KEY": SECRET, "PYTHONUNBUFFERED": "1"}
    import_small_testset(env, synthetic_set)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    create_people(sessions)
    with sessions.begin() as session:
        staff = [
            User(email=INSTRUCTOR_EMAIL, name="先生", role=Role.INSTRUCTOR, language=Language.JA,
                 password_hash=hash_password(PASSWORD)),
            User(email=ADMIN_EMAIL, name="管理者", role=Role.ADMIN, language=Language.JA,
                 password_hash=hash_password(PASSWORD)),
        ]  # fmt: skip
        session.add_all(staff)
        session.flush()
        cohort_id = session.scalars(select(Enrollment.cohort_id)).first()
        session.add(Enrollment(user_id=staff[0].id, cohort_id=cohort_id, role=Role.INSTRUCTOR))
        admin_token = create_token(session, staff[1], TokenScope.ADMIN, "hostile-suite").secret
    worker = WorkerProcess(env=env, log_path=root / "worker.log").start()
    worker.wait_ready()
    site = start_uvicorn(env, root / "uvicorn.log")
    service = Service(
        env=env, worker_env=env_settings, worker=worker, redis=redis, smtp=smtp, sessions=sessions, site=site
    )
    service.set_daily_limit(len(ATTACKS) + 5)  # every attack must still be counted: see uploads_left
    images = np.load(service.active_testset().data_path, allow_pickle=False)
    hidden_b64 = base64.b64encode(np.ascontiguousarray(images).tobytes()).decode()
    try:
        yield Stack(service, admin_token, hidden_b64)
    finally:
        site.stop()
        worker.stop()
        smtp.stop()
        smtp.port_hold.release()
        redis.stop()
        redis.port_hold.release()
        engine.dispose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, synthetic_set: DataSet) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("hostile-live")
    database_url = f"sqlite:///{root / 'katakana.sqlite3'}"
    migrate(database_url)
    with live_stack(root, database_url, synthetic_set) as started:
        yield started


@pytest.fixture(scope="module")
def postgres_stack(
    tmp_path_factory: pytest.TempPathFactory, synthetic_set: DataSet, postgres_server: str
) -> Iterator[Stack]:
    database_url = migrated_database(postgres_server, "katakana_hostile_live")
    with live_stack(tmp_path_factory.mktemp("hostile-live-pg"), database_url, synthetic_set) as started:
        yield started


# --- measuring what leaks -------------------------------------------------------------------------

_B64_RUN = re.compile(r"[A-Za-z0-9+/=]{24,}")


def leaked_bytes(text: str, secret: str) -> int:
    """How many distinct characters of ``secret`` (the images' base64) ``text`` shows, in runs of 24+.

    Each base64-looking run is split into the longest stretches found in the secret (a run can join
    trainee bytes with our own words); a stretch shown twice (the email's text and HTML parts, a
    message that repeats the log's first line) counts once, by where it lies in the secret.
    """
    covered: list[tuple[int, int]] = []
    for match in _B64_RUN.finditer(text):
        run = match.group()
        start = 0
        while start < len(run):
            size = _longest_prefix_in(run[start:], secret)
            if size >= 24:
                at = secret.find(run[start : start + size])
                covered.append((at, at + size))
                start += size
            else:
                start += 1
    total, reached = 0, -1
    for begin, end in sorted(covered):
        if end > reached:
            total += end - max(begin, reached)
            reached = end
    return total


def _longest_prefix_in(run: str, secret: str) -> int:
    low, high = 0, len(run)  # binary search: prefixes of a substring are substrings
    while low < high:
        mid = (low + high + 1) // 2
        if run[:mid] in secret:
            low = mid
        else:
            high = mid - 1
    return low


def uploads_left(client: httpx.Client) -> int:
    found = re.search(r'data-remaining="(\d+)"', client.get("/upload").text)
    assert found, "the upload page shows today's uploads left"
    return int(found.group(1))


def email_text(service: Service, filename: str) -> str:
    def mine() -> list[str]:
        texts = []
        for message in service.smtp.messages:
            if filename in str(message["Subject"]):
                for part in message.walk():
                    if part.get_content_maintype() == "text":
                        texts.append(html.unescape(part.get_content()))
        return texts

    found: list[str] = wait_for(mine, f"the result email for {filename}")
    return "\n".join(found)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_a_hostile_submission_is_counted_blamed_and_reveals_at_most_the_excerpt(stack: Stack, attack: Attack) -> None:
    attack_through_every_surface(stack, attack)


@pytest.mark.parametrize("attack", UNSTORABLE, ids=[a.name for a in UNSTORABLE])
def test_unstorable_output_on_postgresql_is_stored_counted_and_blamed(postgres_stack: Stack, attack: Attack) -> None:
    """PostgreSQL refuses a NUL where SQLite takes it: the same attacks, on the other database."""
    attack_through_every_surface(postgres_stack, attack)


def attack_through_every_surface(stack: Stack, attack: Attack) -> None:
    """Upload ``attack``, wait for its final result (never left running), then check every surface."""
    service = stack.service
    client = service.login(TRAINEE_EMAIL)
    before = uploads_left(client)
    filename = f"{attack.name}-{uuid.uuid4().hex[:6]}.zip"
    response = client.post(
        "/upload",
        files={"file": (filename, attack_zip(attack), "application/zip")},
        data={"csrf_token": client.cookies["katakana_csrf"]},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 201, f"the pre-flight must accept it: {response.text[:2000]}"
    submission_id = int(response.json()["id"])
    status = service.wait_final(client, submission_id)

    # Blamed on the submission, and counted.
    with service.sessions() as session:
        row = session.get(Submission, submission_id)
        assert row is not None
    assert row.error_code == attack.code, (row.error_code, row.log, service.worker.output()[-3000:])
    if attack.code is None:
        assert status["status"] == "succeeded" and row.accuracy is not None
    else:
        assert row.error_blame == "submission"
    assert row.counts_toward_limit
    assert uploads_left(client) == before - 1
    assert attack.shows in (row.log or ""), row.log  # stored, the unstorable as visible escapes

    # At most the excerpt of the hidden images on every surface the trainee has.
    secret = stack.hidden_b64
    page = html.unescape(client.get(f"/submissions/{submission_id}").text)
    log = client.get(f"/submissions/{submission_id}/log").text
    mail = email_text(service, filename)
    surfaces = {"result page": page, "log download": log, "email": mail, "stored log": row.log or ""}
    for where, text in surfaces.items():
        assert leaked_bytes(text, secret) <= EXCERPT, f"{where} shows more than the excerpt"
    assert len(output_part(log).encode()) <= EXCERPT + RESERVED_BYTES
    if leaked_bytes(log, secret) >= EXCERPT // 2:
        assert "withheld" in log and "python -m scorer run" in log  # says where full logs are

    # Staff: the admin API shows the same excerpt as the log, and the longer staff log within its bound.
    api = httpx.get(
        f"{service.url}/api/v1/submissions/{submission_id}",
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=60,
    )
    assert api.status_code == 200, api.text[:500]
    detail = api.json()
    assert detail["error_code"] == attack.code and detail["counts_toward_limit"] is True
    assert leaked_bytes(detail["log"] or "", secret) <= EXCERPT
    staff_log = detail["result"].get("staff_log") or ""
    assert len(staff_log.encode()) <= DEFAULT_STORED_BYTES + RESERVED_BYTES
    assert leaked_bytes(str(detail["result"].get("error")), secret) <= EXCERPT
    instructor = log_in(service.url, INSTRUCTOR_EMAIL, PASSWORD)
    staff_download = instructor.get(f"/submissions/{submission_id}/log").text
    assert staff_download == html.unescape(staff_download)  # plain text
    assert len(output_part(staff_download).encode()) <= DEFAULT_STORED_BYTES + RESERVED_BYTES


# --- work on the upload before any sandbox ------------------------------------------------------

# The worker's processes stay below this whatever the zip holds: reading it happens in a bounded
# child (scorer.bounded, at most 512 MiB more), and these are the worker's own, idle and busy.
WORKER_PEAK_BOUND = 768 * 2**20


def worker_peaks(worker: WorkerProcess) -> dict[int, int]:
    """The resident high-water mark (VmHWM) of each process in the worker's process group."""
    assert worker.process is not None
    peaks = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry.name}/stat").read()  # noqa: SIM115
            status = open(f"/proc/{entry.name}/status").read()  # noqa: SIM115
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) == worker.process.pid and "VmHWM:" in status:
            peaks[int(entry.name)] = int(status.split("VmHWM:")[1].split()[0]) * 1024
    return peaks


def test_a_compile_bomb_upload_is_refused_unspent_and_the_worker_stays_small(stack: Stack) -> None:
    # 100 KB of zip, 48 MiB of "x=[1,2,3]": compiled in the pre-flight worker, 4 KB of this took
    # 2.8 GB and left 964 MB resident.
    source = (
        "import numpy\n" + "x=[1,2,3]\n" * 5_000_000 + "def predict(d):\n    return numpy.zeros(len(d), dtype=int)\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("bomb/submit_katakana.py", source)
    assert len(buffer.getvalue()) <= 120 * 1024
    service = stack.service
    client = service.login(TRAINEE_EMAIL)
    before = uploads_left(client)
    response = client.post(
        "/upload",
        files={"file": ("bomb.zip", buffer.getvalue(), "application/zip")},
        data={"csrf_token": client.cookies["katakana_csrf"]},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 422, response.text[:2000]
    assert "entry_too_large" in response.text
    assert uploads_left(client) == before  # a refused upload spends nothing
    peaks = worker_peaks(service.worker)
    assert peaks and max(peaks.values()) < WORKER_PEAK_BOUND, peaks
    # The worker is untouched: the next, honest upload is checked and scored as usual.
    honest = io.BytesIO()
    with zipfile.ZipFile(honest, "w") as archive:
        archive.writestr(
            "honest/submit_katakana.py", PREAMBLE + "    return numpy.zeros(len(test_data), dtype=numpy.int64)\n"
        )
    response = client.post(
        "/upload",
        files={"file": ("honest.zip", honest.getvalue(), "application/zip")},
        data={"csrf_token": client.cookies["katakana_csrf"]},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 201, response.text[:2000]
    assert service.wait_final(client, int(response.json()["id"]))["status"] == "succeeded"
