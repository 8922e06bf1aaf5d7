"""Embedded mode (``python -m app.cli serve``) outlives a scoring worker killed mid-run.

The OOM killer sends SIGKILL: no clean-up, no re-queue by Celery. The supervisor starts the worker
again after its back-off, the sweeper reclaims the submission whose heartbeat stopped, and the new
worker scores it — once, with one email. The upload itself goes through the embedded pre-flight
worker, so this also shows the site running no trainee code of its own.
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select

from app.db import make_engine, make_sessionmaker
from app.models import Submission, SubmissionStatus
from tests.fixtures.artifacts import DataSet
from tests.fixtures.embedded import embedded_serve
from tests.fixtures.live_service import log_in, upload_bytes
from tests.fixtures.services import wait_for
from tests.worker.conftest import zip_with

SLOW_ZEROS = """import time

import numpy as np

calls = []


def predict(test_data):
    calls.append(len(test_data))
    if len(calls) == 2:  # the scoring run's second chunk (the pre-flight makes one call, on 30 images)
        time.sleep(15)  # long enough to be killed mid-run, even on a loaded machine
    return np.zeros(len(test_data), dtype=np.int64)
"""


def _scoring_worker(serve: subprocess.Popen[bytes]) -> psutil.Process | None:
    for child in psutil.Process(serve.pid).children(recursive=True):
        try:
            if "scoring@%h" in child.cmdline() and child.pid == os.getpgid(child.pid):
                return child
        except (psutil.Error, ProcessLookupError):
            continue
    return None


@pytest.mark.slow
def test_a_scoring_worker_killed_mid_run_is_restarted_and_the_submission_scored_once(
    tmp_path: Path, synthetic_set: DataSet
) -> None:
    env = {
        "KATAKANA_PREFLIGHT_CONCURRENCY": "1",
        "KATAKANA_PREFLIGHT_INLINE_WAIT_S": "120",  # the upload's answer below is its verdict
        "KATAKANA_WORKER_HEARTBEAT_INTERVAL_S": "0.5",
        "KATAKANA_WORKER_STALE_AFTER_S": "3",
        "KATAKANA_WORKER_SWEEP_INTERVAL_S": "1",
    }
    with embedded_serve(tmp_path, synthetic_set.dir, env) as serve:
        engine = make_engine(f"sqlite:///{serve.data_dir / 'katakana.sqlite3'}")
        sessions = make_sessionmaker(engine)

        def submission() -> Submission | None:
            with sessions() as session:
                return session.scalars(select(Submission)).first()

        try:
            wait_for(
                lambda: serve.output().count("sandbox self-test passed") >= 2, "the scoring and pre-flight workers", 300
            )
            client = log_in(serve.url, "trainee@example.com", serve.password("trainee@example.com"))
            response = upload_bytes(client, zip_with(SLOW_ZEROS), confirm_near_chance=True)  # zeros: near chance
            assert response.status_code == 201, response.text  # the pre-flight ran on the pre-flight worker

            wait_for(lambda: (row := submission()) is not None and row.status == SubmissionStatus.RUNNING, "a run", 120)
            worker = wait_for(lambda: _scoring_worker(serve.process), "the scoring worker's process")
            os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool, as the OOM killer would

            wait_for(lambda: "starting the scoring worker again" in serve.output(), "the supervisor to restart it", 120)
            final = wait_for(
                lambda: (row := submission()) is not None and row.status == SubmissionStatus.SUCCEEDED and row,
                "the submission to be scored by the restarted worker",
                300,
            )
            mail_dir = serve.data_dir / "mail"
            wait_for(lambda: mail_dir.is_dir() and any(mail_dir.glob("*.eml")), "the result email", 120)
        finally:
            engine.dispose()
    output = serve.output()
    assert serve.exit_code == 0, output[-5000:]
    assert final.attempts == 2  # killed once, then scored: exactly once to the end
    assert "the scoring worker exited with -9; starting it again in 1 s" in output
    assert "NO SANDBOX" not in output
    (mail,) = mail_dir.glob("*.eml")
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    # No KATAKANA_BASE_URL: the link is where `serve --port` put the site, not the default port.
    assert f"{serve.url}/submissions/{final.id}" in text and serve.port != 8000
