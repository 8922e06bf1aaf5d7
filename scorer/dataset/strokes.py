"""The 15 katakana as pen strokes, so the data set needs no font and looks handwritten.

Each character is a tuple of strokes in the usual stroke order. A stroke starts at a point and
continues through pieces: one point is a straight line to it, two points a quadratic Bézier curve
(control, end), three a cubic one (control, control, end). Corners are shared control points, so
noise added to them later keeps the stroke connected, as a pen would.

Coordinates are in a unit box: x grows to the right, y grows downwards, (0.5, 0.5) is the centre.
The shapes follow printed textbook katakana closely enough that the confusable pairs keep their
telling details: ケ's third stroke hangs from the bar while ク's bar turns down; サ's right
vertical sweeps left while セ's bar ends in a hook; シ rises from the bottom left while ソ's long
stroke falls from the top right.
"""

from dataclasses import dataclass
from typing import Final

from scorer.classes import KATAKANA, NUM_CLASSES

Point = tuple[float, float]


@dataclass(frozen=True)
class Stroke:
    """One pen-down-to-pen-up movement: a start point and the pieces that follow it."""

    start: Point
    pieces: tuple[tuple[Point, ...], ...]

    def __post_init__(self) -> None:
        if not self.pieces:
            raise ValueError("a stroke needs at least one piece")
        for piece in self.pieces:
            if not 1 <= len(piece) <= 3:
                raise ValueError(f"a piece has 1 (line), 2 (quadratic) or 3 (cubic) points, not {len(piece)}")

    @property
    def control_points(self) -> tuple[Point, ...]:
        """The start point followed by every piece's points, each corner listed once."""
        return (self.start, *(p for piece in self.pieces for p in piece))


def _stroke(start: Point, *pieces: tuple[Point, ...]) -> Stroke:
    return Stroke(start, tuple(pieces))


def _line(x: float, y: float) -> tuple[Point, ...]:
    return ((x, y),)


def _quad(cx: float, cy: float, x: float, y: float) -> tuple[Point, ...]:
    return ((cx, cy), (x, y))


Glyph = tuple[Stroke, ...]

# fmt: off
GLYPHS: Final[tuple[Glyph, ...]] = (
    # ア: a bar turning into a short hook down-left, then a stem falling from under the bar, sweeping left.
    (
        _stroke((0.14, 0.16), _line(0.86, 0.16), _quad(0.82, 0.36, 0.60, 0.50)),
        _stroke((0.47, 0.32), _quad(0.50, 0.74, 0.20, 0.92)),
    ),
    # イ: a long stroke falling from the top right to the left, then a vertical stem from its middle.
    (
        _stroke((0.78, 0.06), _quad(0.55, 0.42, 0.10, 0.62)),
        _stroke((0.52, 0.36), _line(0.52, 0.95)),
    ),
    # ウ: a short tick on top, a short left post, then the roof turning down into a long curve to the left.
    (
        _stroke((0.50, 0.05), _line(0.50, 0.22)),
        _stroke((0.17, 0.28), _line(0.19, 0.50)),
        _stroke((0.17, 0.28), _line(0.83, 0.28), _quad(0.80, 0.74, 0.36, 0.95)),
    ),
    # エ: top bar, stem, wider bottom bar.
    (
        _stroke((0.20, 0.18), _line(0.80, 0.18)),
        _stroke((0.50, 0.18), _line(0.50, 0.82)),
        _stroke((0.08, 0.82), _line(0.92, 0.82)),
    ),
    # オ: bar, a tall stem right of centre with a small hook left, a diagonal falling left from the crossing.
    (
        _stroke((0.08, 0.34), _line(0.92, 0.34)),
        _stroke((0.62, 0.05), _line(0.62, 0.93), _line(0.50, 0.86)),
        _stroke((0.60, 0.38), _quad(0.42, 0.66, 0.10, 0.82)),
    ),
    # カ: bar turning down the right side with a hook at the bottom, then a stem sweeping down-left.
    (
        _stroke((0.12, 0.30), _line(0.84, 0.30), _quad(0.86, 0.80, 0.66, 0.90)),
        _stroke((0.48, 0.06), _quad(0.46, 0.62, 0.14, 0.92)),
    ),
    # キ: two rising bars, the lower one longer, crossed by a slightly slanted vertical.
    (
        _stroke((0.16, 0.32), _line(0.82, 0.26)),
        _stroke((0.08, 0.58), _line(0.92, 0.52)),
        _stroke((0.42, 0.06), _line(0.58, 0.96)),
    ),
    # ク: a short stroke falling left, then a bar from its middle turning down into a long curve left.
    (
        _stroke((0.44, 0.06), _quad(0.34, 0.34, 0.10, 0.52)),
        _stroke((0.37, 0.22), _line(0.84, 0.22), _quad(0.80, 0.70, 0.28, 0.95)),
    ),
    # ケ: a short stroke falling left, a bar from its middle, and a separate stroke hanging from the bar.
    (
        _stroke((0.40, 0.06), _quad(0.30, 0.34, 0.08, 0.52)),
        _stroke((0.32, 0.32), _line(0.92, 0.32)),
        _stroke((0.66, 0.32), _quad(0.66, 0.72, 0.34, 0.95)),
    ),
    # コ: top bar turning down the right side, then the bottom bar.
    (
        _stroke((0.16, 0.20), _line(0.82, 0.20), _line(0.82, 0.82)),
        _stroke((0.16, 0.82), _line(0.86, 0.82)),
    ),
    # サ: long bar, short left vertical, right vertical sweeping down-left.
    (
        _stroke((0.06, 0.36), _line(0.94, 0.36)),
        _stroke((0.30, 0.12), _line(0.30, 0.62)),
        _stroke((0.70, 0.10), _line(0.70, 0.52), _quad(0.68, 0.80, 0.38, 0.94)),
    ),
    # シ: two ticks stacked on the left, then a long stroke rising from the bottom left to the top right.
    (
        _stroke((0.16, 0.18), _line(0.32, 0.30)),
        _stroke((0.10, 0.44), _line(0.26, 0.56)),
        _stroke((0.18, 0.90), _quad(0.62, 0.76, 0.88, 0.26)),
    ),
    # ス: bar turning into a long stroke down-left, then a short stroke from its middle down-right.
    (
        _stroke((0.18, 0.16), _line(0.78, 0.16), _quad(0.66, 0.62, 0.10, 0.90)),
        _stroke((0.52, 0.58), _line(0.90, 0.90)),
    ),
    # セ: a bar ending in a hook down-left, then a stem that bends into a bottom bar to the right.
    (
        _stroke((0.06, 0.46), _line(0.88, 0.38), _line(0.70, 0.60)),
        _stroke((0.34, 0.08), _line(0.34, 0.78), _quad(0.35, 0.90, 0.88, 0.88)),
    ),
    # ソ: a short tick on the upper left, then a long stroke falling from the top right to the bottom left.
    (
        _stroke((0.18, 0.24), _line(0.32, 0.52)),
        _stroke((0.84, 0.14), _quad(0.76, 0.66, 0.28, 0.94)),
    ),
)
# fmt: on

assert len(GLYPHS) == NUM_CLASSES == len(KATAKANA)
