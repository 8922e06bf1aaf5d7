"""The public data-set API: the course's format, determinism, and data that is neither blank nor trivial."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from scorer.classes import NUM_CLASSES, TEST_COUNTS, TRAIN_PER_CLASS
from scorer.dataset import (
    TEST_WRITERS,
    TRAIN_WRITERS,
    KatakanaSet,
    make_dataset,
    make_split,
    sample_images,
    write_dataset,
    writers_for,
)


@pytest.fixture(scope="module")
def dataset() -> KatakanaSet:
    # The whole set takes a few seconds; build it once for every test in this module.
    return make_dataset(seed=0)


def _check_split(data: np.ndarray, label: np.ndarray, counts: tuple[int, ...]) -> None:
    total = sum(counts)
    assert data.shape == (total, 1, 28, 28)
    assert data.dtype == np.uint8
    assert label.shape == (total, NUM_CLASSES)
    assert label.dtype == np.float64
    assert set(np.unique(label)) == {0.0, 1.0}
    assert np.all(label.sum(axis=1) == 1.0)
    assert tuple(label.sum(axis=0).astype(int)) == counts


def test_train_split_has_the_course_format(dataset: KatakanaSet) -> None:
    _check_split(dataset.train_data, dataset.train_label, (TRAIN_PER_CLASS,) * NUM_CLASSES)


def test_test_split_has_the_course_format(dataset: KatakanaSet) -> None:
    _check_split(dataset.test_data, dataset.test_label, TEST_COUNTS)
    assert len(dataset.test_data) == 14_500


def test_images_use_the_full_range_white_on_black(dataset: KatakanaSet) -> None:
    for data in (dataset.train_data, dataset.test_data):
        assert data.max() == 255
        assert data.min() == 0
        # Background is black: the border pixels are mostly empty.
        border = np.concatenate(
            [data[:, 0, 0, :], data[:, 0, -1, :], data[:, 0, :, 0], data[:, 0, :, -1]], axis=1
        )
        assert (border == 0).mean() > 0.9


def test_every_image_has_a_plausible_amount_of_ink(dataset: KatakanaSet) -> None:
    for data in (dataset.train_data, dataset.test_data):
        ink = (data > 64).reshape(len(data), -1).mean(axis=1)
        assert ink.min() > 0.02
        assert ink.max() < 0.45
        assert 0.05 < ink.mean() < 0.25


def test_splits_are_shuffled(dataset: KatakanaSet) -> None:
    ids = dataset.train_label.argmax(axis=1)
    assert not np.all(np.diff(ids) >= 0)
    # Every class turns up in the first 200 images.
    assert set(ids[:200]) == set(range(NUM_CLASSES))


def test_classes_look_different(dataset: KatakanaSet) -> None:
    ids = dataset.train_label.argmax(axis=1)
    means = np.stack(
        [dataset.train_data[ids == c, 0].astype(np.float64).mean(axis=0) for c in range(NUM_CLASSES)]
    )
    for a in range(NUM_CLASSES):
        for b in range(a + 1, NUM_CLASSES):
            assert np.abs(means[a] - means[b]).mean() > 3.0, (a, b)


def test_train_and_test_images_are_different(dataset: KatakanaSet) -> None:
    train = {image.tobytes() for image in dataset.train_data}
    assert not any(image.tobytes() in train for image in dataset.test_data)
    # No duplicates within a split either.
    assert len(train) == len(dataset.train_data)


def test_test_writers_overlap_train_writers_only_partly() -> None:
    shared = set(TRAIN_WRITERS) & set(TEST_WRITERS)
    assert shared
    assert set(TEST_WRITERS) - shared
    assert set(TRAIN_WRITERS) - shared


def test_different_seeds_give_different_data() -> None:
    writers_a, writers_b = writers_for(0), writers_for(1)
    counts = [3] * NUM_CLASSES
    a, _ = make_split(counts, 5, writers_a)
    b, _ = make_split(counts, 5, writers_b)
    c, _ = make_split(counts, 6, writers_a)
    assert a.tobytes() != b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_make_split_is_deterministic_for_a_seed_sequence() -> None:
    writers = writers_for(0)
    seed = np.random.SeedSequence(42)
    first = make_split([2] * NUM_CLASSES, seed, writers)
    second = make_split([2] * NUM_CLASSES, seed, writers)
    assert first[0].tobytes() == second[0].tobytes()
    assert first[1].tobytes() == second[1].tobytes()


def test_make_split_honours_counts_and_order() -> None:
    counts = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1, 2]
    data, label = make_split(counts, 3, writers_for(0), shuffle=False)
    assert data.shape == (sum(counts), 1, 28, 28)
    assert label.argmax(axis=1).tolist() == [c for c, n in enumerate(counts) for _ in range(n)]


def test_make_split_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_split([1] * (NUM_CLASSES - 1), 0, writers_for(0))
    with pytest.raises(ValueError):
        make_split([-1] + [1] * (NUM_CLASSES - 1), 0, writers_for(0))
    with pytest.raises(ValueError):
        make_split([1] * NUM_CLASSES, 0, [])


def test_sample_images_gives_two_per_class_by_default() -> None:
    images, ids = sample_images()
    assert images.shape == (2 * NUM_CLASSES, 1, 28, 28)
    assert images.dtype == np.uint8
    assert ids.dtype == np.int64
    assert np.bincount(ids, minlength=NUM_CLASSES).tolist() == [2] * NUM_CLASSES
    assert all((image > 64).mean() > 0.02 for image in images)
    again, _ = sample_images()
    assert again.tobytes() == images.tobytes()


def test_sample_images_are_not_training_images(dataset: KatakanaSet) -> None:
    images, _ = sample_images(per_class=4)
    train = {image.tobytes() for image in dataset.train_data}
    assert not any(image.tobytes() in train for image in images)


@pytest.mark.slow
def test_write_dataset_saves_plain_npy_files_with_the_same_bytes_for_a_seed(
    tmp_path: Path, dataset: KatakanaSet
) -> None:
    # write_dataset builds the set afresh, so this also checks that a seed gives identical bytes.
    paths = write_dataset(tmp_path / "out", seed=0)
    assert sorted(paths) == ["test_data", "test_label", "train_data", "train_label"]
    for name, path in paths.items():
        assert path == tmp_path / "out" / f"{name}.npy"
        loaded = np.load(path, allow_pickle=False)
        assert loaded.tobytes() == getattr(dataset, name).tobytes()


def test_fingerprint_of_seed_0_is_pinned() -> None:
    """The embedded default set is ``make_dataset(0)``: any change to its bytes must be deliberate.

    If you change the generator on purpose, update the digest here (and regenerate the contact sheet).
    """
    images, ids = sample_images(per_class=2, seed=0)
    digest = hashlib.sha256(images.tobytes() + ids.tobytes()).hexdigest()
    assert digest == "4dd8c3f3520b80e77ebd88692b2d57683a531414f895ae24ddc66240bd85a01b"
