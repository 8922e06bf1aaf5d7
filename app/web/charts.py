"""Chart geometry for the result page, drawn as inline SVG by the templates (no CDN, no JavaScript).

Each function turns scorer output into plain numbers (positions, sizes, colours); the SVG markup
lives in ``templates/_charts.html``. The scorer's JSON is read leniently — a list of 15 numbers, a
list of objects with ``accuracy``, or an object keyed by class — so a change in its exact shape
degrades a chart instead of breaking the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scorer.classes import KATAKANA


def _accuracy_of(item: Any) -> float | None:
    if isinstance(item, int | float):
        return float(item)
    if isinstance(item, dict):
        for key in ("accuracy", "acc", "recall"):
            if isinstance(item.get(key), int | float):
                return float(item[key])
        if isinstance(item.get("correct"), int) and item.get("total"):
            return float(item["correct"]) / float(item["total"])
    return None


def per_class_accuracies(per_class: Any) -> list[float | None]:
    """Fifteen accuracies in class order (None where unknown)."""
    if isinstance(per_class, dict):
        items = [per_class.get(label, per_class.get(str(i))) for i, label in enumerate(KATAKANA)]
    elif isinstance(per_class, list):
        items = list(per_class)
    else:
        items = []
    values = [_accuracy_of(item) for item in items[: len(KATAKANA)]]
    return values + [None] * (len(KATAKANA) - len(values))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float | None


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    top: int
    bottom: int
    left: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (y, label)


def bar_chart(per_class: Any, *, width: int = 640, height: int = 240) -> BarChart:
    top, bottom, left, right = 10, 30, 40, 10
    plot_h = height - top - bottom
    values = per_class_accuracies(per_class)
    slot = (width - left - right) / len(values)
    bars = []
    for i, (label, value) in enumerate(zip(KATAKANA, values, strict=True)):
        h = plot_h * max(0.0, min(1.0, value or 0.0))
        bars.append(Bar(left + i * slot + slot * 0.15, top + plot_h - h, slot * 0.7, h, label, value))
    ticks = [(top + plot_h * (1 - f), f"{int(f * 100)}%") for f in (0, 0.25, 0.5, 0.75, 1.0)]
    return BarChart(width, height, top, bottom, left, bars, ticks)


@dataclass(frozen=True)
class Cell:
    x: float
    y: float
    count: int
    fill: str
    text_fill: str


@dataclass(frozen=True)
class Heatmap:
    size: int
    cell: float
    offset: int
    cells: list[Cell]
    labels: list[tuple[float, str]]  # (centre, label) for both axes


def heatmap(confusion: Any, *, cell: float = 30, offset: int = 30) -> Heatmap | None:
    """Rows are true classes, columns predictions; each row is shaded by its own share, so the small
    classes (800 images) read as clearly as the large ones (1,300)."""
    if not isinstance(confusion, list) or len(confusion) != len(KATAKANA):
        return None
    cells = []
    for r, row in enumerate(confusion):
        if not isinstance(row, list) or len(row) != len(KATAKANA):
            return None
        total = sum(int(v) for v in row) or 1
        for c, value in enumerate(row):
            share = int(value) / total
            # Diagonal in blue, mistakes in red: where the confusion is shows at a glance.
            rgb = "37, 99, 235" if r == c else "220, 38, 38"
            alpha = 0.06 + 0.94 * share if value else 0.0
            text = "#fff" if alpha > 0.55 else "#111"
            cells.append(Cell(offset + c * cell, offset + r * cell, int(value), f"rgba({rgb}, {alpha:.3f})", text))
    labels = [(offset + i * cell + cell / 2, label) for i, label in enumerate(KATAKANA)]
    return Heatmap(int(offset + cell * len(KATAKANA)), cell, offset, cells, labels)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    value: float
    label: str  # e.g. "#12 11/24"
    current: bool


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int
    top: int
    plot_w: float
    plot_h: float
    points: list[Point]
    polyline: str
    ticks: list[tuple[float, str]]
    y_min: float


def line_chart(history: list[tuple[str, float, bool]], *, width: int = 640, height: int = 220) -> LineChart | None:
    """「識別精度の変遷」: accuracy per scored submission, oldest first; ``(label, accuracy, is_current)``.

    The y axis starts a little below the worst score (not at 0) so progress between 0.95 and 0.99
    — where trainees spend most of the course — stays visible.
    """
    if not history:
        return None
    left, top, right, bottom = 44, 10, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    low = min(value for _, value, _ in history)
    y_min = max(0.0, min(0.9, (int(low * 20) / 20) - 0.05))
    span = 1.0 - y_min
    step = plot_w / max(1, len(history) - 1)
    points = []
    for i, (label, value, current) in enumerate(history):
        x = left + (i * step if len(history) > 1 else plot_w / 2)
        y = top + plot_h * (1 - (max(y_min, min(1.0, value)) - y_min) / span)
        points.append(Point(x, y, value, label, current))
    ticks = []
    for k in range(5):
        v = y_min + span * k / 4
        ticks.append((top + plot_h * (1 - k / 4), f"{v * 100:.0f}%"))
    polyline = " ".join(f"{p.x:.1f},{p.y:.1f}" for p in points)
    return LineChart(width, height, left, top, plot_w, plot_h, points, polyline, ticks, y_min)


def overfit_gap(validation: float | None, test: float | None) -> float | None:
    """Validation minus test accuracy in percentage points (positive: validation looks better)."""
    if validation is None or test is None:
        return None
    return (validation - test) * 100


OVERFIT_POINTS = 3.0  # a validation score this many points above the test score suggests overfitting
