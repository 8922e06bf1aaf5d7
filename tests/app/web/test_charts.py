"""Chart geometry: axes that fit the data (with the pass line), values printed, every point labelled
in the data behind the chart."""

from __future__ import annotations

import itertools

from app.web import charts


def test_axis_fits_the_data_in_even_steps() -> None:
    low, high, step = charts.nice_axis([0.87, 0.93, 0.978])
    assert (low, high, step) == (0.85, 1.0, 0.05)  # not 0-100 %, which flattens 85-98 % bars
    assert charts.nice_axis([0.5, 0.6])[0] <= 0.48
    assert charts.nice_axis([0.0, 0.1]) == (0.0, 0.1, 0.02)


def test_class_bars_start_at_zero_print_every_value_and_keep_the_pass_line_off_the_values() -> None:
    values = [0.779] + [0.85 + i * 0.01 for i in range(1, 15)]
    chart = charts.class_bars(values, threshold=0.9)
    assert [b.text for b in chart.bars][:3] == ["77.9%", "86.0%", "87.0%"]
    assert [b.below_pass for b in chart.bars][:6] == [True] * 5 + [False]
    assert chart.pass_x is not None and chart.left < chart.pass_x < chart.left + chart.plot_w
    assert [label for _, label in chart.ticks] == ["0%", "20%", "40%", "60%", "80%", "100%"]
    # A bar's length is its value: 77.9 % is about four fifths of 99 %, not a tenth of it.
    for bar in chart.bars:
        assert bar.value is not None
        assert abs(bar.width - chart.plot_w * bar.value) < 1e-6
    # Every value is printed in one column right of the plot, past the pass line.
    columns = {chart.value_at(b) for b in chart.bars}
    assert len(columns) == 1 and columns.pop() > chart.left + chart.plot_w >= chart.pass_x
    assert "ア 77.9%" in chart.summary and "ソ 99.0%" in chart.summary


def test_the_history_says_when_its_axis_does_not_start_at_zero() -> None:
    zoomed = charts.line_chart([("#1", 0.95, False), ("#2", 0.97, True)], threshold=0.9)
    assert zoomed is not None and zoomed.zoomed and 0 < zoomed.y_min < 0.9 <= zoomed.y_max <= 1.0
    full = charts.line_chart([("#1", 0.05, False), ("#2", 0.6, True)])
    assert full is not None and not full.zoomed


def test_history_points_carry_date_and_file_and_the_labels_thin_out() -> None:
    history = [
        charts.HistoryPoint(f"#{i} 11/{i:02d}", 0.8 + i * 0.005, i == 20, f"2026-11-{i:02d} 10:00 JST", f"v{i}.zip", i)
        for i in range(1, 21)
    ]
    chart = charts.line_chart(history, threshold=0.85)
    assert chart is not None
    assert chart.pass_y is not None
    assert [p.file for p in chart.points][:2] == ["v1.zip", "v2.zip"]
    shown = [p.label for p in chart.points if p.show_label]
    assert shown[0] == "#1 11/01" and shown[-1] == "#20 11/20" and 3 <= len(shown) <= 8
    steps = {round(b[0] - a[0], 3) for a, b in zip(chart.ticks, chart.ticks[1:], strict=False)}
    assert len(steps) == 1  # even ticks, not 85/89/92/96


def test_count_axes_are_whole_numbers_in_even_steps() -> None:
    """A peak of one trainee once gave the ticks "0, 0, 1" (fractions of the peak, rounded)."""
    assert [label for _, label in charts.count_columns([("11/20", 1), ("11/21", 1)]).ticks] == ["0", "1"]
    assert [label for _, label in charts.count_columns([("a", 7)]).ticks] == ["0", "2", "4", "6", "8"]
    assert [label for _, label in charts.count_columns([("a", 1234)]).ticks] == ["0", "500", "1000", "1500"]
    assert [label for _, label in charts.count_columns([]).ticks] == ["0", "1"]
    for peak in range(0, 3000, 7):
        labels = [int(label) for _, label in charts.count_columns([("a", peak)]).ticks]
        steps = {b - a for a, b in itertools.pairwise(labels)}
        assert labels[0] == 0 and labels[-1] >= peak and len(steps) == 1 and 2 <= len(labels) <= 5, peak


def test_histogram_rows_print_counts_highest_range_on_top_with_the_pass_line() -> None:
    from app.services.leaderboard import HISTOGRAM_EDGES, histogram

    pairs = histogram([0.93, 0.97, 0.975, 0.99])
    chart = charts.count_rows(pairs, HISTOGRAM_EDGES, threshold=0.95)
    assert [b.label for b in chart.bars][:3] == ["98–100%", "96–98%", "94–96%"]
    assert [b.value for b in chart.bars][:4] == [1, 2, 0, 1]
    assert [b.passed for b in chart.bars][:3] == [True, True, False]  # 94–96 % straddles 95 %
    row_94 = chart.bars[2]
    assert chart.pass_y is not None and row_94.y <= chart.pass_y <= row_94.y + row_94.height
    assert charts.count_rows(pairs).pass_y is None
    assert [label for _, label in chart.ticks] == ["0", "1", "2"]
