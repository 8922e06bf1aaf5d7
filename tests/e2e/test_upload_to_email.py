"""An example submission uploaded over HTTP, scored by the worker, shown on the service and emailed."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import select

from app.models import Submission
from app.queue import enqueue_scoring
from tests.fixtures.artifacts import DataSet, Examples
from tests.fixtures.html import off_site_references
from tests.fixtures.live_service import OTHER_EMAIL, TRAINEE_EMAIL, Service
from tests.fixtures.services import enqueue_sweep
from tests.scorer.test_pipeline import in_process_correct


def upload(client: httpx.Client, path: Path, filename: str | None = None, **fields: str) -> httpx.Response:
    return client.post(
        "/upload",
        files={"file": (filename or path.name, path.read_bytes(), "application/zip")},
        data={"csrf_token": client.cookies["katakana_csrf"], **fields},
        headers={"Accept": "application/json"},
    )


def test_upload_is_scored_shown_and_emailed_once(
    service: Service, example_zips: Examples, synthetic_set: DataSet, tmp_path: Path
) -> None:
    client = service.login()
    filename = "dl_tokyo_2_submit_katakana_山田_20261124.zip"
    response = upload(client, example_zips.cnn_zip, filename, validation_accuracy="97.5")
    assert response.status_code == 201, response.text
    submission_id = int(response.json()["id"])

    status = service.wait_final(client, submission_id)
    assert status["status"] == "succeeded", service.worker.output()[-5000:]

    # The stored result is exact: an independent in-process computation on the same images agrees.
    expected_correct = in_process_correct(
        example_zips.cnn_zip, tmp_path, synthetic_set.small_data, synthetic_set.small_label
    )
    with service.sessions() as session:
        row = session.scalars(select(Submission).where(Submission.id == submission_id)).one()
        assert row.correct == expected_correct and row.total == 150
        assert row.accuracy == expected_correct / 150
        assert row.original_filename == filename
        assert row.validation_accuracy is not None and abs(row.validation_accuracy - 0.975) < 1e-9
        assert row.zip_sha256 and row.testset_id and row.runtime and row.limits
        assert row.loss is not None  # the CNN example returns probabilities

    page = client.get(f"/submissions/{submission_id}")
    assert page.status_code == 200
    percent = f"{100 * expected_correct / 150:.1f}"
    assert percent in page.text
    assert "ア" in page.text and "<svg" in page.text  # per-class chart and confusion heat map, no CDN
    assert off_site_references(page.text) == []

    messages = service.smtp.wait_for_messages(1)
    message = messages[0]
    assert message["To"].endswith(TRAINEE_EMAIL)
    body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert filename in body and "dl_tokyo_2" in body
    assert percent in body or f"{expected_correct / 150:.4f}" in body
    assert f"/submissions/{submission_id}" in body

    # Another trainee cannot see any of it.
    other = service.login(OTHER_EMAIL)
    for path in ("", "/status", "/log", "/file"):
        assert other.get(f"/submissions/{submission_id}{path}").status_code == 404

    # Exactly one email, even after a sweep and a second delivery of the scoring task.
    settings = service.settings()
    assert enqueue_scoring(submission_id, settings) and enqueue_sweep(settings)
    service.worker.wait_task_succeeded("worker.tasks.sweeper.sweep", count=1)
    service.worker.wait_task_succeeded("worker.tasks.scoring.score", count=2)
    assert len(service.smtp.messages) == 1


def test_a_broken_zip_is_refused_at_once_and_costs_no_slot(service: Service, tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("my_folder/submit_katakana.py", "def func_predict(test_data, test_label):\n    return 0, 1\n")
    client = service.login()
    response = upload(client, broken)
    assert response.status_code in (400, 422), response.text
    text = response.text
    assert "legacy_func_predict" in text or "func_predict" in text
    with service.sessions() as session:
        assert session.scalars(select(Submission)).all() == []
    # Still three uploads left today.
    page = client.get("/upload")
    assert re.search(r'data-remaining="3" data-limit="3"', page.text), page.text


def test_labels_never_leave_the_worker(service: Service, synthetic_set: DataSet) -> None:
    """The imported label file is readable by the worker's user only."""
    labels = list(Path(service.env["KATAKANA_DATA_DIR"]).rglob("*label*.npy"))
    assert labels, "the test set was imported"
    for path in labels:
        assert path.stat().st_mode & 0o077 == 0, oct(path.stat().st_mode)
    assert np.load(labels[0]).shape[0] == 150
