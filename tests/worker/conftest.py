"""The world a worker test runs in: a migrated database, a tiny test set, a trainee, stored zips.

The real services (Redis, SMTP, the Celery worker) come from tests/fixtures/services.py. The test
set is 15 blank images, one per class: the submissions used here predict without looking at the
images, so what matters is only that scoring really runs, in the real sandbox, end to end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker
from app.models import Cohort, EmailOutbox, Language, Role, Submission, SubmissionStatus, TestSet, User
from app.services.quota import quota_day
from app.services.storage import key_for, path_for
from app.services.testset_import import sha256_of_testset
from app.settings import Settings
from scorer.classes import IMAGE_SHAPE, NUM_CLASSES
from tests.fixtures.services import WorkerProcess, wait_for
from worker.similarity import forget_kept_cohorts

REPO = Path(__file__).resolve().parents[2]

PREDICT_ZEROS = """import numpy as np


def predict(test_data):
    print("predicting", len(test_data), "images")
    return np.zeros(len(test_data), dtype=np.int64)
"""

PREDICT_RAISES = """def predict(test_data):
    raise ValueError("my model is not trained yet")
"""


def settings_from_env(env: dict[str, str]) -> Settings:
    values = {
        key.removeprefix("KATAKANA_").lower(): value
        for key, value in env.items()
        if key.startswith("KATAKANA_") and not key.startswith("KATAKANA_WORKER_")
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def zip_with(source: str, name: str = "submit_katakana.py") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:  # as trainees' zips are
        archive.writestr(name, source)
    return buffer.getvalue()


# Compiling this costs memory far out of proportion to its size: 9.9 KB of it zipped took a
# pre-flight worker to 2.8 GB, and 100 KB would take the host down.
COMPILE_BOMB_LINES = 5_000_000


def compile_bomb(entry: str) -> str:
    """A 48 MiB entry (``submit_katakana.py`` or a notebook's one cell) that zips to about 100 KB."""
    source = "import numpy as np\n" + "x=[1,2,3]\n" * COMPILE_BOMB_LINES
    source += "def predict(test_data):\n    return np.zeros(len(test_data), dtype=np.int64)\n"
    if not entry.endswith(".ipynb"):
        return source
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def pool_process(worker: WorkerProcess) -> psutil.Process:
    """The worker's one pool process (concurrency 1), the one that runs its tasks."""
    assert worker.process is not None
    main = psutil.Process(worker.process.pid)

    def pool() -> psutil.Process | None:
        alive = [p for p in main.children() if p.status() != psutil.STATUS_ZOMBIE]
        return alive[0] if len(alive) == 1 else None

    found: psutil.Process = wait_for(pool, "the worker's pool process")
    return found


def peak_rss_bytes(pid: int) -> int:
    """A process's resident high-water mark (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


@dataclass
class World:
    settings: Settings
    sessions: sessionmaker[Session]
    trainee_id: int
    cohort_id: int
    testset_id: int

    def submit(
        self,
        source: str = PREDICT_ZEROS,
        *,
        filename: str = "my_submission.zip",
        entry: str = "submit_katakana.py",
        status: SubmissionStatus = SubmissionStatus.QUEUED,
        created_at: dt.datetime | None = None,
        **columns: Any,
    ) -> int:
        """Store a zip and commit its ``queued`` row, as the site does after pre-flight."""
        data = zip_with(source, entry)
        sha = hashlib.sha256(data).hexdigest()
        assert self.settings.storage_dir is not None
        path = path_for(self.settings.storage_dir, key_for(sha))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        now = created_at or dt.datetime.now(dt.UTC)
        with self.sessions.begin() as session:
            row = Submission(
                user_id=self.trainee_id,
                cohort_id=self.cohort_id,
                status=status,
                created_at=now,
                quota_day=quota_day(now, "Asia/Tokyo"),
                counts_toward_limit=True,
                original_filename=filename,
                zip_sha256=sha,
                zip_size=len(data),
                storage_key=key_for(sha),
                **{"attempts": 0, **columns},
            )
            session.add(row)
            session.flush()
            return row.id

    def submission(self, submission_id: int) -> Submission:
        with self.sessions() as session:
            row = session.get(Submission, submission_id)
            assert row is not None
            return row

    def outbox(self) -> list[EmailOutbox]:
        with self.sessions() as session:
            return list(session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))

    def status(self, submission_id: int) -> SubmissionStatus:
        return self.submission(submission_id).status

    def uploads_left_line(self, submission_id: int, spent: int, limit: int = 3) -> str:
        """The email's "uploads left today" line as it must read: ``spent`` of today's uploads are
        used, unless 00:00 in Tokyo passed between the upload and the email (then a new day's)."""
        row = self.submission(submission_id)
        mail = next(m for m in self.outbox() if m.submission_id == submission_id)
        same_day = quota_day(mail.created_at, "Asia/Tokyo") == row.quota_day
        return f"今日の残り提出回数: {limit - spent if same_day else limit} / {limit} 回"


def install_testset(folder: Path, sessions: sessionmaker[Session]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    data, labels = folder / "test_data.npy", folder / "test_label.npy"
    np.save(data, np.zeros((NUM_CLASSES, *IMAGE_SHAPE), dtype=np.float32))
    np.save(labels, np.eye(NUM_CLASSES, dtype=np.float32))
    with sessions.begin() as session:
        row = TestSet(
            version="tiny-1",
            data_path=str(data),
            labels_path=str(labels),
            sha256=sha256_of_testset(data, labels),
            n_images=NUM_CLASSES,
            class_counts=[1] * NUM_CLASSES,
            is_active=True,
        )
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture
def world(worker_env: dict[str, str], database_url: str) -> Iterator[World]:
    settings = settings_from_env(worker_env)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    assert settings.testset_dir is not None
    testset_id = install_testset(settings.testset_dir / "tiny-1", sessions)
    with sessions.begin() as session:
        cohort = Cohort(
            name="dl_tokyo_2", title="DL 東京 2 期", daily_limit=3, timezone="Asia/Tokyo", pass_threshold=0.05
        )
        trainee = User(email="hanako@example.test", name="山田 花子", role=Role.TRAINEE, language=Language.JA)
        session.add_all([cohort, trainee])
        session.flush()
        ids = (trainee.id, cohort.id)
    yield World(settings, sessions, ids[0], ids[1], testset_id)
    engine.dispose()


@pytest.fixture(autouse=True)
def _no_kept_cohorts() -> Iterator[None]:
    """Each test's databases start their ids afresh: a cohort this process kept for another test
    (``worker.similarity``) must not stand in for this one's."""
    forget_kept_cohorts()
    yield
    forget_kept_cohorts()
