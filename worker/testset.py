"""The hidden test set as the worker sees it: which version is active, and is this worker's copy intact.

Each worker reads the active version from its own test-set folder, ``KATAKANA_TESTSET_DIR/<version>/``
(docs/operations.md, "Scaling"): on another host that is a copy of the folder the import wrote, and
the database's digest says whether it is the same. The digest covers both files (data, then labels),
so a missing, truncated or different copy, or a swapped label file, is caught before any submission
is scored against it — and the run is refused as the server's fault (the slot given back), saying
which host's copy is wrong and how. Checking costs one read of ~50 MB per file change, cached by size
and mtime.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import TestSet
from app.services.testset_import import DATA_NAME, LABELS_NAME, sha256_of_testset

log = logging.getLogger(__name__)


class TestSetProblem(Exception):
    """No active test set, or this worker's copy is missing or does not match the recorded digest."""

    __test__ = False


@dataclass(frozen=True)
class ActiveTestSet:
    id: int
    version: str
    data_path: Path
    labels_path: Path
    sha256: str


_verified: set[tuple[str, str, int, int, int, int, str]] = set()
_verified_lock = threading.Lock()


def active_testset(session: Session, testset_dir: Path) -> ActiveTestSet:
    """The active version, as this worker's copy under ``testset_dir``, verified by digest."""
    row = session.scalars(select(TestSet).where(TestSet.is_active).order_by(TestSet.id.desc())).first()
    if row is None:
        raise TestSetProblem("no active test set: run `python -m app.cli import-testset` (or `demo`)")
    folder = testset_dir.resolve() / row.version
    testset = ActiveTestSet(row.id, row.version, folder / DATA_NAME, folder / LABELS_NAME, row.sha256)
    verify(testset)
    return testset


def verify(testset: ActiveTestSet) -> None:
    host = socket.gethostname()
    try:
        data, labels = testset.data_path.stat(), testset.labels_path.stat()
    except OSError as exc:
        raise TestSetProblem(
            f"test set {testset.version}: this worker's copy is missing on host {host} ({exc.strerror}: "
            f"{exc.filename}); copy the version folder there before activating it"
        ) from exc
    key = (
        str(testset.data_path), str(testset.labels_path),
        data.st_size, data.st_mtime_ns, labels.st_size, labels.st_mtime_ns, testset.sha256,
    )  # fmt: skip
    with _verified_lock:
        if key in _verified:
            return
    actual = sha256_of_testset(testset.data_path, testset.labels_path)
    if actual != testset.sha256:
        raise TestSetProblem(
            f"test set {testset.version} is corrupt or a different copy on host {host} "
            f"({testset.data_path.parent}): sha256 {actual} != recorded {testset.sha256}"
        )
    log.info("test set %s: this worker's copy at %s matches its digest", testset.version, testset.data_path.parent)
    with _verified_lock:
        _verified.add(key)
