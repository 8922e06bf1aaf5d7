"""Test sets: import through the API (the worker's checks), list versions, choose the active one."""

from __future__ import annotations

import io

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import TestSet
from tests.app.api.conftest import World, assert_error, call


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _files(n: int = 30, classes: int = 15) -> dict[str, tuple[str, bytes, str]]:
    images = np.random.default_rng(0).integers(0, 255, size=(n, 1, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % classes
    return {
        "data": ("test_data.npy", _npy(images), "application/octet-stream"),
        "labels": ("test_label.npy", _npy(labels), "application/octet-stream"),
    }


def test_import_list_and_activate(client: TestClient, world: World, db: Session) -> None:
    first = call(client, "POST", "/testsets", world.admin_token, files=_files(), data={"version": "v1"})
    assert first.status_code == 201, first.text
    assert first.json()["is_active"] is True and first.json()["n_images"] == 30
    second = call(
        client, "POST", "/testsets", world.admin_token, files=_files(45), data={"version": "v2", "activate": "false"}
    )
    assert second.status_code == 201 and second.json()["is_active"] is False
    listed = call(client, "GET", "/testsets", world.admin_token).json()
    assert [t["version"] for t in listed["items"]] == ["v2", "v1"]
    activated = call(client, "POST", f"/testsets/{second.json()['id']}/activate", world.admin_token)
    assert activated.json()["is_active"] is True
    assert db.scalars(select(TestSet.version).where(TestSet.is_active)).all() == ["v2"]
    duplicate = call(client, "POST", "/testsets", world.admin_token, files=_files(), data={"version": "v1"})
    assert_error(duplicate, 422, "api_testset_rejected")


def test_import_refuses_a_set_missing_classes(client: TestClient, world: World) -> None:
    response = call(client, "POST", "/testsets", world.admin_token, files=_files(classes=14), data={"version": "bad"})
    error = assert_error(response, 422, "api_testset_rejected")
    assert "14" in str(error["message_en"])


def test_test_sets_are_admin_only(client: TestClient, world: World) -> None:
    assert_error(call(client, "POST", "/testsets", world.instructor_token, files=_files()), 403, "api_admin_only")
    assert_error(call(client, "POST", "/testsets/1/activate", world.instructor_token), 403, "api_admin_only")
    assert_error(call(client, "POST", "/testsets/999/activate", world.admin_token), 404, "api_not_found")
