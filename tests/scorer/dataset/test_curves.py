"""Flattening glyphs into polylines that follow noisy control points."""

import numpy as np

from scorer.dataset.curves import flatten
from scorer.dataset.strokes import GLYPHS, Stroke


def _corner_then_curve() -> tuple[Stroke, ...]:
    return (Stroke((0.0, 0.0), (((1.0, 0.0),), ((1.0, 1.0), (0.0, 1.0)))),)


def test_polyline_passes_through_the_ends_and_corners() -> None:
    sk = flatten(_corner_then_curve())
    points = sk.points(sk.controls[None])[0]
    assert points[0].tolist() == [0.0, 0.0]
    assert [1.0, 0.0] in points.tolist()
    assert points[-1].tolist() == [0.0, 1.0]


def test_a_line_is_one_segment_and_a_curve_several() -> None:
    sk = flatten(_corner_then_curve())
    assert sk.seg_start.tolist() == list(range(len(sk.seg_start)))
    assert sk.seg_end.tolist() == [s + 1 for s in sk.seg_start]
    assert len(sk.seg_start) > 2


def test_segments_never_join_two_strokes() -> None:
    for glyph in GLYPHS:
        sk = flatten(glyph)
        # Points are laid out stroke by stroke; the pen lifts between strokes, so there is one
        # segment fewer than points per stroke.
        assert len(sk.seg_start) == sk.weights.shape[0] - len(glyph)
        owner = np.repeat(np.arange(len(glyph)), np.bincount(sk.control_stroke))
        first_control = np.argmax(sk.weights, axis=1)
        assert np.all(owner[first_control[sk.seg_start]] == owner[first_control[sk.seg_end]])


def test_progress_runs_from_pen_down_to_pen_up() -> None:
    for glyph in GLYPHS:
        sk = flatten(glyph)
        assert np.all((sk.seg_progress > 0) & (sk.seg_progress < 1))
    sk = flatten(_corner_then_curve())
    assert np.all(np.diff(sk.seg_progress) > 0)


def test_points_follow_moved_control_points() -> None:
    sk = flatten(GLYPHS[0])
    moved = sk.controls[None] + np.array([0.25, -0.5])
    assert np.allclose(sk.points(moved), sk.points(sk.controls[None]) + np.array([0.25, -0.5]))


def test_weights_form_a_partition_of_unity() -> None:
    for glyph in GLYPHS:
        assert np.allclose(flatten(glyph).weights.sum(axis=1), 1.0)
