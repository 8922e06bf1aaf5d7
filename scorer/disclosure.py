r"""What a run on the hidden test set may reveal: the score, or a stable code plus a short excerpt.

Everything a submission emits during a run — its output, its exception text and traceback, any
parameter it gets into a report — is data the trainee chose, and the hidden images are in its
memory. Left whole, that output is a channel that carries the test set out (an exception message
holding the images base64-encoded went out verbatim through the page, the log download and the
email). So the trainee sees at most ``excerpt_bytes`` of it, counted over the log, the traceback and
every parameter together, plus a fixed line saying the rest is withheld and where full logs are
shown: the free pre-flight (public images only) and ``python -m scorer run`` on one's own data.

Instructors and admins get more (``stored_bytes``), still bounded, so a stored row stays small.

The same bytes must also be *storable*: a NUL (``print("A\x00B")``) is refused by PostgreSQL's text
columns, a lone surrogate (``"\ud800"`` in an exception sent as JSON) cannot be encoded as UTF-8 for
SQLite, and control characters rewrite what a terminal or a page shows. A result the database
refuses cannot be recorded, and a run nobody records is neither the trainee's score nor their
failure. So every string of a report, whatever its field, is made storable here too
(:func:`storable_text`).

Both happen in :func:`disclose`, where a report leaves the scorer (the run skeleton in
scorer/pipeline.py calls it last, for the pre-flight and for scoring alike); the cap is applied
again by whoever stores or shows a log (``cap_visible``), which is idempotent on text already capped.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from scorer.errors import Blame
from scorer.report import Report, ScoreReport

KIB = 1024

DEFAULT_EXCERPT_BYTES = 2 * KIB
DEFAULT_STORED_BYTES = 64 * KIB
PARAM_VALUE_BYTES = 200  # one parameter shown in a message: enough for "ValueError: shapes (3,) and (4,)…"
PARAM_KEYS = 12  # a report never needs more parameters than this

WITHHELD_JA = (
    "［残りの出力（{withheld} バイト以上）は表示しません。"
    "隠しテストセットでの実行の出力は、テスト画像が外に出ないよう、ここまでに限っています。全文のログは、アップロード時の無料の事前チェック（公開画像で実行）か、"
    "手元の python -m scorer run（自分のデータで実行）で確認できます。］"
)
WITHHELD_EN = (
    "[The rest of the output ({withheld} bytes or more) is withheld. "
    "Output of a run on the hidden test set is limited to this excerpt so the test images cannot leave with it. "
    "The free pre-flight at upload (public images) and "
    "python -m scorer run on your own data show full logs.]"
)
MIDDLE_MARK = "\n… [{dropped} bytes or more withheld] …\n"
# Bytes of our own wording an excerpt may add to the trainee's ``excerpt_bytes``: the two withheld
# lines and the middle mark, with room for the numbers. Used to recognise an already-capped text.
RESERVED_BYTES = len((WITHHELD_JA + WITHHELD_EN + MIDDLE_MARK).encode("utf-8")) + 64


@dataclass(frozen=True)
class Disclosure:
    """How much of a hidden-set run's trainee-controlled output leaves the scorer.

    ``excerpt_bytes`` None means everything (``python -m scorer run --full-log``, local debugging).
    """

    excerpt_bytes: int | None = DEFAULT_EXCERPT_BYTES
    stored_bytes: int = DEFAULT_STORED_BYTES


def _utf8_head(data: bytes, size: int) -> str:
    return data[: max(0, size)].decode("utf-8", "ignore")  # "ignore": a cut character never grows the text


def _utf8_tail(data: bytes, size: int) -> str:
    return data[len(data) - max(0, size) :].decode("utf-8", "ignore") if size > 0 else ""


def head_and_tail(text: str, budget: int) -> tuple[str, int]:
    """At most ``budget`` bytes of ``text`` (its start and its end), and how many bytes were dropped."""
    data = text.encode("utf-8", "replace")
    if len(data) <= budget:
        return text, 0
    head = budget // 3  # the first prints, and (at the end) the traceback's last lines
    tail = budget - head
    kept_head, kept_tail = _utf8_head(data, head), _utf8_tail(data, tail)
    dropped = len(data) - len(kept_head.encode()) - len(kept_tail.encode())
    return kept_head + MIDDLE_MARK.format(dropped=dropped) + kept_tail, dropped


def withheld_notice(withheld: int) -> str:
    return WITHHELD_JA.format(withheld=withheld) + "\n" + WITHHELD_EN.format(withheld=withheld)


def excerpt(text: str, budget: int) -> str:
    """``text`` cut to ``budget`` bytes, with the withheld notice when anything was cut."""
    kept, dropped = head_and_tail(text, budget)
    if not dropped:
        return text
    return kept.rstrip("\n") + "\n" + withheld_notice(dropped) + "\n"


def cap_visible(text: str | None, budget: int) -> str:
    """Bound a log about to be stored or shown: unchanged when within ``budget`` plus our own wording.

    Idempotent on what ``excerpt`` produced, so the storage boundary and the pages can apply it
    again without stacking notices; anything larger (a row stored before the policy, say) is cut.
    """
    if not text:
        return ""
    if len(text.encode("utf-8", "replace")) <= budget + RESERVED_BYTES:
        return text
    return excerpt(text, budget)


def cap_params(params: dict[str, Any], value_bytes: int = PARAM_VALUE_BYTES) -> dict[str, str]:
    """Parameters as short strings: every value is cut to ``value_bytes``, at most PARAM_KEYS kept."""
    out: dict[str, str] = {}
    for key, value in list(params.items())[:PARAM_KEYS]:
        name = _utf8_head(str(key).encode("utf-8", "replace"), 40)
        text = value if isinstance(value, str) else _safe_str(value)
        data = text.encode("utf-8", "replace")
        out[name] = text if len(data) <= value_bytes else _utf8_head(data, value_bytes - 3) + "..."
    return out


def params_bytes(params: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in params.items())


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


# Characters no column should receive: C0 controls but tab, newline and carriage return (progress
# bars rewrite a line with it); DEL and the C1 controls; and lone surrogates (never valid UTF-8; a
# well-formed pair of escapes in JSON arrives as one character and is kept).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def storable_text(text: str) -> str:
    r"""``text`` as every database and page can hold it: each unstorable character as a visible
    escape, the way Python's repr shows it (``A\x00B``), so a trainee still sees what was printed."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(_escaped, text)


def _storable(value: Any) -> Any:
    """``value`` with every string in it (dict keys, list items, dataclass fields) made storable.

    Generic on purpose: a field added to a report later is covered without anyone remembering it.
    Mutable dataclasses are changed in place, frozen ones replaced; anything else (numbers, arrays,
    enums whose text is ours) is returned as it is.
    """
    if isinstance(value, str):
        return storable_text(value)
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if all(isinstance(v, int | float) for v in value):  # a row of numbers (a confusion matrix's)
            return value
        items = [_storable(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    shape = _SHAPES.get(type(value)) or _dataclass_shape(type(value))
    if shape is None:
        return value
    names, frozen = shape
    changed = {}
    for name in names:
        old = getattr(value, name)
        new = _storable(old)
        if new is not old:
            changed[name] = new
    if changed and frozen:
        return dataclasses.replace(value, **changed)
    for name, new in changed.items():
        setattr(value, name, new)
    return value


_SHAPES: dict[type, tuple[tuple[str, ...], bool]] = {}


def _dataclass_shape(cls: type) -> tuple[tuple[str, ...], bool] | None:
    """A dataclass's field names and whether it is frozen (None: not a dataclass); kept per class."""
    if not dataclasses.is_dataclass(cls):
        return None
    shape = tuple(f.name for f in dataclasses.fields(cls)), bool(cls.__dataclass_params__.frozen)  # type: ignore[attr-defined]
    _SHAPES[cls] = shape
    return shape


def disclose(report: Report, disclosure: Disclosure | None) -> Report:
    """The report as it may leave the scorer: every string storable and, for a run on the hidden set
    (``disclosure`` given), its trainee-controlled output bounded.

    ``disclosure`` None: a run on public images (the pre-flight) keeps its whole log; nothing of the
    hidden set is in its memory. On the hidden set, a run blamed on the server (its upload given
    back) keeps no trainee output at all. Otherwise the trainee-visible log, traceback included,
    and the error's parameters share ``excerpt_bytes``; ``staff_log`` keeps up to ``stored_bytes``
    of the same text for instructors and admins.
    """
    report = _storable(report)
    if disclosure is not None and isinstance(report, ScoreReport):
        _bound(report, disclosure)
    return report


def _bound(report: ScoreReport, disclosure: Disclosure) -> None:
    error = report.error
    text = report.facts.log
    if error is not None and error.code.blame is Blame.SERVER:
        report.facts.log = ""
        report.staff_log = ""
        error.params = {}
        return
    report.staff_log = excerpt(text, disclosure.stored_bytes)
    if error is not None and report.facts.run_id:
        error.detail = ""  # a run's traceback is in the log (see the pipeline's run facts)
    budget = disclosure.excerpt_bytes
    if budget is None:  # python -m scorer run --full-log
        report.facts.log = text
        return
    if error is not None:
        error.params = cap_params(error.params)
        if params_bytes(error.params) > budget // 2:
            error.params = cap_params(error.params, value_bytes=max(16, budget // (4 * max(1, len(error.params)))))
        budget -= params_bytes(error.params)
    report.facts.log = excerpt(text, max(0, budget))
