"""A corrupt test-set file: a clear internal error, the slot returned, and the service keeps serving."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx

from app.models import SubmissionStatus
from scorer.errors import ErrorCode
from tests.fixtures.live_service import QUICK_ZIP, Service, upload_bytes


def remaining_today(client: httpx.Client) -> int:
    """Uploads left today, as the upload page shows them to the trainee."""
    match = re.search(r'data-remaining="(\d+)"', client.get("/upload").text)
    assert match
    return int(match.group(1))


def test_a_corrupt_test_set_fails_as_the_servers_fault_and_scoring_resumes_once_fixed(
    service: Service, tmp_path: Path
) -> None:
    data = Path(service.active_testset().data_path)
    assert data.is_relative_to(Path(service.env["KATAKANA_DATA_DIR"]))  # the imported copy, not the cache
    good = tmp_path / "good_test_data.npy"
    shutil.copy2(data, good)

    # Bit rot: a few bytes in the middle of the images change, size and name do not.
    with data.open("r+b") as handle:
        handle.seek(data.stat().st_size // 2)
        handle.write(b"\xff\x00\xff\x00")
    os.utime(data)  # as a real write would

    client = service.login()
    assert remaining_today(client) == 3
    response = upload_bytes(client, QUICK_ZIP, "during_corruption.zip")
    assert response.status_code == 201, response.text
    (broken,) = service.wait_all_final()
    assert broken.status == SubmissionStatus.FAILED
    assert (broken.error_code, broken.error_blame) == (ErrorCode.INTERNAL_ERROR.value, "server")
    assert "corrupt" in str(broken.result)  # the operator's clue, kept with the row
    assert not broken.counts_toward_limit
    assert remaining_today(client) == 3  # the slot came back

    status = client.get(f"/submissions/{broken.id}/status").json()
    assert status["status"] == "failed" and status["final"]
    (mail,) = service.smtp.wait_for_messages(1)
    # The operator finds the story of this submission by its id, in the worker's and the site's logs.
    assert f"submission_id={broken.id} msg=submission {broken.id}: test set synthetic-small is corrupt" in (
        service.worker.output()
    )
    assert "path=/upload status=201 duration_ms=" in service.log()
    assert f"submission_id={broken.id} msg=POST /upload 201" in service.log()
    assert "during_corruption.zip" in mail["Subject"]

    # The operator restores the file (from the backup); the very next upload is scored.
    shutil.copy2(good, data)
    os.utime(data)
    response = upload_bytes(client, QUICK_ZIP, "after_repair.zip")
    assert response.status_code == 201, response.text
    rows = service.wait_all_final()
    repaired = next(r for r in rows if r.original_filename == "after_repair.zip")
    assert repaired.status == SubmissionStatus.SUCCEEDED, repaired.result
    assert repaired.total == 150
    assert service.alive()
