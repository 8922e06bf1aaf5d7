"""Cells of the staff CSV files: a trainee's text never opens as a formula."""

from __future__ import annotations

import pytest

from app.services.csv_cells import csv_cell


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil")', "+81 3", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"])
def test_a_formula_start_is_kept_as_text(text: str) -> None:
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize(("value", "expected"), [("山田 花子", "山田 花子"), ("a=b", "a=b"), (None, ""), (42, "42")])
def test_other_values_are_unchanged(value: object, expected: str) -> None:
    assert csv_cell(value) == expected
