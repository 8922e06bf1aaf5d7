"""The glyph table: one glyph per class, with sane strokes inside the unit box."""

import pytest

from scorer.classes import NUM_CLASSES
from scorer.dataset.strokes import GLYPHS, Stroke


def test_one_glyph_per_class() -> None:
    assert len(GLYPHS) == NUM_CLASSES


def test_every_control_point_is_inside_the_unit_box() -> None:
    for glyph in GLYPHS:
        assert 2 <= len(glyph) <= 3
        for stroke in glyph:
            for x, y in stroke.control_points:
                assert 0.0 <= x <= 1.0
                assert 0.0 <= y <= 1.0


def test_glyphs_are_distinct() -> None:
    shapes = {tuple(s.control_points for s in glyph) for glyph in GLYPHS}
    assert len(shapes) == NUM_CLASSES


def test_control_points_list_each_corner_once() -> None:
    stroke = Stroke((0.0, 0.0), (((1.0, 0.0),), ((1.0, 1.0), (0.0, 1.0))))
    assert stroke.control_points == ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


@pytest.mark.parametrize("pieces", [(), (((0.1, 0.1),) * 4,)])
def test_stroke_rejects_bad_pieces(pieces: tuple[tuple[tuple[float, float], ...], ...]) -> None:
    with pytest.raises(ValueError):
        Stroke((0.0, 0.0), pieces)
