"""What a run predicts on, and what the parent compares its predictions with.

A run's :class:`Inputs` are the images handed to the harness (a file on the host, or a small .npy
held in memory) and, when the parent knows them, the images' class ids. The ids stay in the parent:
the sandbox only ever gets the images, through a descriptor (see scorer.warm).

Two kinds of input: the hidden test set (:func:`hidden_set`: a broken file is the service's fault,
reported before any trainee code runs) and the pre-flight's smoke sample (:func:`smoke_sample`: a
handful of public images). Each file is read once per process and file version: every cache below
is keyed by :func:`file_key`, which changes whenever the file may have.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from scorer.classes import IMAGE_SHAPE
from scorer.errors import ErrorCode, ScoringError
from scorer.metrics import IntArray, labels_to_ids
from scorer.sandbox.spawn import high_fd
from scorer.smoke import SMOKE_PER_CLASS, select_smoke_sample

# (path, device, inode, size, mtime): a replaced or rewritten file gets another key.
FileKey = tuple[str, int, int, int, int]


def file_key(path: Path) -> FileKey:
    """The key of a file's current version; raises OSError when it cannot be stat'ed."""
    st = os.stat(path)
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Images:
    """The images a harness run predicts on: a file on the host, or a small .npy held in memory
    (the pre-flight's public sample). ``identity`` changes whenever the content may have."""

    identity: tuple[object, ...]
    path: Path | None = None
    npy: bytes | None = None

    @classmethod
    def from_file(cls, path: Path) -> Images:
        return cls(file_key(path), path=path)

    @classmethod
    def from_bytes(cls, npy: bytes) -> Images:
        return cls(("npy", hashlib.sha256(npy).hexdigest()), npy=npy)

    def open_fd(self) -> int:
        """A fresh descriptor (own file offset) above the fd floor, close-on-exec in the parent."""
        if self.path is not None:
            return high_fd(os.open(self.path, os.O_RDONLY | os.O_CLOEXEC))
        assert self.npy is not None
        fd = os.memfd_create("images.npy", os.MFD_CLOEXEC)
        try:
            view = memoryview(self.npy)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            raise
        return high_fd(fd)


@dataclass(frozen=True)
class Inputs:
    """One run's images, how many there are, and their class ids when the parent knows them."""

    images: Images
    count: int
    class_ids: IntArray | None  # never enters the sandbox


def hidden_set(data: Path, labels: Path) -> Inputs:
    """The hidden test set, checked before anything runs: a broken set is the service's fault."""
    count = _image_count(data)
    return Inputs(Images.from_file(data), count, _class_ids(labels, count))


def _image_count(path: Path) -> int:
    """The number of images, after checking the file is what the harness expects."""
    try:
        shape = _images_shape(file_key(path))
    except (OSError, ValueError) as exc:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"test images unreadable: {exc}") from exc
    if len(shape) != 4 or tuple(shape[1:]) != IMAGE_SHAPE:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"test images have shape {shape}")
    return int(shape[0])


@functools.lru_cache(maxsize=4)
def _images_shape(key: FileKey) -> tuple[int, ...]:
    return tuple(np.load(key[0], mmap_mode="r", allow_pickle=False).shape)


def _class_ids(path: Path, expected: int) -> IntArray:
    try:
        ids = _labels_of(file_key(path))
    except (OSError, ValueError) as exc:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"test labels unreadable: {exc}") from exc
    if len(ids) != expected:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"{len(ids)} labels for {expected} images")
    return ids


@functools.lru_cache(maxsize=4)
def _labels_of(key: FileKey) -> IntArray:
    ids = labels_to_ids(np.load(key[0], allow_pickle=False))
    ids.flags.writeable = False  # shared by every run of this process
    return ids


def smoke_sample(data: Path | None, labels: Path | None) -> Inputs:
    """The pre-flight's images: a few public ones, with their class ids when ``labels`` are given.

    With labels (the course's public training set), 2 per class chosen by :mod:`scorer.smoke`.
    Without, 30 spread over ``data``, or 2 per class of the synthetic set when there is no file.
    Unreadable files are the service's fault, like a broken test set.
    """
    try:
        return _smoke_sample_of(
            file_key(data) if data is not None else None, file_key(labels) if labels is not None else None
        )
    except (OSError, ValueError) as exc:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"smoke images unreadable: {exc}") from exc


@functools.lru_cache(maxsize=4)
def _smoke_sample_of(data_key: FileKey | None, labels_key: FileKey | None) -> Inputs:
    ids: IntArray | None = None
    images: npt.NDArray[np.generic]
    if data_key is not None and labels_key is not None:
        images, ids = select_smoke_sample(
            np.load(data_key[0], allow_pickle=False), np.load(labels_key[0], allow_pickle=False)
        )
    elif data_key is not None:
        images = np.load(data_key[0], allow_pickle=False)
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(f"{data_key[0]}: expected images shaped (N, 1, 28, 28)")
        step = max(1, len(images) // 30)
        images = images[::step][:30]
    else:
        from scorer.dataset import sample_images

        images, _ = sample_images(per_class=SMOKE_PER_CLASS)
    if ids is not None:
        ids.flags.writeable = False
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(images), allow_pickle=False)
    return Inputs(Images.from_bytes(buffer.getvalue()), len(images), ids)
