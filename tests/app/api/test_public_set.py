"""``/api/v1/public-set``: admins import the course's public training set for the pre-flight."""

from __future__ import annotations

import io

import numpy as np
from fastapi.testclient import TestClient

from tests.app.api.conftest import World, assert_error, call


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _files(labels: np.ndarray) -> dict[str, tuple[str, bytes, str]]:
    images = np.full((len(labels), 1, 28, 28), 255.0, dtype=np.float32)
    return {
        "data": ("train_data.npy", _npy(images), "application/octet-stream"),
        "labels": ("train_label.npy", _npy(labels), "application/octet-stream"),
    }


def test_import_and_read_back(client: TestClient, world: World) -> None:
    assert call(client, "GET", "/public-set", world.admin_token).json() == {
        "imported": False,
        "n_images": 0,
        "class_counts": [],
    }
    onehot = np.eye(15)[np.arange(45) % 15]
    response = call(client, "PUT", "/public-set", world.admin_token, files=_files(onehot))
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": True, "n_images": 45, "class_counts": [3] * 15}
    assert call(client, "GET", "/public-set", world.admin_token).json()["n_images"] == 45


def test_labels_that_are_not_one_hot_are_refused(client: TestClient, world: World) -> None:
    error = assert_error(
        call(client, "PUT", "/public-set", world.admin_token, files=_files(np.arange(45) % 15)),
        422,
        "api_public_set_rejected",
    )
    assert "one-hot" in str(error["message_en"])
    assert call(client, "GET", "/public-set", world.admin_token).json()["imported"] is False


def test_admin_only(client: TestClient, world: World) -> None:
    onehot = np.eye(15)[np.arange(45) % 15]
    refused = call(client, "PUT", "/public-set", world.instructor_token, files=_files(onehot))
    assert_error(refused, 403, "api_admin_only")
    assert_error(call(client, "GET", "/public-set", world.instructor_token), 403, "api_admin_only")
