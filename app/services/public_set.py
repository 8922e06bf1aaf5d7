"""The course's public training set, kept beside the service's data for the pre-flight's smoke run.

Trainees trained on these very images and their labels are public, so the pre-flight can run a
submission on a few of them and tell, before an upload is spent, when the model gets them about as
right as guessing (see :mod:`scorer.smoke`). Without an import, the smoke run uses synthetic images
and reports no accuracy.

Files are checked (shape, one-hot labels, counts), then copied aside and renamed into place, so a
pre-flight never sees a half-copied set. The set's digest is written beside it last: pre-flight
verdicts are cached per public set (``public_set_identity``), and one computed on the old set must
never be filed under the new set's digest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.settings import Settings
from scorer.smoke import PublicSetRejected, validate_public_set

DATA_NAME = "train_data.npy"
LABELS_NAME = "train_label.npy"
DIGEST_NAME = "sha256"  # the digest of the two files above, written by the import

__all__ = [
    "DATA_NAME", "LABELS_NAME", "PublicSet", "PublicSetRejected", "import_public_set", "public_set",
    "public_set_identity",
]  # fmt: skip


@dataclass(frozen=True)
class PublicSet:
    data: Path
    labels: Path
    n_images: int
    class_counts: list[int]
    sha256: str


def _folder(settings: Settings) -> Path:
    assert settings.public_set_dir is not None  # derived from data_dir by Settings
    return settings.public_set_dir


def _load(data_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        images = np.load(data_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PublicSetRejected(f"{data_path.name}: not a readable .npy array ({exc})") from exc
    try:
        labels = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PublicSetRejected(f"{labels_path.name}: not a readable .npy array ({exc})") from exc
    return images, labels


def _digest(data_path: Path, labels_path: Path) -> str:
    """One SHA-256 for the pair: of the two files' own digests, images first."""
    pair = hashlib.sha256()
    for path in (data_path, labels_path):
        with path.open("rb") as f:
            pair.update(hashlib.file_digest(f, "sha256").digest())
    return pair.hexdigest()


def import_public_set(settings: Settings, data_path: Path, labels_path: Path) -> PublicSet:
    """Check and store the public set, replacing any earlier one; raises PublicSetRejected."""
    images, labels = _load(data_path, labels_path)
    counts = validate_public_set(images, labels)
    folder = _folder(settings)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".public-", dir=folder.parent))
    try:
        shutil.copyfile(data_path, staging / DATA_NAME)
        shutil.copyfile(labels_path, staging / LABELS_NAME)
        digest = _digest(staging / DATA_NAME, staging / LABELS_NAME)
        (staging / DIGEST_NAME).write_text(digest + "\n")
        folder.mkdir(exist_ok=True)
        # The old digest goes first and the new one comes last: meanwhile the identity is computed
        # from the files themselves. Labels before data: public_set() looks for the data file, so it
        # never pairs new images with old labels of another length.
        (folder / DIGEST_NAME).unlink(missing_ok=True)
        (folder / DATA_NAME).unlink(missing_ok=True)
        os.replace(staging / LABELS_NAME, folder / LABELS_NAME)
        os.replace(staging / DATA_NAME, folder / DATA_NAME)
        os.replace(staging / DIGEST_NAME, folder / DIGEST_NAME)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PublicSet(folder / DATA_NAME, folder / LABELS_NAME, int(images.shape[0]), counts, digest)


def public_set_identity(settings: Settings) -> str:
    """The imported set's SHA-256, or "" when there is none: what a cached pre-flight verdict is
    filed under beside the zip. Cheap: the digest the import wrote, or (during an import, or for a
    set imported before digests were written) computed from the files."""
    folder = _folder(settings)
    data, labels = folder / DATA_NAME, folder / LABELS_NAME
    try:
        written = (folder / DIGEST_NAME).read_text().strip()
    except OSError:
        written = ""
    if len(written) == 64 and all(c in "0123456789abcdef" for c in written):
        return written
    try:
        return _digest(data, labels)
    except OSError:  # none imported (or half-way through an import: the data file is not there yet)
        return ""


def public_set(settings: Settings) -> PublicSet | None:
    """The imported public set, or None when none was imported (or it no longer reads back)."""
    folder = _folder(settings)
    data, labels = folder / DATA_NAME, folder / LABELS_NAME
    if not (data.is_file() and labels.is_file()):
        return None
    try:
        images, raw = _load(data, labels)
        counts = validate_public_set(images, raw)
    except PublicSetRejected:
        return None
    return PublicSet(data, labels, int(images.shape[0]), counts, public_set_identity(settings))
