"""Elastic distortion fields (Simard, Steinkraus & Platt, 2003) built from exact arithmetic.

Simard et al. warp each image by a random displacement field smoothed with a Gaussian. Here the
Gaussian is approximated by three passes of a 7-wide box filter (standard deviation about 3.5 px),
done as sums of shifted slices: only additions, whose order never changes, so the field is the same
bytes on every machine (a Gaussian built from ``exp`` or a convolution done through BLAS or FFT
could differ in the last bit between platforms). The field is returned in pixels, and the renderer
evaluates the pen strokes at the displaced pixel centres, which is the same warp without an
interpolation step.
"""

import numpy as np
from numpy.typing import NDArray

_BOX = 7
_PASSES = 3
_PAD = _PASSES * (_BOX - 1) // 2


def _kernel_sum_of_squares() -> int:
    """Sum of squares of the 1-D integer kernel: the 2-D smoothed unit noise has this standard deviation."""
    kernel = [1]
    for _ in range(_PASSES):
        widened = [0] * (len(kernel) + _BOX - 1)
        for i, k in enumerate(kernel):
            for j in range(_BOX):
                widened[i + j] += k
        kernel = widened
    return sum(k * k for k in kernel)


# With the integer (unnormalised) kernel, 2-D smoothing of unit-variance noise gives a standard
# deviation of sum(k^2) (the product of the two 1-D norms), so dividing by it gives unit variance.
_FIELD_STD = float(_kernel_sum_of_squares())


def _box_valid(field: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    n = field.shape[axis] - _BOX + 1
    index: list[slice] = [slice(None)] * field.ndim
    index[axis] = slice(0, n)
    out = field[tuple(index)].copy()
    for shift in range(1, _BOX):
        index[axis] = slice(shift, shift + n)
        out += field[tuple(index)]
    return out


def smooth_field(noise: NDArray[np.float64]) -> NDArray[np.float64]:
    """Smooth (batch, size + 2 * pad, size + 2 * pad) noise to a unit-variance (batch, size, size) field."""
    field = noise
    for _ in range(_PASSES):
        field = _box_valid(field, 1)
    for _ in range(_PASSES):
        field = _box_valid(field, 2)
    return field / _FIELD_STD


def displacement(
    rng: np.random.Generator, batch: int, size: int, amplitude: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Random smooth displacements (batch, size, size, 2) in pixels, std ``amplitude[i]`` for sample i."""
    noise = rng.standard_normal((2, batch, size + 2 * _PAD, size + 2 * _PAD))
    dx = smooth_field(noise[0])
    dy = smooth_field(noise[1])
    return np.stack([dx, dy], axis=-1) * amplitude[:, None, None, None]
