"""Chart geometry: axes that fit the data (with the pass line), values printed, every point labelled
in the data behind the chart."""

from __future__ import annotations

from app.web import charts


def test_axis_fits_the_data_in_even_steps() -> None:
    low, high, step = charts.nice_axis([0.87, 0.93, 0.978])
    assert (low, high, step) == (0.85, 1.0, 0.05)  # not 0-100 %, which flattens 85-98 % bars
    assert charts.nice_axis([0.5, 0.6])[0] <= 0.48
    assert charts.nice_axis([0.0, 0.1]) == (0.0, 0.1, 0.02)


def test_class_bars_print_every_value_and_the_pass_line() -> None:
    values = [0.85 + i * 0.01 for i in range(15)]
    chart = charts.class_bars(values, threshold=0.9)
    assert [b.text for b in chart.bars][:3] == ["85.0%", "86.0%", "87.0%"]
    assert [b.below_pass for b in chart.bars][:6] == [True] * 5 + [False]
    assert chart.pass_x is not None and chart.left < chart.pass_x < chart.left + chart.plot_w
    assert [label for _, label in chart.ticks] == ["80%", "85%", "90%", "95%", "100%"]
    widths = [b.width for b in chart.bars]
    assert widths == sorted(widths) and widths[-1] > 3 * widths[0]  # differences are visible
    assert "ア 85.0%" in chart.summary and "ソ 99.0%" in chart.summary


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
