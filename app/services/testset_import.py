"""Importing a hidden test set: check it, copy it in as a new version, record and (usually) activate it.

The checks are the ones that would otherwise surface as every submission failing with a server
error: images shaped (N, 1, 28, 28), labels one-hot (N, 15) or class ids, the same N, all 15
classes present. The copy is made aside and renamed into place, so a half-copied set is never
visible; the label file is made readable by its owner (the worker's user) only — it is never shown
inside the sandbox, which runs as other uids. Run the import as the worker's user.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.models import TestSet
from app.settings import Settings
from scorer.classes import IMAGE_SHAPE, NUM_CLASSES
from scorer.metrics import labels_to_ids

DATA_NAME = "test_data.npy"
LABELS_NAME = "test_label.npy"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_CHUNK = 1024 * 1024


def sha256_of_testset(data_path: Path, labels_path: Path) -> str:
    """The digest of both files (data, then labels), recorded at import and checked before scoring."""
    digest = hashlib.sha256()
    for path in (data_path, labels_path):
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


class TestSetRejected(ValueError):
    """The files are not a usable test set; the message says what is wrong."""

    __test__ = False


@dataclass(frozen=True)
class CheckedTestSet:
    n_images: int
    class_counts: list[int]


def check_files(data_path: Path, labels_path: Path) -> CheckedTestSet:
    try:
        images = np.load(data_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TestSetRejected(f"{data_path}: not a readable .npy array ({exc})") from exc
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise TestSetRejected(f"{data_path}: images must be shaped (N, 1, 28, 28), not {images.shape}")
    if images.dtype.kind not in "biuf":
        raise TestSetRejected(f"{data_path}: images must be numbers, not {images.dtype}")
    try:
        raw = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TestSetRejected(f"{labels_path}: not a readable .npy array ({exc})") from exc
    if raw.ndim == 2 and raw.shape[1] == NUM_CLASSES and not np.all((raw == 0) | (raw == 1)):
        raise TestSetRejected(f"{labels_path}: one-hot labels must hold only 0 and 1")
    if raw.ndim == 2 and raw.shape[1] == NUM_CLASSES and not np.all(raw.sum(axis=1) == 1):
        raise TestSetRejected(f"{labels_path}: each one-hot label row must hold exactly one 1")
    try:
        ids = labels_to_ids(raw)
    except ValueError as exc:
        raise TestSetRejected(f"{labels_path}: {exc}") from exc
    if len(ids) != images.shape[0]:
        raise TestSetRejected(f"{len(ids)} labels for {images.shape[0]} images: the counts must match")
    counts = np.bincount(ids, minlength=NUM_CLASSES).tolist()
    missing = [i for i, n in enumerate(counts) if n == 0]
    if missing:
        raise TestSetRejected(f"classes {missing} have no images: all {NUM_CLASSES} classes are needed")
    return CheckedTestSet(n_images=int(images.shape[0]), class_counts=[int(n) for n in counts])


def default_version(now: dt.datetime) -> str:
    return now.strftime("v%Y%m%d-%H%M%S")


def import_testset(
    session: Session,
    data_path: Path,
    labels_path: Path,
    testset_dir: Path,
    *,
    version: str,
    activate: bool = True,
) -> TestSet:
    """Check, copy into ``testset_dir/<version>/``, and add the row (the caller commits)."""
    if not _VERSION.match(version):
        raise TestSetRejected(f"version {version!r}: use letters, digits, '.', '_' and '-' only")
    if session.scalar(select(TestSet.id).where(TestSet.version == version)) is not None:
        raise TestSetRejected(f"version {version!r} already exists: choose another --version")
    checked = check_files(data_path, labels_path)
    testset_dir.mkdir(parents=True, exist_ok=True)
    final = testset_dir.resolve() / version
    if final.exists():
        raise TestSetRejected(f"{final} already exists: choose another --version")
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=testset_dir))
    try:
        shutil.copyfile(data_path, staging / DATA_NAME)
        shutil.copyfile(labels_path, staging / LABELS_NAME)
        # The worker's user only: the scorer copies the images into each run folder it shows the
        # sandbox, and the labels are never shown at all.
        os.chmod(staging / DATA_NAME, 0o600)
        os.chmod(staging / LABELS_NAME, 0o400)
        os.chmod(staging, 0o700)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    data, labels = final / DATA_NAME, final / LABELS_NAME
    if activate:
        session.execute(update(TestSet).where(TestSet.is_active).values(is_active=False))
    row = TestSet(
        version=version,
        data_path=str(data),
        labels_path=str(labels),
        sha256=sha256_of_testset(data, labels),
        n_images=checked.n_images,
        class_counts=checked.class_counts,
        is_active=activate,
    )
    session.add(row)
    session.flush()
    return row


def import_and_commit(
    sessions: sessionmaker[Session],
    data_path: Path,
    labels_path: Path,
    testset_dir: Path,
    *,
    version: str,
    activate: bool,
) -> int:
    """:func:`import_testset` in its own committed transaction; the new row's id."""
    with sessions.begin() as session:
        return import_testset(session, data_path, labels_path, testset_dir, version=version, activate=activate).id


# data, labels, version, activate -> the new row's id (committed); TestSetRejected when unusable.
TestSetImporter = Callable[[Path, Path, str, bool], int]


def worker_importer(settings: Settings) -> TestSetImporter:
    """Import on a scoring worker (the ``testsets`` queue): the test-set folder is mounted there,
    root-owned and private, and not in the web container. The files travel as paths under the
    shared data folder; raises ``app.queue.NoWorkerAnswered`` past ``testset_import_wait_s``."""

    def run(data_path: Path, labels_path: Path, version: str, activate: bool) -> int:
        from app.queue import IMPORT_TESTSET_TASK, TESTSETS_QUEUE, request_reply

        base = settings.data_dir.resolve()
        keys = [data_path.resolve().relative_to(base).as_posix(), labels_path.resolve().relative_to(base).as_posix()]
        answer = request_reply(
            settings, IMPORT_TESTSET_TASK, [*keys, version, activate], TESTSETS_QUEUE, settings.testset_import_wait_s
        )
        if "rejected" in answer:
            raise TestSetRejected(str(answer["rejected"]))
        if "id" not in answer:
            raise RuntimeError(f"the worker could not import the test set: {answer.get('error')}")
        return int(answer["id"])

    return run
