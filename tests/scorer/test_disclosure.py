"""What a hidden-set run may reveal: the excerpt's bounds, its notice, and its idempotent re-capping."""

from __future__ import annotations

import base64
import os

import pytest

from scorer.disclosure import (
    MIDDLE_MARK,
    RESERVED_BYTES,
    WITHHELD_EN,
    cap_params,
    cap_visible,
    excerpt,
    head_and_tail,
    params_bytes,
    withheld_notice,
)


def test_short_text_is_left_whole() -> None:
    text = "predicting 500 images\nok\n"
    assert excerpt(text, 2048) == text
    assert cap_visible(text, 2048) == text


@pytest.mark.parametrize("budget", [0, 1, 100, 2048, 10_000])
def test_long_text_keeps_at_most_the_budget_of_its_own_bytes(budget: int) -> None:
    blob = base64.b64encode(os.urandom(300_000)).decode()
    out = excerpt(blob, budget)
    _, dropped = head_and_tail(blob, budget)
    ours = (withheld_notice(dropped), MIDDLE_MARK.format(dropped=dropped))
    theirs = out
    for text in ours:
        assert text.strip() in out
        theirs = theirs.replace(text.strip(), "")
    assert len(theirs.replace("\n", "").encode()) <= budget
    assert dropped >= len(blob) - budget
    assert "python -m scorer run" in out and "withheld" in out
    assert len(out.encode()) <= budget + RESERVED_BYTES


def test_start_and_end_are_kept_the_middle_is_not() -> None:
    text = "FIRST-LINE\n" + "x" * 50_000 + "\nMIDDLE\n" + "y" * 50_000 + "\nValueError: LAST-LINE"
    out = excerpt(text, 2048)
    assert out.startswith("FIRST-LINE")
    assert "LAST-LINE" in out
    assert "MIDDLE" not in out


def test_multibyte_text_is_never_cut_inside_a_character() -> None:
    text = "アイウエオ" * 10_000
    out = excerpt(text, 1001)
    assert "\ufffd" not in out
    kept, _ = head_and_tail(text, 1001)
    assert len(kept.encode()) <= 1001 + len("\n… [ bytes or more withheld] …\n".encode()) + 10


def test_the_notice_is_in_both_languages() -> None:
    out = excerpt("z" * 10_000, 100)
    assert "表示しません" in out
    assert WITHHELD_EN.split("(")[0] in out


def test_capping_again_does_not_stack_notices_and_still_bounds_old_rows() -> None:
    once = excerpt("q" * 100_000, 2048)
    assert cap_visible(once, 2048) == once
    assert cap_visible(cap_visible(once, 2048), 2048) == once
    old_row = "r" * 5_000_000  # a log stored before the policy existed
    capped = cap_visible(old_row, 2048)
    assert len(capped.encode()) <= 2048 + RESERVED_BYTES
    assert cap_visible(None, 2048) == ""


def test_parameters_are_short_strings_whatever_they_were() -> None:
    class Raising:
        def __str__(self) -> str:
            raise RuntimeError("no")

    params = cap_params({"reason": "A" * 1_000_000, "count": 3, "odd": Raising(), **{f"k{i}": i for i in range(40)}})
    assert params["reason"].endswith("...") and len(params["reason"].encode()) <= 200
    assert params["count"] == "3"
    assert params["odd"] == "<Raising>"
    assert len(params) <= 12
    assert params_bytes(params) <= 12 * (40 + 200)
