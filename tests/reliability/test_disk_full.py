"""A full disk while an upload is being stored: a clear refusal, nothing half-written, service goes on.

The storage folder is a real, tiny tmpfs (mounting needs root, which the test machine has; without
it the test is skipped, not faked).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.models import SubmissionStatus
from tests.fixtures.live_service import QUICK_ZIP, ServiceFactory, upload_bytes

TMPFS_SIZE = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "storage"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_an_upload_that_fills_the_disk_is_refused_cleanly_and_the_next_one_is_scored(
    service_factory: ServiceFactory, small_disk: Path
) -> None:
    service = service_factory({"KATAKANA_STORAGE_DIR": str(small_disk)})
    client = service.login()
    too_big = os.urandom(2 * TMPFS_SIZE)  # within the upload cap, beyond the free space

    refused = upload_bytes(client, too_big, "huge_model.zip")
    assert refused.status_code == 507, refused.text
    error = refused.json()["error"]
    assert error["code"] == "storage_full"
    assert "保存領域" in error["message_ja"] and "storage is full" in error["message_en"]
    assert refused.headers["Retry-After"] == "300"
    # A browser posting the form gets the upload page back, with the reason on it.
    page = client.post(
        "/upload",
        files={"file": ("huge_model.zip", too_big, "application/zip")},
        data={"csrf_token": client.cookies["katakana_csrf"]},
    )
    assert page.status_code == 507 and page.headers["content-type"].startswith("text/html")
    assert "保存領域がいっぱい" in page.text and "提出回数は減っていません" in page.text
    assert stored_files(small_disk) == []  # no partial file in incoming/, nothing in the store
    assert service.submissions() == []  # no row, so no slot used

    # Still serving: pages, and an upload that fits is accepted and scored.
    assert client.get("/upload").status_code == 200
    accepted = upload_bytes(client, QUICK_ZIP, "fits.zip")
    assert accepted.status_code == 201, accepted.text
    (row,) = service.wait_all_final()
    assert row.status == SubmissionStatus.SUCCEEDED, row.result
    assert [p.name for p in stored_files(small_disk)] == [f"{row.zip_sha256}.zip"]
    assert service.alive()
