"""Pre-flight on the course's public images: a zip that runs but scores near chance asks before the
upload is spent, and the answer is remembered per trainee and zip. Real sandbox, real app."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.main import create_app
from app.models import SmokeConfirmation, Submission
from app.services.preflight.verdict import PreflightVerdict
from app.services.public_set import import_public_set, public_set
from app.settings import Settings
from tests.app.conftest import Clock, People, csrf, login
from tests.fixtures.artifacts import DataSet
from tests.scorer.real_code.trainee import MODEL_FILE, common_files, zip_folder
from worker.tasks.preflight import run_check

ENTRY = """import pickle
from common.network import BatchNormNet

with open("katakana_model.pickle", "rb") as f:
    network = BatchNormNet(pickle.load(f))


def predict(test_data):
    return network.predict(test_data{scale}).argmax(axis=1)
"""


@pytest.fixture
def real_app(settings: Settings, clock: Clock, enqueued: list[int], synthetic_set: DataSet) -> FastAPI:
    # The synthetic training set stands in for the course's public one.
    import_public_set(settings, synthetic_set.train_data, synthetic_set.train_label)

    def check(path: Path) -> PreflightVerdict:  # what the pre-flight worker answers, run in process
        return PreflightVerdict.from_json(run_check(settings, path))

    return create_app(settings, clock=clock, preflight_checker=check, enqueue=enqueued.append)


@pytest.fixture
def real_client(real_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(real_app, base_url="http://testserver") as test_client:
        yield test_client


def _zip(tmp_path: Path, model: bytes, scale: str) -> bytes:
    files = {"submit_katakana.py": ENTRY.format(scale=scale).encode(), MODEL_FILE: model, **common_files()}
    return zip_folder(tmp_path / f"s{len(scale)}.zip", "katakana", files, "plain").read_bytes()


def _upload(client: TestClient, data: bytes, *, confirm: bool = False, json: bool = True):  # type: ignore[no-untyped-def]
    fields = {"csrf_token": csrf(client)}
    if confirm:
        fields["confirm_near_chance"] = "1"
    return client.post(
        "/upload",
        files={"file": ("submission.zip", io.BytesIO(data), "application/zip")},
        data=fields,
        headers={"Accept": "application/json"} if json else {},
        follow_redirects=False,
    )


def _submissions(db: Session) -> int:
    db.rollback()  # a fresh transaction sees what the app committed
    return int(db.scalar(select(func.count()).select_from(Submission)) or 0)


@pytest.mark.slow
@pytest.mark.sandbox
def test_near_chance_asks_once_per_trainee_and_zip_before_spending(
    real_client: TestClient, people: People, db: Session, trainee_model: bytes, tmp_path: Path, enqueued: list[int]
) -> None:
    broken = _zip(tmp_path, trainee_model, "")  # the /255 of makedataset() was left behind
    login(real_client, people.trainee.email)

    asked = _upload(real_client, broken)
    assert asked.status_code == 409, asked.text
    error = asked.json()["error"]
    assert error["code"] == "near_chance" and error["confirm_field"] == "confirm_near_chance"
    assert "test_data / 255" in error["message_ja"] and "test_data / 255" in error["message_en"]
    assert "クラスの順番" in error["message_ja"] and "class order" in error["message_en"]
    assert "まだ減っていません" in error["message_ja"]
    assert error["preflight"]["smoke"]["total"] == 30
    assert _submissions(db) == 0 and enqueued == []

    # The browser page explains it and offers to submit the zip it already has (its pre-flight).
    page = _upload(real_client, broken, json=False)
    assert page.status_code == 409
    assert 'data-testid="near-chance-confirm-button"' in page.text and "このまま提出する" in page.text
    assert f'action="/uploads/preflights/{error["check_id"] + 1}/confirm"' in page.text

    confirmed = _upload(real_client, broken, confirm=True)
    assert confirmed.status_code == 201, confirmed.text
    assert _submissions(db) == 1
    assert db.scalar(select(SmokeConfirmation.zip_sha256)) is not None

    again = _upload(real_client, broken)  # the same zip: remembered, not asked again
    assert again.status_code == 201, again.text
    assert _submissions(db) == 2

    # Another trainee has not confirmed this zip.
    real_client.cookies.clear()
    login(real_client, people.other_trainee.email)
    assert _upload(real_client, broken).status_code == 409


@pytest.mark.slow
@pytest.mark.sandbox
def test_a_sound_model_is_not_asked(
    real_client: TestClient, people: People, db: Session, trainee_model: bytes, tmp_path: Path
) -> None:
    login(real_client, people.trainee.email)
    response = _upload(real_client, _zip(tmp_path, trainee_model, " / 255"))
    assert response.status_code == 201, response.text
    assert _submissions(db) == 1


KERAS_ENTRY = """import numpy as np
import keras

model = keras.models.load_model("katakana_model.keras")


def predict(test_data):
    return np.argmax(model.predict(test_data.transpose(0, 2, 3, 1), verbose=0), axis=1)  # the / 255 forgotten
"""


@pytest.mark.slow
@pytest.mark.sandbox
def test_a_keras_model_near_chance_is_asked_about_too(
    real_client: TestClient, people: People, db: Session, keras_models: Path, tmp_path: Path, enqueued: list[int]
) -> None:
    """A batch-norm Keras model without its / 255 (tests/scorer/keras_code): the TensorFlow runtime
    runs it, and the pre-flight asks before the upload is spent, as for a NumPy model."""
    files = {
        "submit_katakana.py": KERAS_ENTRY.encode(),
        "katakana_model.keras": (keras_models / "batchnorm.keras").read_bytes(),
    }
    data = zip_folder(tmp_path / "keras.zip", "katakana", files, "plain").read_bytes()
    login(real_client, people.trainee.email)
    asked = _upload(real_client, data)
    assert asked.status_code == 409, asked.text
    error = asked.json()["error"]
    assert error["code"] == "near_chance" and error["preflight"]["runtime"] == "tensorflow"
    assert error["preflight"]["smoke"]["total"] == 30
    assert _submissions(db) == 0 and enqueued == []


def test_import_public_checks_and_stores_the_set(settings: Settings, synthetic_set: DataSet, tmp_path: Path) -> None:
    from app.cli import main

    assert public_set(settings) is None
    imported = import_public_set(settings, synthetic_set.train_data, synthetic_set.train_label)
    assert imported.n_images == 3000 and imported.class_counts == [200] * 15
    found = public_set(settings)
    assert found is not None and found.data.read_bytes() == synthetic_set.train_data.read_bytes()
    assert settings.public_set_dir is not None and found.data.parent == settings.public_set_dir

    # The command line refuses ids (the course's labels are one-hot) with exit status 2.
    import numpy as np

    np.save(tmp_path / "ids.npy", np.load(synthetic_set.train_label).argmax(axis=1))
    os_env = {"KATAKANA_DATA_DIR": str(settings.data_dir)}
    from app.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        for key, value in os_env.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        try:
            assert main(["import-public", str(synthetic_set.train_data), str(tmp_path / "ids.npy")]) == 2
            assert main(["import-public", str(synthetic_set.train_data), str(synthetic_set.train_label)]) == 0
        finally:
            get_settings.cache_clear()
