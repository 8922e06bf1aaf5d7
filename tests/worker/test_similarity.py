"""Similarity pairs through the real scoring pipeline: copies of a model are flagged, independently
trained models are not; the incremental update equals a rebuild; the worker updates pairs itself."""

from __future__ import annotations

import datetime as dt
import hashlib
import pickle
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker
from app.models import (
    Cohort,
    Language,
    Role,
    SimilarityPair,
    Submission,
    SubmissionFile,
    SubmissionStatus,
    TestSet,
    User,
)
from app.queue import enqueue_scoring
from app.services.similarity import FlaggedPair, flagged_pairs
from app.settings import Settings
from examples import build_examples
from scorer.pipeline import ScoringConfig, score_submission
from scorer.runtime import find_runtime
from scorer.sandbox.types import Limits, MiB
from tests.fixtures.artifacts import DataSet, Examples
from tests.fixtures.services import WorkerProcess, wait_for
from tests.worker.conftest import World
from worker.results import report_values
from worker.similarity import update_for_submission
from worker.testset import ActiveTestSet, sha256_of_testset

pytestmark = pytest.mark.sandbox  # each zip is scored in the real sandbox

LIMITS = Limits(wall_seconds=120.0, memory_bytes=2048 * MiB)
INDEPENDENT = 7  # with the three below, ten trainees: the copy index needs a cohort (see SMALL_COHORT)


def _unzip(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    (folder,) = [p for p in dest.iterdir() if p.is_dir()]
    return folder


def _rezip(folder: Path, name: str, out: Path) -> Path:
    target = out / name
    shutil.copytree(folder, target)
    return build_examples.zip_folder(target, out / f"{name}.zip")


def _retouch_code(folder: Path, marker: str) -> None:
    """Make the entry the trainee's own: a new statement changes the normalised code."""
    entry = folder / "submit_katakana.py"
    entry.write_text(entry.read_text(encoding="utf-8") + f"\nAUTHOR = {marker!r}\n", encoding="utf-8")


def _perturb(folder: Path, fraction: float, seed: int) -> None:
    """``fraction`` of every parameter array's entries get noise half as large as that array's spread
    (bench/similarity_baseline.py measures the harsher full spread on fully trained models)."""
    path = folder / build_examples.MODEL_FILE
    params = pickle.loads(path.read_bytes())
    rng = np.random.default_rng(seed)
    for value in params.values():
        flat = value.reshape(-1)
        chosen = rng.choice(flat.size, size=max(1, round(fraction * flat.size)), replace=False)
        flat[chosen] += rng.normal(0.0, 0.5 * float(flat.std()) or 1e-3, size=len(chosen)).astype(flat.dtype)
    path.write_bytes(pickle.dumps(params, protocol=4))


@dataclass(frozen=True)
class Zips:
    original: Path
    rezipped: Path  # the same folder, renamed, re-zipped, comments added: the same weights and code
    perturbed: Path  # the same weights with 1 % of parameters perturbed, own code
    independent: list[Path]  # trained from other seeds, all with the same code


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory, synthetic_set: DataSet, example_zips: Examples) -> Zips:
    out = tmp_path_factory.mktemp("similarity-zips")
    original = _unzip(example_zips.mlp_zip, out / "original")

    copy = out / "copy-src"
    shutil.copytree(original, copy)
    entry = copy / "submit_katakana.py"
    entry.write_text("# 自分で書きました / written by me\n" + entry.read_text(encoding="utf-8"), encoding="utf-8")
    rezipped = _rezip(copy, "kadai_final", out)

    tweaked = out / "tweaked-src"
    shutil.copytree(original, tweaked)
    _perturb(tweaked, 0.01, seed=1)
    _retouch_code(tweaked, "perturbed")
    perturbed = _rezip(tweaked, "my_model", out)

    data = build_examples.load_data(synthetic_set.dir)
    independent = []
    for seed in range(1, INDEPENDENT + 1):
        build_examples.build_one("mlp", out / f"seed{seed}", data, epochs=build_examples.QUICK_EPOCHS, seed=seed)
        folder = out / f"seed{seed}" / "mlp"
        # Every independent trainee hands in the same code (not a downloadable template): a file
        # this many share is the course's, and must not make a pair of them look alike.
        _retouch_code(folder, "course handout, version 2")
        independent.append(_rezip(folder, f"trainee{seed}", out))
    return Zips(example_zips.mlp_zip, rezipped, perturbed, independent)


@dataclass
class Cohort10:
    sessions: sessionmaker[Session]
    settings: Settings
    cohort_id: int
    users: dict[str, int]
    submissions: dict[str, int]


@pytest.fixture
def scored(database_url: str, tmp_path: Path, synthetic_set: DataSet, zips: Zips) -> Iterator[Cohort10]:
    """Each zip scored by the real pipeline on the synthetic hidden set, stored as the worker stores it."""
    settings = Settings(database_url=database_url, data_dir=tmp_path / "var", _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    config = ScoringConfig(runtime=find_runtime(), limits=LIMITS, smoke_limits=LIMITS)
    named = {
        "original": zips.original,
        "rezipped": zips.rezipped,
        "perturbed": zips.perturbed,
        **{f"independent{i}": path for i, path in enumerate(zips.independent, start=1)},
    }
    now = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
    with sessions.begin() as session:
        cohort = Cohort(name="dl_tokyo_3", title="DL 東京 3 期")
        testset = TestSet(
            version="synthetic-0",
            data_path=str(synthetic_set.test_data),
            labels_path=str(synthetic_set.test_label),
            sha256=sha256_of_testset(synthetic_set.test_data, synthetic_set.test_label),
            n_images=14_500,
            class_counts=[],
            is_active=True,
        )
        users = {name: User(email=f"{name}@example.test", name=name, role=Role.TRAINEE) for name in named}
        session.add_all([cohort, testset, *users.values()])
        session.flush()
        active = ActiveTestSet(testset.id, testset.version, synthetic_set.test_data, synthetic_set.test_label, "")
        submissions = {}
        for name, path in named.items():
            report = score_submission(
                path, test_data=synthetic_set.test_data, test_labels=synthetic_set.test_label, config=config
            )
            assert report.status == "succeeded", (name, report.error)
            row = Submission(
                user_id=users[name].id,
                cohort_id=cohort.id,
                created_at=now,
                quota_day=now.date(),
                original_filename=path.name,
                zip_sha256=report.zip_sha256,
                zip_size=path.stat().st_size,
                storage_key="unused",
                **report_values(report, active, now),
            )
            session.add(row)
            session.flush()
            submissions[name] = row.id
        ids = cohort.id, {name: u.id for name, u in users.items()}
    yield Cohort10(sessions, settings, ids[0], ids[1], submissions)
    engine.dispose()


def _pairs(sessions: sessionmaker[Session], cohort_id: int, settings: Settings) -> dict[frozenset[int], FlaggedPair]:
    with sessions() as session:
        flagged = flagged_pairs(
            session,
            cohort_id,
            false_alarm_rate=settings.similarity_false_alarm_rate,
            rare_max=settings.similarity_rare_file_max_trainees,
        ).pairs
    return {frozenset((p.user_a_id, p.user_b_id)): p for p in flagged}


def _stored(sessions: sessionmaker[Session], cohort_id: int) -> set[tuple[object, ...]]:
    with sessions() as session:
        return {
            (p.user_a_id, p.user_b_id, p.submission_a_id, p.submission_b_id, p.both_wrong, p.same_wrong,
             p.agreement, p.shared_count)
            for p in session.scalars(select(SimilarityPair).where(SimilarityPair.cohort_id == cohort_id))
        }  # fmt: skip


def test_copies_are_flagged_and_independent_models_are_not(scored: Cohort10) -> None:
    now = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)
    for submission_id in scored.submissions.values():  # as the worker does, one result at a time
        with scored.sessions.begin() as session:
            update_for_submission(session, submission_id, scored.settings, now)

    u = scored.users
    flagged = _pairs(scored.sessions, scored.cohort_id, scored.settings)
    expected = {
        frozenset((u["original"], u["rezipped"])),
        frozenset((u["original"], u["perturbed"])),
        frozenset((u["rezipped"], u["perturbed"])),
    }
    assert set(flagged) == expected

    rezipped = flagged[frozenset((u["original"], u["rezipped"]))]
    assert rezipped.above_threshold and rezipped.error_agreement == 1.0
    assert rezipped.z is not None and rezipped.z >= rezipped.z_needed
    shared = {(f.kind, f.name_a, f.name_b, f.trainees, f.counts) for f in rezipped.shared_files}
    names = ("mlp/katakana_model.pickle", "kadai_final/katakana_model.pickle")
    if rezipped.user_a_id != u["original"]:
        names = names[::-1]
    # The zips differ; the code is the course example's, which never counts.
    assert shared == {("weights", *names, 2, True)}

    perturbed = flagged[frozenset((u["original"], u["perturbed"]))]
    assert perturbed.above_threshold and perturbed.shared_files == []
    assert perturbed.z is not None and perturbed.z >= perturbed.z_needed
    assert perturbed.expected_same_wrong is not None and perturbed.same_wrong is not None
    assert perturbed.same_wrong > 1.5 * perturbed.expected_same_wrong
    assert perturbed.reference_trainees == 8 and perturbed.compared_pairs == 1
    assert {perturbed.submission_a_id, perturbed.submission_b_id} == {
        scored.submissions["original"],
        scored.submissions["perturbed"],
    }

    # Independent models were compared too (their pairs are stored), just not flagged.
    with scored.sessions() as session:
        pair = session.scalar(
            select(SimilarityPair).where(
                SimilarityPair.user_a_id == min(u["independent1"], u["independent2"]),
                SimilarityPair.user_b_id == max(u["independent1"], u["independent2"]),
            )
        )
        assert pair is not None and pair.error_agreement is not None and pair.both_wrong
        assert pair.lift is not None and pair.lift_se is not None and pair.expected_same_wrong
        assert pair.same_wrong is not None and pair.same_wrong < pair.both_wrong
        assert pair.shared_count == 1  # their code, shared by all seven: listed nowhere, as the page shows

    # Folding results in one at a time gives exactly what a rebuild from scratch gives.
    incremental = _stored(scored.sessions, scored.cohort_id)
    assert len(incremental) == 45  # every pair of the 10 trainees
    with scored.sessions.begin() as session:
        session.execute(delete(SimilarityPair).where(SimilarityPair.cohort_id == scored.cohort_id))
        session.execute(delete(SubmissionFile).where(SubmissionFile.cohort_id == scored.cohort_id))
        for submission_id in sorted(scored.submissions.values()):
            update_for_submission(session, submission_id, scored.settings, now)
            session.flush()
    assert _stored(scored.sessions, scored.cohort_id) == incremental


def test_a_later_stronger_submission_replaces_the_pair_and_others_are_left_alone(scored: Cohort10) -> None:
    u, s = scored.users, scored.submissions
    now = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)
    for submission_id in s.values():
        with scored.sessions.begin() as session:
            update_for_submission(session, submission_id, scored.settings, now)
    unrelated = _stored(scored.sessions, scored.cohort_id)
    key = (min(u["original"], u["independent1"]), max(u["original"], u["independent1"]))
    with scored.sessions() as session:
        before = session.scalar(
            select(SimilarityPair).where(SimilarityPair.user_a_id == key[0], SimilarityPair.user_b_id == key[1])
        )
        assert before is not None and before.error_agreement is not None and before.error_agreement < 0.9
    # independent1 hands in a copy of the original's zip: the pair's strongest submissions change.
    with scored.sessions.begin() as session:
        copy = session.get(Submission, s["original"])
        assert copy is not None
        predictions, hashes = (
            session.scalar(select(Submission.predictions).where(Submission.id == copy.id)),
            copy.file_hashes,
        )
        again = Submission(
            user_id=u["independent1"], cohort_id=scored.cohort_id, created_at=now, quota_day=now.date(),
            original_filename="copy.zip", zip_sha256=copy.zip_sha256, zip_size=1, storage_key="unused",
            status=SubmissionStatus.SUCCEEDED, testset_id=copy.testset_id, predictions=predictions,
            file_hashes=hashes,
        )  # fmt: skip
        session.add(again)
        session.flush()
        update_for_submission(session, again.id, scored.settings, now)
        again_id = again.id
    with scored.sessions() as session:
        after = session.scalar(
            select(SimilarityPair).where(SimilarityPair.user_a_id == key[0], SimilarityPair.user_b_id == key[1])
        )
        assert after is not None and after.error_agreement == 1.0
        assert again_id in (after.submission_a_id, after.submission_b_id)
        assert {f["kind"] for f in after.shared_files} == {"zip", "weights"}  # the code is the course example's
    # Pairs without independent1 are untouched; independent1's others changed only where it was stronger.
    changed = _stored(scored.sessions, scored.cohort_id) - unrelated
    assert changed and all(u["independent1"] in (p[0], p[1]) for p in changed)


def test_the_worker_stores_predictions_and_updates_pairs_after_each_result(
    world: World, celery_worker: WorkerProcess
) -> None:
    with world.sessions.begin() as session:
        other = User(email="taro@example.test", name="田中 太郎", role=Role.TRAINEE, language=Language.JA)
        session.add(other)
        session.flush()
        other_id = other.id
    first = world.submit(filename="mine.zip")
    second = world.submit(filename="also_mine.zip")  # the same zip, handed in by another trainee
    with world.sessions.begin() as session:
        row = session.get(Submission, second)
        assert row is not None
        row.user_id = other_id
    for submission_id in (first, second):
        assert enqueue_scoring(submission_id, world.settings)

    def pair() -> SimilarityPair | None:
        with world.sessions() as session:
            return session.scalar(select(SimilarityPair).where(SimilarityPair.cohort_id == world.cohort_id))

    wait_for(lambda: (p := pair()) is not None and p.shared_count > 0, "the similarity pair")
    found = pair()
    assert found is not None
    assert {found.user_a_id, found.user_b_id} == {world.trainee_id, other_id}
    assert sorted(f["kind"] for f in found.shared_files) == ["code", "zip"]
    # The tiny test set: 15 images, the submission predicts ア everywhere, so 14 shared mistakes, all alike.
    assert (found.both_wrong, found.same_wrong, found.agreement) == (14, 14, 1.0)
    with world.sessions() as session:
        kept = session.scalar(select(Submission.predictions).where(Submission.id == first))
        result = session.scalar(select(Submission.result).where(Submission.id == first))
    assert kept == bytes(15)  # class 0 for each of the 15 images, one byte each
    assert "predictions" not in result and "file_hashes" not in result
    assert hashlib.sha256(kept).hexdigest() not in str(result)
    emails = world.outbox()
    assert {e.submission_id for e in emails} == {first, second}  # each trainee's own result email ...
    for message in emails:  # ... says nothing of similarity, nor of the other trainee
        text = f"{message.subject}\n{message.body_text}\n{message.body_html or ''}"
        assert "類似" not in text and "similar" not in text.lower()
        if message.submission_id == first:  # hanako's email names neither taro nor his file
            assert "田中" not in text and "also_mine.zip" not in text


# A Keras model built in code, whose every answer is class 0 (all weights zero): a Keras submission.
KERAS_ZEROS = """import numpy as np
import keras

layers = [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(15, kernel_initializer="zeros")]
model = keras.Sequential(layers)


def predict(test_data):
    return np.argmax(model.predict(test_data.transpose(0, 2, 3, 1) / 255, verbose=0), axis=1)
"""


@pytest.mark.slow
def test_a_keras_submission_is_scored_in_the_tensorflow_runtime_and_compared_like_any_other(
    world: World, celery_worker: WorkerProcess
) -> None:
    """Predictions stored, a pair with a NumPy submission that answers the same, the runtime named."""
    with world.sessions.begin() as session:
        other = User(email="taro@example.test", name="田中 太郎", role=Role.TRAINEE, language=Language.JA)
        session.add(other)
        session.flush()
        other_id = other.id
    keras_id = world.submit(KERAS_ZEROS, filename="keras.zip")
    numpy_id = world.submit(filename="numpy.zip")  # PREDICT_ZEROS: the same answers, written with NumPy
    with world.sessions.begin() as session:
        row = session.get(Submission, numpy_id)
        assert row is not None
        row.user_id = other_id
    for submission_id in (keras_id, numpy_id):
        assert enqueue_scoring(submission_id, world.settings)

    def pair() -> SimilarityPair | None:
        with world.sessions() as session:
            return session.scalar(select(SimilarityPair).where(SimilarityPair.cohort_id == world.cohort_id))

    wait_for(lambda: pair() is not None and len(world.outbox()) == 2, "both results and their pair", timeout=600)
    scored = world.submission(keras_id)
    assert scored.status is SubmissionStatus.SUCCEEDED, scored.error_code
    assert scored.runtime["name"] == "tensorflow" and scored.runtime["keras"]
    assert world.submission(numpy_id).runtime["name"] == "numpy"
    with world.sessions() as session:
        assert session.scalar(select(Submission.predictions).where(Submission.id == keras_id)) == bytes(15)
    found = pair()
    assert found is not None
    assert {found.user_a_id, found.user_b_id} == {world.trainee_id, other_id}
    # The same 14 mistakes, made alike; no file in common (other code, no model file).
    assert (found.both_wrong, found.same_wrong, found.agreement) == (14, 14, 1.0)
    assert found.shared_count == 0
    mail = next(m for m in world.outbox() if m.submission_id == keras_id)
    assert "採点環境: TensorFlow + Keras (Python " in mail.body_text
