"""The public data-set API: the course's format, determinism, and data that is neither blank nor trivial."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from scorer.classes import NUM_CLASSES, TEST_COUNTS, TRAIN_PER_CLASS
from scorer.dataset import (
    TEST_WRITERS,
    TRAIN_WRITERS,
    DataFormat,
    KatakanaSet,
    make_dataset,
    make_split,
    sample_images,
    write_dataset,
    writers_for,
)

# One xdist worker runs the module, so the dataset below is built once per run, not once per worker.
pytestmark = pytest.mark.xdist_group("dataset-generate")


@pytest.fixture(scope="module")
def dataset() -> KatakanaSet:
    # The whole set takes a few seconds; build it once for every test in this module.
    return make_dataset(seed=0)


def _check_split(data: np.ndarray, label: np.ndarray, counts: tuple[int, ...]) -> None:
    total = sum(counts)
    assert data.shape == (total, 1, 28, 28)
    # Float like the course's file (it prints 255.0), whole numbers 0.0-255.0.
    assert data.dtype == np.float32
    assert np.array_equal(data, np.round(data))
    assert data.min() >= 0.0 and data.max() <= 255.0
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


def _ink(data: np.ndarray) -> np.ndarray:
    """True where a pixel is mostly ink (dark in the course's format)."""
    return np.asarray(data[:, 0] < 128)


def test_images_are_dark_strokes_on_a_light_background(dataset: KatakanaSet) -> None:
    for data in (dataset.train_data, dataset.test_data):
        assert data.max() == 255.0
        assert data.min() == 0.0
        # Paper is 255 (the course's normalised borders print 0.996-1.0); ink is near 0.
        assert np.median(data) == 255.0
        strokes = data[:, 0][_ink(data)]
        assert np.median(strokes) < 40.0


def test_glyphs_are_cropped_and_stretched_to_touch_the_edges(dataset: KatakanaSet) -> None:
    for data in (dataset.train_data, dataset.test_data):
        ink = _ink(data)
        touches = np.stack(
            [ink[:, 0, :].any(axis=1), ink[:, -1, :].any(axis=1), ink[:, :, 0].any(axis=1), ink[:, :, -1].any(axis=1)],
            axis=1,
        ).sum(axis=1)
        # Most images touch at least two edges, as a crop to the ink's extent gives; many touch all four.
        assert (touches >= 2).mean() > 0.9
        assert (touches == 4).mean() > 0.3
        # No margin: ink in the outer two rows and columns of nearly every image, both axes.
        assert (ink[:, :2, :].any(axis=(1, 2)) | ink[:, -2:, :].any(axis=(1, 2))).mean() > 0.95
        assert (ink[:, :, :2].any(axis=(1, 2)) | ink[:, :, -2:].any(axis=(1, 2))).mean() > 0.95


def test_strokes_are_thick_like_a_felt_pen(dataset: KatakanaSet) -> None:
    for data in (dataset.train_data, dataset.test_data):
        ink = _ink(data)
        # Horizontal runs of ink along each row: a thick pen gives runs of several pixels.
        rows = ink.reshape(-1, 28).astype(np.int8)
        edges = np.diff(np.pad(rows, ((0, 0), (1, 1))), axis=1)
        starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
        runs = ends[1] - starts[1]
        assert np.median(runs) >= 3


def test_other_polarity_and_uint8_store_the_same_drawings() -> None:
    course, ids = sample_images(per_class=3)
    light, light_ids = sample_images(per_class=3, fmt=DataFormat("light-on-dark", "float32"))
    small, small_ids = sample_images(per_class=3, fmt=DataFormat("dark-on-light", "uint8"))
    assert np.array_equal(ids, light_ids) and np.array_equal(ids, small_ids)
    assert light.dtype == np.float32 and small.dtype == np.uint8
    assert np.array_equal(light, 255.0 - course)
    assert np.array_equal(small.astype(np.float32), course)
    with pytest.raises(ValueError):
        DataFormat("white", "float32")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DataFormat("dark-on-light", "float16")  # type: ignore[arg-type]


def test_every_image_has_a_plausible_amount_of_ink(dataset: KatakanaSet) -> None:
    for data in (dataset.train_data, dataset.test_data):
        ink = _ink(data).reshape(len(data), -1).mean(axis=1)
        assert ink.min() > 0.05
        assert ink.max() < 0.6
        assert 0.12 < ink.mean() < 0.4


def test_splits_are_shuffled(dataset: KatakanaSet) -> None:
    ids = dataset.train_label.argmax(axis=1)
    assert not np.all(np.diff(ids) >= 0)
    # Every class turns up in the first 200 images.
    assert set(ids[:200]) == set(range(NUM_CLASSES))


def test_classes_look_different(dataset: KatakanaSet) -> None:
    ids = dataset.train_label.argmax(axis=1)
    means = np.stack([dataset.train_data[ids == c, 0].astype(np.float64).mean(axis=0) for c in range(NUM_CLASSES)])
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
    assert images.dtype == np.float32
    assert ids.dtype == np.int64
    assert np.bincount(ids, minlength=NUM_CLASSES).tolist() == [2] * NUM_CLASSES
    assert all((image < 128).mean() > 0.05 for image in images)
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
    assert digest == "f4d48be741ebbb9a22ae8085a0b42d484737af4cc16689a93755c14f04a8acfc"
