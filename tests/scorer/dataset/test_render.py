"""The thick-line rasteriser: ink where the pen went, soft edges, no darkening where strokes cross."""

import numpy as np

from scorer.dataset.render import coverage, pixel_centres


def _draw(segments: list[tuple[tuple[float, float], tuple[float, float]]], half_width: float) -> np.ndarray:
    points = np.array([p for seg in segments for p in seg], dtype=np.float64)[None]
    starts = np.arange(0, 2 * len(segments), 2, dtype=np.intp)
    widths = np.full((1, len(segments)), half_width)
    image: np.ndarray = coverage(points, starts, starts + 1, widths, pixel_centres(28)[None])[0]
    return image.reshape(28, 28)


def test_pixel_centres_are_row_major() -> None:
    centres = pixel_centres(3)
    assert centres[:4].tolist() == [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5]]


def test_horizontal_line_inks_its_row_only() -> None:
    image = _draw([((4.0, 14.5), (24.0, 14.5))], half_width=1.0)
    assert image.dtype == np.float32
    assert np.all(image[14, 5:24] == 1.0)
    assert np.all(image[:12] == 0.0) and np.all(image[17:] == 0.0)
    # Soft edge: the neighbouring rows are partly covered.
    assert 0.0 < image[13, 10] < 1.0
    assert image[:, :3].max() == 0.0


def test_wider_pen_puts_down_more_ink() -> None:
    thin = _draw([((4.0, 14.0), (24.0, 14.0))], half_width=0.6)
    thick = _draw([((4.0, 14.0), (24.0, 14.0))], half_width=1.6)
    assert thick.sum() > 1.5 * thin.sum()


def test_crossing_strokes_do_not_exceed_full_ink() -> None:
    image = _draw([((4.0, 14.0), (24.0, 14.0)), ((14.0, 4.0), (14.0, 24.0))], half_width=1.5)
    assert image.max() == 1.0
    assert image.min() == 0.0


def test_degenerate_segment_draws_a_dot() -> None:
    image = _draw([((14.0, 14.0), (14.0, 14.0))], half_width=1.5)
    assert image[13, 13] == 1.0
    assert image.sum() < 16
