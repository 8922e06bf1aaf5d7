"""A cached pre-flight verdict answers only for the public set it was scored on: importing another
set runs the check again on the next upload of the same zip (its smoke accuracy may differ)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from app.services.public_set import DIGEST_NAME, import_public_set, public_set, public_set_identity
from app.settings import Settings
from tests.app.conftest import Checker, People, login, make_zip, upload


def _public_set(folder: Path, fill: float) -> tuple[Path, Path]:
    """A valid public set (45 images, 3 per class, one-hot labels) whose bytes depend on ``fill``."""
    folder.mkdir(parents=True, exist_ok=True)
    data, labels = folder / "train_data.npy", folder / "train_label.npy"
    np.save(data, np.full((45, 1, 28, 28), fill, dtype=np.float32), allow_pickle=False)
    np.save(labels, np.eye(15)[np.arange(45) % 15], allow_pickle=False)
    return data, labels


def test_an_import_invalidates_cached_verdicts(
    client: TestClient, people: People, checker: Checker, settings: Settings, tmp_path: Path
) -> None:
    login(client, people.trainee.email)
    broken = make_zip("broken.py")  # refused by the pre-flight: costs no slot, so it can go again and again
    assert upload(client, broken).status_code == 422
    assert upload(client, broken).status_code == 422
    assert len(checker.calls) == 1  # no public set yet: the second came from the cache

    import_public_set(settings, *_public_set(tmp_path / "first", 255.0))
    assert upload(client, broken).status_code == 422
    assert len(checker.calls) == 2  # checked again against the imported set
    assert upload(client, broken).status_code == 422
    assert len(checker.calls) == 2

    import_public_set(settings, *_public_set(tmp_path / "same-again", 255.0))  # the same bytes again
    assert upload(client, broken).status_code == 422
    assert len(checker.calls) == 2  # the identity is the content, not the time of the import

    import_public_set(settings, *_public_set(tmp_path / "second", 128.0))
    assert upload(client, broken).status_code == 422
    assert len(checker.calls) == 3


def test_the_identity_is_the_sets_digest_even_without_the_written_one(settings: Settings, tmp_path: Path) -> None:
    assert public_set_identity(settings) == ""
    imported = import_public_set(settings, *_public_set(tmp_path / "set", 255.0))
    assert len(imported.sha256) == 64 and public_set_identity(settings) == imported.sha256
    found = public_set(settings)
    assert found is not None and found.sha256 == imported.sha256
    # A set imported before digests were written down (or read half-way through an import).
    assert settings.public_set_dir is not None
    (settings.public_set_dir / DIGEST_NAME).unlink()
    assert public_set_identity(settings) == imported.sha256
