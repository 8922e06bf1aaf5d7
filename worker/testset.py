"""The hidden test set as the worker sees it: which version is active, and is it intact.

The digest covers both files (data, then labels), so a truncated copy or a swapped label file is
caught before any submission is scored against it — and the failure is the server's, not the
trainee's. Checking costs one read of ~50 MB per file change, cached by size and mtime.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import TestSet
from app.services.testset_import import sha256_of_testset


class TestSetProblem(Exception):
    """No active test set, or its files are missing or do not match their recorded digest."""

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


def active_testset(session: Session) -> ActiveTestSet:
    row = session.scalars(select(TestSet).where(TestSet.is_active).order_by(TestSet.id.desc())).first()
    if row is None:
        raise TestSetProblem("no active test set: run `python -m app.cli import-testset` (or `demo`)")
    testset = ActiveTestSet(row.id, row.version, Path(row.data_path), Path(row.labels_path), row.sha256)
    verify(testset)
    return testset


def verify(testset: ActiveTestSet) -> None:
    try:
        data, labels = testset.data_path.stat(), testset.labels_path.stat()
    except OSError as exc:
        raise TestSetProblem(f"test set {testset.version}: {exc}") from exc
    key = (
        str(testset.data_path), str(testset.labels_path),
        data.st_size, data.st_mtime_ns, labels.st_size, labels.st_mtime_ns, testset.sha256,
    )  # fmt: skip
    with _verified_lock:
        if key in _verified:
            return
    actual = sha256_of_testset(testset.data_path, testset.labels_path)
    if actual != testset.sha256:
        raise TestSetProblem(f"test set {testset.version} is corrupt: sha256 {actual} != recorded {testset.sha256}")
    with _verified_lock:
        _verified.add(key)
