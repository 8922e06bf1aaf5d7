"""The two-part ``.npy`` upload both admin imports share (``/testsets`` and ``/public-set``): a part
over the size limit is refused on either with a message naming that import's own CLI command, and
the scratch copy is removed whether the import is refused, rejected or accepted."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api import npy_pair
from app.settings import Settings
from tests.app.api.conftest import World, assert_error, call

TOO_LARGE = [
    pytest.param("POST", "/testsets", ("test_data.npy", "test_label.npy"), "testset", "import-testset", id="testsets"),
    pytest.param(
        "PUT", "/public-set", ("train_data.npy", "train_label.npy"), "public_set", "import-public", id="public-set"
    ),
]
ENDPOINTS = [
    pytest.param("POST", "/testsets", ("test_data.npy", "test_label.npy"), id="testsets"),
    pytest.param("PUT", "/public-set", ("train_data.npy", "train_label.npy"), id="public-set"),
]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _files(names: tuple[str, str], labels: bytes) -> dict[str, tuple[str, bytes, str]]:
    images = np.full((45, 1, 28, 28), 255, dtype=np.uint8)
    return {
        "data": (names[0], _npy(images), "application/octet-stream"),
        "labels": (names[1], labels, "application/octet-stream"),
    }


def _scratch_left(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.data_dir.glob("*-upload-*"))


@pytest.mark.parametrize(("method", "path", "names", "what", "command"), TOO_LARGE)
def test_a_part_over_the_limit_is_refused_naming_its_own_cli_command_and_nothing_is_left(
    client: TestClient,
    world: World,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    names: tuple[str, str],
    what: str,
    command: str,
) -> None:
    # A limit of 1 MiB so the test need not send 512 MiB; the check is the same code.
    monkeypatch.setattr(npy_pair, "MAX_NPY_BYTES", 1024 * 1024)
    oversized = b"\x93NUMPY" + b"\0" * (1024 * 1024)
    response = call(client, method, path, world.admin_token, files=_files(names, oversized))
    error = assert_error(response, 413, f"api_{what}_too_large")
    for message in (str(error["message_en"]), str(error["message_ja"])):
        assert "1 MiB" in message and f"python -m app.cli {command} " in message
    other = {"import-testset", "import-public"} - {command}
    assert not any(name in str(error["message_en"]) + str(error["message_ja"]) for name in other)
    assert _scratch_left(settings) == []


@pytest.mark.parametrize(("method", "path", "names"), ENDPOINTS)
def test_the_scratch_copy_is_removed_after_a_rejected_and_an_accepted_import(
    client: TestClient, world: World, settings: Settings, method: str, path: str, names: tuple[str, str]
) -> None:
    onehot = np.eye(15)[np.arange(45) % 15]
    missing_a_class = np.eye(15)[np.arange(45) % 14]
    rejected = call(client, method, path, world.admin_token, files=_files(names, _npy(missing_a_class)))
    assert rejected.status_code == 422, rejected.text
    assert _scratch_left(settings) == []
    accepted = call(client, method, path, world.admin_token, files=_files(names, _npy(onehot)))
    assert accepted.status_code in (200, 201), accepted.text
    assert _scratch_left(settings) == []
