"""What a report may carry out of the scorer: the excerpt's bounds, its notice, its idempotent
re-capping, and strings every database can store."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import pytest

from scorer.disclosure import (
    MIDDLE_MARK,
    RESERVED_BYTES,
    WITHHELD_EN,
    Disclosure,
    cap_params,
    cap_visible,
    disclose,
    excerpt,
    head_and_tail,
    params_bytes,
    storable_text,
    withheld_notice,
)
from scorer.errors import ErrorCode, ScoringError
from scorer.notices import Notice
from scorer.report import CheckReport, RunFacts, ScoreReport
from scorer.similarity import FileHash


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


def test_unstorable_characters_become_visible_escapes_and_text_stays_whole() -> None:
    assert storable_text("A\x00B") == "A\\x00B"
    assert storable_text("boom \ud800 \udfff") == "boom \\ud800 \\udfff"
    assert storable_text("\x1b[31mred\x7f\x85") == "\\x1b[31mred\\x7f\\x85"
    kept = "tabs\tnew\nlines\r\nカタカナ 😀 \u00e9"  # text, including a real pair outside the BMP
    assert storable_text(kept) is kept


def _dirty_report(kind: type[ScoreReport] | type[CheckReport], text: str) -> ScoreReport | CheckReport:
    error = ScoringError(ErrorCode.PREDICT_EXCEPTION, {text: text, "n": 3}, detail=text)
    facts = RunFacts(log=text, run_id="r1")
    notices = [Notice("both_entries", text, text)]
    if kind is CheckReport:
        return CheckReport(ok=False, stage="smoke", error=error, facts=facts, notices=notices, entry=text)
    return ScoreReport(
        status="failed", error=error, metrics=None, facts=facts, runtime={}, limits={}, notices=notices, entry=text,
        staff_log=text, file_hashes=[FileHash("code", text, "0" * 64)],
    )  # fmt: skip


@pytest.mark.parametrize("kind", [ScoreReport, CheckReport])
@pytest.mark.parametrize("disclosure", [Disclosure(), None], ids=["hidden set", "public images"])
def test_every_string_of_a_report_leaves_storable(
    kind: type[ScoreReport] | type[CheckReport], disclosure: Disclosure | None
) -> None:
    """Whatever field a trainee's bytes reach (log, traceback, parameters and their keys, notices,
    entry name, file names), the report that leaves holds only storable text."""
    report = disclose(_dirty_report(kind, "A\x00B\ud800"), disclosure)
    fields = [
        report.to_json(),
        getattr(report, "staff_log", ""),
        [h.to_json() for h in getattr(report, "file_hashes", [])],
    ]
    texts = list(_strings(fields))
    assert len(texts) > 10
    for text in texts:
        text.encode("utf-8")  # raises on a lone surrogate
        assert "\x00" not in text
    assert "A\\x00B\\ud800" in report.log  # what was printed, as visible escapes
    assert report.error is not None and report.error.params["n"] in (3, "3")  # not text: untouched


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
