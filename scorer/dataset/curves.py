"""Turn a glyph's strokes into a fixed polyline recipe that many noisy copies can share.

Each curve piece is sampled at fixed parameter values, so a point on the polyline is a fixed
weighted sum of the glyph's control points (Bernstein weights). Noise is then added to the control
points of thousands of samples at once and the polylines follow with a few multiply-adds, instead
of re-flattening every curve per sample. The weights are applied with explicit elementwise
multiply-adds in a fixed order rather than a matrix product: BLAS may reorder the sums differently
on other machines, and the data set has to be the same bytes everywhere.
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scorer.dataset.strokes import Glyph

# Straight pieces need one segment; curves enough that the polyline looks smooth at 28 x 28.
_SEGMENTS_PER_DEGREE = {1: 1, 2: 6, 3: 8}


@dataclass(frozen=True)
class Skeleton:
    """A glyph flattened into polyline segments whose points are fixed mixes of control points.

    ``weights[p, k]`` is the weight of control point ``k`` in polyline point ``p``. Segment ``s`` joins
    points ``seg_start[s]`` and ``seg_end[s]``; ``seg_progress[s]`` is how far along its stroke the
    segment sits (0 at the pen-down end, 1 at the pen-up end), used to taper strokes like a
    lifting pen. ``control_stroke[k]`` says which stroke control point ``k`` belongs to.
    """

    controls: NDArray[np.float64]
    control_stroke: NDArray[np.intp]
    weights: NDArray[np.float64]
    seg_start: NDArray[np.intp]
    seg_end: NDArray[np.intp]
    seg_progress: NDArray[np.float64]

    @property
    def n_controls(self) -> int:
        return int(self.controls.shape[0])

    @property
    def n_strokes(self) -> int:
        return int(self.control_stroke.max()) + 1

    def points(self, controls: NDArray[np.float64]) -> NDArray[np.float64]:
        """Polyline points for a batch of control-point sets.

        (batch, n_controls, 2) -> (batch, n_points, 2).
        """
        out = np.zeros((controls.shape[0], self.weights.shape[0], 2), dtype=np.float64)
        for k in range(self.n_controls):
            column = self.weights[:, k]
            rows = np.nonzero(column)[0]
            out[:, rows, :] += column[rows, None] * controls[:, k, None, :]
        return out


def _bernstein(degree: int, t: float) -> list[float]:
    """Bernstein basis at t; only products and sums, so the values are exact to the last bit everywhere."""
    s = 1.0 - t
    if degree == 1:
        return [s, t]
    if degree == 2:
        return [s * s, 2.0 * s * t, t * t]
    return [s * s * s, 3.0 * s * s * t, 3.0 * s * t * t, t * t * t]


def flatten(glyph: Glyph) -> Skeleton:
    """Build the glyph's :class:`Skeleton`."""
    controls: list[tuple[float, float]] = []
    control_stroke: list[int] = []
    weight_rows: list[dict[int, float]] = []
    seg_start: list[int] = []
    seg_end: list[int] = []
    seg_stroke: list[int] = []

    for stroke_index, stroke in enumerate(glyph):
        first_control = len(controls)
        controls.extend(stroke.control_points)
        control_stroke.extend([stroke_index] * len(stroke.control_points))
        weight_rows.append({first_control: 1.0})
        piece_start = first_control
        for piece in stroke.pieces:
            degree = len(piece)
            n_segments = _SEGMENTS_PER_DEGREE[degree]
            for j in range(1, n_segments + 1):
                basis = _bernstein(degree, j / n_segments)
                weight_rows.append({piece_start + i: w for i, w in enumerate(basis) if w != 0.0})
                seg_start.append(len(weight_rows) - 2)
                seg_end.append(len(weight_rows) - 1)
                seg_stroke.append(stroke_index)
            piece_start += degree

    weights = np.zeros((len(weight_rows), len(controls)), dtype=np.float64)
    for p, row in enumerate(weight_rows):
        for k, w in row.items():
            weights[p, k] = w

    skeleton = Skeleton(
        controls=np.asarray(controls, dtype=np.float64),
        control_stroke=np.asarray(control_stroke, dtype=np.intp),
        weights=weights,
        seg_start=np.asarray(seg_start, dtype=np.intp),
        seg_end=np.asarray(seg_end, dtype=np.intp),
        seg_progress=np.zeros(len(seg_start), dtype=np.float64),
    )
    # Progress by arc length of the clean template, so a long straight bar and a finely sampled
    # curve taper at the same rate.
    template = skeleton.points(skeleton.controls[None])[0]
    delta = template[skeleton.seg_end] - template[skeleton.seg_start]
    lengths = np.sqrt(delta[:, 0] * delta[:, 0] + delta[:, 1] * delta[:, 1])
    strokes = np.asarray(seg_stroke, dtype=np.intp)
    for s in range(int(strokes.max()) + 1):
        idx = np.nonzero(strokes == s)[0]
        ends = np.cumsum(lengths[idx])
        skeleton.seg_progress[idx] = (ends - 0.5 * lengths[idx]) / ends[-1]
    return skeleton
