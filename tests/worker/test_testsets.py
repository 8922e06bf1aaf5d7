"""Test-set import through the API runs on a scoring worker, where the test-set folder is."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from app.models import TestSet
from app.services.testset_import import TestSetRejected, worker_importer
from scorer.classes import IMAGE_SHAPE, NUM_CLASSES
from tests.fixtures.services import WorkerProcess
from tests.worker.conftest import World


def _scratch(world: World, classes: int = NUM_CLASSES) -> tuple[Path, Path]:
    """The files as the API saves them: in a scratch folder under the shared data folder."""
    world.settings.data_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="testset-upload-", dir=world.settings.data_dir))
    np.save(folder / "test_data.npy", np.zeros((30, *IMAGE_SHAPE), dtype=np.uint8))
    np.save(folder / "test_label.npy", np.arange(30) % classes)
    return folder / "test_data.npy", folder / "test_label.npy"


def test_the_workers_import_installs_a_private_active_version(world: World, celery_worker: WorkerProcess) -> None:
    importer = worker_importer(world.settings)
    row_id = importer(*_scratch(world), "2027-spring", True)
    with world.sessions() as session:
        row = session.get(TestSet, row_id)
        assert row is not None and row.is_active and row.n_images == 30
        assert session.scalars(select(TestSet.version).where(TestSet.is_active)).all() == ["2027-spring"]
    assert world.settings.testset_dir is not None
    folder = world.settings.testset_dir / "2027-spring"
    assert stat.S_IMODE((folder / "test_label.npy").stat().st_mode) == 0o400
    assert "test set 2027-spring imported" in celery_worker.output()

    with pytest.raises(TestSetRejected, match="classes \\[14\\] have no images"):
        importer(*_scratch(world, classes=14), "broken", True)
    with world.sessions() as session:
        assert session.scalars(select(TestSet.version).where(TestSet.version == "broken")).first() is None
