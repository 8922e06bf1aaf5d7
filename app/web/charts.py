"""Chart geometry for the result page, drawn as inline SVG by the templates (no CDN, no JavaScript).

Each function turns scorer output into plain numbers (positions, sizes, colours); the SVG markup
lives in ``templates/_charts.html``. The scorer's JSON is read leniently — a list of 15 numbers, a
list of objects with ``accuracy``, or an object keyed by class — so a change in its exact shape
degrades a chart instead of breaking the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def nice_axis(values: list[float], *, max_ticks: int = 6, floor_margin: float = 0.02) -> tuple[float, float, float]:
    """(low, high, step) for an accuracy axis that fits the data: even steps of 1, 2, 5, 10, 20 or
    25 points, the low end a little under the smallest value, the high end at most 100 %. For points
    on a line (the history), where a 0-100 % axis flattens 95-99 % into one line; never for bars,
    whose length must be their value (see :class:`ClassBars`). A chart drawn on it says so."""
    lo = max(0.0, min(values) - floor_margin)
    hi = min(1.0, max(values))
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25):
        low = math.floor(lo / step + 1e-9) * step
        high = min(1.0, math.ceil(hi / step - 1e-9) * step)
        if high <= low:
            high = min(1.0, low + step)
        if (high - low) / step <= max_ticks - 1:
            return round(low, 4), round(high, 4), step
    return 0.0, 1.0, 0.25


def axis_label(value: float, step: float) -> str:
    return f"{value * 100:.0f}%" if step >= 0.01 else f"{value * 100:.1f}%"


@dataclass(frozen=True)
class ClassBar:
    y: float  # top of the row's bar
    width: float
    label: str
    value: float | None
    text: str  # the value as printed on the chart ("97.1%")
    below_pass: bool


@dataclass(frozen=True)
class ClassBars:
    """Per-class accuracy as horizontal bars: one row per character, the value printed in a column
    right of the plot, so it reads on a phone and on touch screens (no hover needed).

    Bars start at 0 %: a bar's length is its accuracy, so a class at 78 % looks about four fifths
    of one at 98 %, not a tenth of it as on an axis cut at 75 %. The printed values carry the
    small differences; the pass line ends at the plot's edge and never crosses them."""

    width: int
    height: int
    left: int  # where bars start (after the character labels)
    top: int
    plot_w: float
    row: float
    bar_h: float
    bars: list[ClassBar]
    ticks: list[tuple[float, str]]  # (x, label)
    pass_x: float | None
    pass_text: str
    summary: str  # for the SVG's accessible name: lowest and highest class

    def value_at(self, bar: ClassBar) -> float:
        """Where a bar's value is printed: the column right of the plot, the same for every bar."""
        return self.left + self.plot_w + 6


CLASS_AXIS_STEP = 0.2  # 0, 20, ... 100 %


def class_bars(per_class: Any, threshold: float | None = None, *, width: int = 420) -> ClassBars:
    top, left, right, bottom, row = 22, 34, 58, 26, 24.0
    values = per_class_accuracies(per_class)
    known = [v for v in values if v is not None]
    plot_w = width - left - right

    def x_of(value: float) -> float:
        return plot_w * max(0.0, min(1.0, value))

    bars = [
        ClassBar(
            top + i * row + row * 0.15,
            x_of(value) if value is not None else 0.0,
            label,
            value,
            "—" if value is None else f"{value * 100:.1f}%",
            threshold is not None and value is not None and value < threshold,
        )
        for i, (label, value) in enumerate(zip(KATAKANA, values, strict=True))
    ]
    marks = [k * CLASS_AXIS_STEP for k in range(round(1 / CLASS_AXIS_STEP) + 1)]
    ticks = [(left + x_of(mark), axis_label(mark, CLASS_AXIS_STEP)) for mark in marks]
    pass_x = left + x_of(threshold) if threshold is not None else None
    pass_text = f"{threshold * 100:.1f}%" if threshold is not None else ""
    if known:
        pairs = [(v, lab) for lab, v in zip(KATAKANA, values, strict=True) if v is not None]
        worst, best = min(pairs), max(pairs)
        summary = f"{worst[1]} {worst[0] * 100:.1f}% – {best[1]} {best[0] * 100:.1f}%"
    else:
        summary = ""
    height = int(top + row * len(KATAKANA) + bottom)
    return ClassBars(width, height, left, top, plot_w, row, row * 0.7, bars, ticks, pass_x, pass_text, summary)


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


def heatmap(confusion: Any, *, cell: float = 34, offset: int = 30) -> Heatmap | None:
    """Rows are true classes, columns predictions; each row is shaded by its own share, so the small
    classes (800 images) read as clearly as the large ones (1,300). Cells of 34 units hold a
    four-digit count at 12 px: the map is drawn at its own size, never shrunk (see the template)."""
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
class HistoryPoint:
    """One scored submission in 「識別精度の変遷」."""

    label: str  # short x-axis label, e.g. "#12 11/24"
    value: float
    current: bool = False
    date: str = ""  # full local date and time with the zone, for the data table
    file: str = ""
    submission_id: int | None = None
    note: str = ""  # what the trainee changed, as they wrote it at upload


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    value: float
    label: str  # e.g. "#12 11/24"
    current: bool
    show_label: bool = True  # x label drawn (thinned out when points crowd)
    show_value: bool = True  # value drawn above the point
    date: str = ""
    file: str = ""
    submission_id: int | None = None
    note: str = ""


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
    pass_y: float | None = None
    pass_text: str = ""
    x_label_y: float = 0.0
    y_max: float = 1.0

    @property
    def zoomed(self) -> bool:
        """The y axis starts above 0 %: the page says so beside the chart."""
        return self.y_min > 0


def line_chart(
    history: Sequence[tuple[str, float, bool] | HistoryPoint],
    threshold: float | None = None,
    *,
    width: int = 420,
    height: int = 250,
) -> LineChart | None:
    """「識別精度の変遷」: accuracy per scored submission, oldest first.

    The y axis fits the scores and the pass line (even steps), so progress between 0.95 and 0.99 —
    where trainees spend most of the course — stays visible. Every point carries its value; x labels
    (submission and date) are thinned to what fits, the data table below lists them all.
    """
    if not history:
        return None
    items = [h if isinstance(h, HistoryPoint) else HistoryPoint(h[0], h[1], h[2]) for h in history]
    left, top, right, bottom = 44, 22, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high, step = nice_axis([h.value for h in items] + ([threshold] if threshold is not None else []))
    span = (high - low) or 1.0

    def y_of(value: float) -> float:
        return top + plot_h * (1 - (max(low, min(high, value)) - low) / span)

    n = len(items)
    step_x = plot_w / max(1, n - 1)
    every = max(1, math.ceil(n / 4))  # about five x labels ("#123 11/24" at 13 units) fit across 420 units
    value_every = max(1, math.ceil(n / 10))
    points = []
    for i, h in enumerate(items):
        x = left + (i * step_x if n > 1 else plot_w / 2)
        edge = i in (0, n - 1)
        point = Point(
            x, y_of(h.value), h.value, h.label, h.current,
            show_label=edge or h.current or i % every == 0,
            show_value=edge or h.current or i % value_every == 0,
            date=h.date, file=h.file, submission_id=h.submission_id, note=h.note,
        )  # fmt: skip
        points.append(point)
    n_ticks = round((high - low) / step) + 1
    ticks = [(y_of(low + k * step), axis_label(low + k * step, step)) for k in range(n_ticks)]
    polyline = " ".join(f"{p.x:.1f},{p.y:.1f}" for p in points)
    pass_y = y_of(threshold) if threshold is not None else None
    pass_text = f"{threshold * 100:.1f}%" if threshold is not None else ""
    return LineChart(
        width, height, left, top, plot_w, plot_h, points, polyline, ticks, low, pass_y, pass_text, top + plot_h + 16,
        high,
    )  # fmt: skip


def overfit_gap(validation: float | None, test: float | None) -> float | None:
    """Validation minus test accuracy in percentage points (positive: validation looks better)."""
    if validation is None or test is None:
        return None
    return (validation - test) * 100


OVERFIT_POINTS = 3.0  # a validation score this many points above the test score suggests overfitting


def count_step(peak: int, max_ticks: int = 5) -> int:
    """A step of 1, 2 or 5 × 10ⁿ giving at most ``max_ticks`` whole-number ticks from 0 to at least
    ``peak``. Rounding fractions of the peak instead gave repeated labels ("1, 0, 0" for a peak of 1)."""
    magnitude = 1
    while True:
        for m in (1, 2, 5):
            step = m * magnitude
            if math.ceil(max(peak, 1) / step) <= max_ticks - 1:
                return step
        magnitude *= 10


@dataclass(frozen=True)
class CountBar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    show_label: bool = True
    show_value: bool = True
    passed: bool = False  # the whole range is at or above the pass mark


@dataclass(frozen=True)
class CountRows:
    """Counts per range as horizontal bars (trainees per best-accuracy range), highest range on
    top, the range written left of its bar and the count at its end: every label fits a phone."""

    width: int
    height: int
    left: int
    top: int
    plot_w: float
    bar_h: float
    bars: list[CountBar]
    ticks: list[tuple[float, str]]  # (x, label)
    pass_y: float | None
    pass_text: str

    def value_at(self, bar: CountBar) -> float:
        """Where a bar's count is printed: just past its end (the pass line runs across, not along)."""
        return self.left + bar.width + 4


def count_rows(
    pairs: Sequence[tuple[str, int]],
    edges: Sequence[float] | None = None,
    threshold: float | None = None,
    *,
    width: int = 420,
) -> CountRows:
    """``pairs`` lowest range first, as :func:`app.services.leaderboard.histogram` gives them; with
    the ``edges`` of the ranges, the pass line is drawn where the threshold falls."""
    top, left, right, bottom, row = 24, 74, 40, 26, 24.0
    plot_w = width - left - right
    peak = max((n for _, n in pairs), default=0)
    step = count_step(peak)
    high = step * max(1, math.ceil(peak / step))
    n = len(pairs)
    bars = []
    for r, (label, value) in enumerate(reversed(pairs)):
        i = n - 1 - r  # index in ``pairs`` (lowest first)
        passed = edges is not None and threshold is not None and edges[i] >= threshold
        bars.append(
            CountBar(left, top + r * row + row * 0.15, plot_w * value / high, row * 0.7, label, value, passed=passed)
        )
    ticks = [(left + plot_w * k * step / high, f"{k * step}") for k in range(high // step + 1)]
    pass_y = None
    if edges is not None and threshold is not None and len(edges) == n + 1:
        for i in range(n):
            low, up = edges[i], edges[i + 1]
            if low <= threshold < up or (i == n - 1 and threshold >= up):
                share = min(1.0, (threshold - low) / (up - low))
                pass_y = top + (n - 1 - i) * row + (1 - share) * row
                break
    pass_text = f"{threshold * 100:.1f}%" if threshold is not None else ""
    return CountRows(width, int(top + row * n + bottom), left, top, plot_w, row * 0.7, bars, ticks, pass_y, pass_text)


@dataclass(frozen=True)
class CountColumns:
    """Counts over time as vertical bars (submissions per day): whole-number axis, values on the
    bars and dates under them, thinned to what fits a phone; the data table lists every day."""

    width: int
    height: int
    left: int
    top: int
    plot_w: float
    plot_h: float
    bars: list[CountBar]
    ticks: list[tuple[float, str]]  # (y, label)
    x_label_y: float


def count_columns(pairs: Sequence[tuple[str, int]], *, width: int = 420, height: int = 240) -> CountColumns:
    top, left, right, bottom = 22, 40, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((n for _, n in pairs), default=0)
    step = count_step(peak)
    high = step * max(1, math.ceil(peak / step))
    n = max(1, len(pairs))
    slot = plot_w / n
    label_every = max(1, math.ceil(n / 6))  # "11/24" at 11 px: about six fit across a phone
    value_every = max(1, math.ceil(n / 12))
    bars = []
    for i, (label, value) in enumerate(pairs):
        h = plot_h * value / high
        edge = i in (0, len(pairs) - 1)
        bars.append(
            CountBar(
                left + i * slot + slot * 0.1, top + plot_h - h, slot * 0.8, h, label, value,
                show_label=edge or i % label_every == 0,
                show_value=value == peak or i % value_every == 0,
            )
        )  # fmt: skip
    ticks = [(top + plot_h * (1 - k * step / high), f"{k * step}") for k in range(high // step + 1)]
    return CountColumns(width, height, left, top, plot_w, plot_h, bars, ticks, top + plot_h + 18)
