"""Helpers for the example submissions' and templates' tests.

The quick-trained example zips and the synthetic data set come from the suite-wide cached fixtures
(``example_zips``, ``synthetic_set`` in tests/fixtures/artifacts.py), so they are built once per change
of the code that makes them, whatever the number of test files or xdist workers using them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from examples import build_examples
from tests.fixtures.artifacts import DataSet, Examples


@pytest.fixture(scope="session")
def train_split(synthetic_set: DataSet) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic training images (3000, 1, 28, 28) float32 (0-255, dark on light) and their class ids (3000,)."""
    return np.load(synthetic_set.train_data), np.load(synthetic_set.train_label).argmax(axis=1)


@pytest.fixture(scope="session")
def extracted(example_zips: Examples, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each example zip unpacked as the service would: name -> folder holding submit_katakana.py.

    Testing the unpacked zip (not the build folder) proves the zip carries everything predict needs.
    """
    root = tmp_path_factory.mktemp("extracted")
    folders: dict[str, Path] = {}
    for name in build_examples.EXAMPLE_NAMES:
        with zipfile.ZipFile(example_zips.dir / f"{name}.zip") as zf:
            zf.extractall(root)
        folders[name] = root / name
    return folders
