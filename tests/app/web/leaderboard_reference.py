"""The leaderboard's order, computed in Python: the reference the SQL ordering is held to.

The site ranks in the database and keeps the ranked board in memory to filter and sort it
(``app.services.leaderboard``); these few lines say the same order in the plainest terms, from the
entries alone, so a test can compare every column and direction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.folding import name_order
from app.services.leaderboard import Entry, SortKey, Standing

_SORT_VALUES: dict[SortKey, Callable[[Entry], Any]] = {
    SortKey.RANK: lambda e: e.rank,
    SortKey.NAME: lambda e: name_order(e.name, e.reading),  # 五十音 by reading (tests/app/test_folding.py)
    SortKey.BEST: lambda e: e.best_accuracy,
    SortKey.LATEST: lambda e: e.latest_accuracy,
    SortKey.SUBMISSIONS: lambda e: e.submissions,
    SortKey.LAST: lambda e: e.last_submission_at,
    SortKey.PASSED: lambda e: e.passed,
}


def arrange(
    entries: list[Entry], *, standing: Standing | None = None, sort: SortKey = SortKey.RANK, descending: bool = False
) -> list[Entry]:
    """Filter by standing and sort by one column, in Python; empty values stay last in both directions.

    The sort is stable over the rank order, so equal values keep the ranking between them.
    """
    chosen = [e for e in entries if standing is None or e.standing == standing]
    value = _SORT_VALUES[sort]
    present = [e for e in chosen if value(e) is not None]
    missing = [e for e in chosen if value(e) is None]
    present.sort(key=value, reverse=descending)
    return present + missing
