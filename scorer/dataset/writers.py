"""Writer styles: the consistent habits that make one person's katakana differ from another's.

The course's data came from a few writers, and a model that has only seen some of them does worse
on the others. To reproduce that, every writer here has fixed habits (slant, size, aspect,
position, pen width, how sloppy they are, how they taper strokes, how much their hand wobbles) and
a personal way of shaping each character (a fixed offset of every control point). Samples then add
small per-sample jitter around those habits (see ``generate.py``).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scorer.dataset.curves import Skeleton


@dataclass(frozen=True)
class WriterStyle:
    """One writer's habits. Lengths are in pixels of the 28 x 28 image unless said otherwise."""

    slant: float  # horizontal shear: x += slant * y (positive leans right at the top)
    rotation: float  # tan(angle / 2) of a small rotation, so no trigonometry is needed
    size: float  # side of the unit box in pixels before the glyph is stretched to fill the frame
    aspect: float  # width / height of the unit box (before stretching)
    offset_x: float
    offset_y: float
    half_width: float  # half the pen width in the final 28 x 28 image: a thick felt pen
    taper: float  # how much thinner a stroke ends than it starts (0 = not at all)
    sloppiness: float  # per-sample control-point noise, in unit-box lengths
    stroke_shift: float  # per-sample independent shift of whole strokes, in unit-box lengths
    wobble: float  # elastic distortion amplitude (standard deviation of the displacement)
    ink: float  # peak darkness, out of 255
    shapes: tuple[NDArray[np.float64], ...]  # per class: (n_controls, 2) personal control-point offsets


def make_writers(rng: np.random.Generator, count: int, skeletons: Sequence[Skeleton]) -> list[WriterStyle]:
    """Draw ``count`` writers. The draw order is fixed, so the same generator state gives the same writers."""
    writers = []
    for _ in range(count):
        writers.append(
            WriterStyle(
                slant=float(rng.normal(0.0, 0.12)),
                rotation=float(rng.normal(0.0, 0.04)),
                size=float(rng.uniform(16.0, 20.5)),
                aspect=float(rng.uniform(0.78, 1.2)),
                offset_x=float(rng.normal(0.0, 0.6)),
                offset_y=float(rng.normal(0.0, 0.6)),
                half_width=float(rng.uniform(1.35, 2.1)),
                taper=float(rng.uniform(0.0, 0.55)),
                sloppiness=float(rng.uniform(0.01, 0.035)),
                stroke_shift=float(rng.uniform(0.0, 0.035)),
                wobble=float(rng.uniform(0.4, 1.3)),
                ink=float(rng.uniform(225.0, 255.0)),
                shapes=tuple(rng.normal(0.0, 0.038, size=(sk.n_controls, 2)) for sk in skeletons),
            )
        )
    return writers
