"""Receiving a pair of ``.npy`` files (images + labels) through the admin API.

The test-set import and the public-set import take the same two-part upload. Both copy the parts
into a scratch folder under the shared data folder (never memory: a test set is hundreds of MiB),
refuse a part over the size limit (each naming its own CLI command, which has no limit), and
remove the folder whatever happens.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import UploadFile

from app.api.errors import ApiError
from app.settings import Settings

MAX_NPY_BYTES = 512 * 1024 * 1024
_CHUNK = 1024 * 1024


def _save(upload: UploadFile, target: Path, too_large: str) -> None:
    """Copy one part in chunks, stopping at the limit rather than after reading it all."""
    written = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(_CHUNK):
            written += len(chunk)
            if written > MAX_NPY_BYTES:
                raise ApiError(413, too_large, mib=MAX_NPY_BYTES // (1024 * 1024))
            out.write(chunk)


@dataclass(frozen=True)
class NpyPair:
    """One kind of two-file import: its scratch folder's prefix, the names the two files are saved
    under, and the message key for a part over the limit (it names that import's own CLI command)."""

    prefix: str
    names: tuple[str, str]
    too_large: str


TESTSET_FILES = NpyPair("testset-upload-", ("test_data.npy", "test_label.npy"), "api_testset_too_large")
PUBLIC_SET_FILES = NpyPair("public-upload-", ("train_data.npy", "train_label.npy"), "api_public_set_too_large")


@contextmanager
def received_pair(
    settings: Settings, pair: NpyPair, data: UploadFile, labels: UploadFile
) -> Iterator[tuple[Path, Path]]:
    """The two uploaded parts as files named ``pair.names`` in a fresh scratch folder, for the block.

    The folder is under the data folder because a scoring worker may be the one to read it (the
    test-set import runs there, where the hidden set's folder is mounted), and it is opened to other
    users for the same reason: the worker may run as another user than the site.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=pair.prefix, dir=settings.data_dir))
    try:
        data_path, labels_path = scratch / pair.names[0], scratch / pair.names[1]
        _save(data, data_path, pair.too_large)
        _save(labels, labels_path, pair.too_large)
        scratch.chmod(0o755)
        yield data_path, labels_path
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
