"""The synthetic katakana data set in the course's format: the public API of ``scorer.dataset``.

The course's real test set is hidden and never available to the scorer's developers, so this
generator stands in for it in the embedded default set, the demos and the tests. It copies the
course's format exactly:

* ``train_data.npy``: (3000, 1, 28, 28) float32 holding whole numbers 0.0-255.0, **dark strokes on
  a light background** (255 is paper, about 0 is ink), each character cropped to its extent and
  stretched to fill the frame (aspect not kept), drawn with a thick felt pen; 200 images per class.
  Float like the course's file (it prints ``255.0``); float32 rather than float64 because the values
  are whole numbers that float32 holds exactly, at half the size (see :class:`DataFormat` for the
  MNIST-like polarity and uint8).
* ``train_label.npy``: (3000, 15) float64 one-hot (float64 like ``np.eye``, so trainees' arithmetic
  such as ``1 - t`` or ``t - y`` cannot wrap around as it would with unsigned integers).
* ``test_data.npy`` / ``test_label.npy``: 14,500 images in the same format, 1,300 each of ア-オ and
  800 each of カ-ソ (:data:`scorer.classes.TEST_COUNTS`).

Class ids follow :data:`scorer.classes.KATAKANA`. Both splits are shuffled.

The course's data came from a few writers; here 16 synthetic writers share the work. The training
set is written by writers 0-9 and the test set by writers 6-15, so the test set has four familiar
hands and six unseen ones, which is what makes test accuracy fall short of training accuracy.

Everything is drawn from ``numpy.random.Generator(PCG64)`` streams derived from the seed with
``SeedSequence`` and computed with elementwise IEEE arithmetic only (no BLAS, no vectorised
transcendental functions), so a seed gives the same bytes on every run and platform.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from scorer.classes import IMAGE_SHAPE, NUM_CLASSES, TEST_COUNTS, TRAIN_PER_CLASS
from scorer.dataset.curves import Skeleton, flatten
from scorer.dataset.distort import displacement
from scorer.dataset.render import coverage, pixel_centres
from scorer.dataset.strokes import GLYPHS
from scorer.dataset.writers import WriterStyle, make_writers

N_WRITERS: Final[int] = 16
TRAIN_WRITERS: Final[range] = range(0, 10)
TEST_WRITERS: Final[range] = range(6, 16)
FILE_NAMES: Final[tuple[str, str, str, str]] = ("train_data", "train_label", "test_data", "test_label")

_SIDE: Final[int] = IMAGE_SHAPE[1]
# Images rendered per batch: large enough to amortise NumPy's per-call cost, small enough to stay in
# cache. Fixed, because the elastic-noise draws are made per batch and the bytes must not change.
_BATCH: Final[int] = 128
# How far (pixels) the pen's outer edge is placed past the frame after stretching, so that elastic
# distortion rarely pulls the ink off a border it should touch.
_OVERSHOOT: Final[float] = 0.6

UInt8Array = NDArray[np.uint8]
FloatArray = NDArray[np.float64]
ImageArray = NDArray[np.float32] | NDArray[np.uint8]

Polarity = Literal["dark-on-light", "light-on-dark"]
ImageDtype = Literal["float32", "uint8"]


@dataclass(frozen=True)
class DataFormat:
    """How the images are stored: which way round the ink is, and the array's dtype.

    The default is the course's own format. The other values exist for comparing a model against
    the MNIST-like convention (light strokes on black) and for a compact uint8 file; the drawings
    are the same either way, only their encoding differs.
    """

    polarity: Polarity = "dark-on-light"
    dtype: ImageDtype = "float32"

    def __post_init__(self) -> None:
        if self.polarity not in ("dark-on-light", "light-on-dark"):
            raise ValueError(f"unknown polarity {self.polarity!r}")
        if self.dtype not in ("float32", "uint8"):
            raise ValueError(f"unknown image dtype {self.dtype!r}")


COURSE_FORMAT: Final[DataFormat] = DataFormat()


@dataclass(frozen=True)
class KatakanaSet:
    """The four arrays of the course's data set (see the module docstring for shapes and dtypes)."""

    train_data: ImageArray
    train_label: FloatArray
    test_data: ImageArray
    test_label: FloatArray


@cache
def skeletons() -> tuple[Skeleton, ...]:
    """The 15 glyphs flattened once per process."""
    return tuple(flatten(glyph) for glyph in GLYPHS)


def _streams(seed: int) -> tuple[np.random.SeedSequence, ...]:
    """Independent seed streams for the writers, the train split, the test split and ``sample_images``."""
    return tuple(np.random.SeedSequence(seed).spawn(4))


def writers_for(seed: int) -> list[WriterStyle]:
    """All :data:`N_WRITERS` writers of a seed; index with :data:`TRAIN_WRITERS` or :data:`TEST_WRITERS`."""
    return make_writers(np.random.Generator(np.random.PCG64(_streams(seed)[0])), N_WRITERS, skeletons())


def _field(writers: Sequence[WriterStyle], who: NDArray[np.intp], name: str) -> FloatArray:
    values = np.array([float(getattr(w, name)) for w in writers], dtype=np.float64)
    return values[who]


def render_class(
    class_id: int, who: NDArray[np.intp], writers: Sequence[WriterStyle], rng: np.random.Generator
) -> UInt8Array:
    """Draw ``len(who)`` images of one class, image ``i`` by ``writers[who[i]]``: (n, 28, 28) uint8 ink.

    The values are the amount of ink (0 = paper, 255 = full ink); :func:`make_split` turns them
    into the requested :class:`DataFormat`.
    """
    sk = skeletons()[class_id]
    n = int(who.shape[0])

    # Per-sample jitter around each writer's habits.
    slant = _field(writers, who, "slant") + rng.normal(0.0, 0.07, n)
    rotation = _field(writers, who, "rotation") + rng.normal(0.0, 0.03, n)
    size = _field(writers, who, "size") * (1.0 + rng.normal(0.0, 0.06, n))
    aspect = _field(writers, who, "aspect") * (1.0 + rng.normal(0.0, 0.05, n))
    offset_x = _field(writers, who, "offset_x") + rng.normal(0.0, 0.6, n)
    offset_y = _field(writers, who, "offset_y") + rng.normal(0.0, 0.6, n)
    half_width = _field(writers, who, "half_width") * (1.0 + rng.normal(0.0, 0.08, n))
    taper = _field(writers, who, "taper")
    wobble = _field(writers, who, "wobble") * rng.uniform(0.7, 1.3, n)
    ink = np.minimum(_field(writers, who, "ink") * rng.uniform(0.92, 1.08, n), 255.0)
    sloppiness = _field(writers, who, "sloppiness")
    stroke_shift = _field(writers, who, "stroke_shift")
    control_noise = rng.standard_normal((n, sk.n_controls, 2)) * sloppiness[:, None, None]
    stroke_noise = rng.standard_normal((n, sk.n_strokes, 2)) * stroke_shift[:, None, None]

    shapes = np.stack([writers[int(w)].shapes[class_id] for w in range(len(writers))])[who]
    u = sk.controls[None] + shapes + control_noise + stroke_noise[:, sk.control_stroke] - 0.5

    # Slant (shear), a small rotation from tan(angle / 2), then size and aspect into pixels.
    x = u[:, :, 0] - slant[:, None] * u[:, :, 1]
    y = u[:, :, 1]
    t2 = rotation * rotation
    cos = (1.0 - t2) / (1.0 + t2)
    sin = 2.0 * rotation / (1.0 + t2)
    root_aspect = np.sqrt(aspect)
    sx = (size * root_aspect)[:, None]
    sy = (size / root_aspect)[:, None]
    controls_px = np.empty_like(u)
    controls_px[:, :, 0] = _SIDE / 2 + offset_x[:, None] + (cos[:, None] * x - sin[:, None] * y) * sx
    controls_px[:, :, 1] = _SIDE / 2 + offset_y[:, None] + (sin[:, None] * x + cos[:, None] * y) * sy
    points = sk.points(controls_px)

    progress = sk.seg_progress[None, :]
    seg_half_width = half_width[:, None] * (1.0 - taper[:, None] * progress * progress)

    # The course cropped each character to its extent and stretched it to fill the frame, aspect
    # not kept: map the centre line's bounding box so that the pen's outer edge lands a little past
    # each border (the edge pixels get solid ink, as a crop to the ink's extent gives).
    reach = (half_width - _OVERSHOOT)[:, None]
    low = points.min(axis=1)
    extent = np.maximum(points.max(axis=1) - low, 1.0)
    scale = (_SIDE - 2.0 * reach) / extent
    points = (points - low[:, None, :]) * scale[:, None, :] + reach[:, None, :]

    centres = pixel_centres(_SIDE)
    images = np.empty((n, _SIDE, _SIDE), dtype=np.uint8)
    for lo in range(0, n, _BATCH):
        hi = min(lo + _BATCH, n)
        shift = displacement(rng, hi - lo, _SIDE, wobble[lo:hi]).reshape(hi - lo, _SIDE * _SIDE, 2)
        cover = coverage(points[lo:hi], sk.seg_start, sk.seg_end, seg_half_width[lo:hi], centres[None] + shift)
        values = np.floor(cover.astype(np.float64) * ink[lo:hi, None] + 0.5)
        images[lo:hi] = values.reshape(hi - lo, _SIDE, _SIDE).astype(np.uint8)
    return images


def to_format(ink: UInt8Array, fmt: DataFormat | None = None) -> ImageArray:
    """Ink amounts (0 = paper, 255 = full ink) as images of ``fmt`` (the course's format by default)."""
    fmt = fmt or COURSE_FORMAT
    values = 255 - ink if fmt.polarity == "dark-on-light" else ink
    return np.ascontiguousarray(values.astype(fmt.dtype))


def make_split(
    counts: Sequence[int],
    seed: int | np.random.SeedSequence,
    writers: Sequence[WriterStyle],
    *,
    shuffle: bool = True,
    fmt: DataFormat | None = None,
) -> tuple[ImageArray, FloatArray]:
    """Images (N, 1, 28, 28) in ``fmt`` and one-hot labels (N, 15) float64, ``counts[c]`` of class ``c``.

    Each image's writer is drawn uniformly from ``writers``. Each class has its own random stream,
    so changing one class's count does not change the others' images. With ``shuffle`` the order is
    a seeded permutation; without it images are grouped by class in id order. The format changes only
    how the same drawings are stored, never the drawings.
    """
    if len(counts) != NUM_CLASSES:
        raise ValueError(f"need {NUM_CLASSES} counts, got {len(counts)}")
    if any(c < 0 for c in counts):
        raise ValueError("counts must be non-negative")
    if not writers:
        raise ValueError("need at least one writer")
    # A fresh copy: spawn() advances a SeedSequence, and the same seed must give the same split again.
    if isinstance(seed, np.random.SeedSequence):
        root = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    else:
        root = np.random.SeedSequence(seed)
    *class_streams, order_stream = root.spawn(NUM_CLASSES + 1)

    blocks = []
    for class_id, (count, stream) in enumerate(zip(counts, class_streams, strict=True)):
        rng = np.random.Generator(np.random.PCG64(stream))
        who = rng.integers(0, len(writers), size=count).astype(np.intp)
        blocks.append(render_class(class_id, who, writers, rng))
    ink = np.concatenate(blocks)[:, None, :, :]
    ids = np.repeat(np.arange(NUM_CLASSES), counts)
    if shuffle:
        order = np.random.Generator(np.random.PCG64(order_stream)).permutation(ids.shape[0])
        ink, ids = ink[order], ids[order]
    labels = np.eye(NUM_CLASSES, dtype=np.float64)[ids]
    return to_format(ink, fmt), labels


def make_dataset(seed: int = 0, fmt: DataFormat | None = None) -> KatakanaSet:
    """The full data set for a seed (3,000 train and 14,500 test images), in the course's format by default."""
    writers = writers_for(seed)
    _, train_stream, test_stream, _ = _streams(seed)
    train_data, train_label = make_split(
        [TRAIN_PER_CLASS] * NUM_CLASSES, train_stream, [writers[i] for i in TRAIN_WRITERS], fmt=fmt
    )
    test_data, test_label = make_split(TEST_COUNTS, test_stream, [writers[i] for i in TEST_WRITERS], fmt=fmt)
    return KatakanaSet(train_data, train_label, test_data, test_label)


def write_dataset(out_dir: Path, seed: int = 0, fmt: DataFormat | None = None) -> dict[str, Path]:
    """Write the four ``.npy`` files (no pickle) into ``out_dir``, creating it; returns name -> path."""
    dataset = make_dataset(seed, fmt)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in FILE_NAMES:
        path = out_dir / f"{name}.npy"
        np.save(path, getattr(dataset, name), allow_pickle=False)
        paths[name] = path
    return paths


def sample_images(
    per_class: int = 2, seed: int = 0, fmt: DataFormat | None = None
) -> tuple[ImageArray, NDArray[np.int64]]:
    """A few images from the *train* distribution without building the whole set.

    Returns images (15 * per_class, 1, 28, 28) in ``fmt`` and their class ids (int64), grouped by
    class in id order. They come from their own stream, so they are not copies of training images.
    """
    writers = writers_for(seed)
    data, labels = make_split(
        [per_class] * NUM_CLASSES,
        _streams(seed)[3],
        [writers[i] for i in TRAIN_WRITERS],
        shuffle=False,
        fmt=fmt,
    )
    return data, np.argmax(labels, axis=1).astype(np.int64)
