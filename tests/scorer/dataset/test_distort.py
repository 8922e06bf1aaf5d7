"""Elastic displacement fields: smooth, unit variance before scaling, reproducible."""

import numpy as np

from scorer.dataset.distort import displacement


def _field(seed: int, batch: int = 64) -> np.ndarray:
    return displacement(np.random.default_rng(seed), batch, 28, np.ones(batch))


def test_shape_and_scale() -> None:
    field = _field(0)
    assert field.shape == (64, 28, 28, 2)
    assert 0.7 < field.std() < 1.3
    assert abs(field.mean()) < 0.2


def test_amplitude_scales_each_sample() -> None:
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    base = displacement(rng_a, 2, 28, np.array([1.0, 1.0]))
    scaled = displacement(rng_b, 2, 28, np.array([0.0, 3.0]))
    assert np.all(scaled[0] == 0.0)
    assert np.allclose(scaled[1], 3.0 * base[1])


def test_neighbouring_pixels_move_together() -> None:
    field = _field(2)[..., 0]
    a, b = field[:, :, :-1].ravel(), field[:, :, 1:].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.9
    far_a, far_b = field[:, :, :-14].ravel(), field[:, :, 14:].ravel()
    assert abs(np.corrcoef(far_a, far_b)[0, 1]) < 0.3


def test_same_generator_state_gives_same_field() -> None:
    assert _field(3).tobytes() == _field(3).tobytes()
