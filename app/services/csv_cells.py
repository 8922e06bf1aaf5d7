"""Cells of the CSV files staff download (leaderboard, similarity pairs, the bulk zip's index).

A spreadsheet opens a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage
return before one) as a formula: a trainee named ``=HYPERLINK("http://evil", "click")`` would be a
live link, or worse, on the instructor's screen. Every text a trainee chose goes through
:func:`csv_cell`, which keeps it as text with a leading apostrophe, as spreadsheets themselves do.
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """``value`` as CSV text that no spreadsheet reads as a formula (None is empty)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
