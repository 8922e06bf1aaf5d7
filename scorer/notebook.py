"""Turn a Jupyter notebook into plain Python source that runs the way its cells ran, line for line.

Trainees write in Jupyter or Colab, where ``%matplotlib inline`` and ``!pip install`` are everyday
lines; plain Python refuses them. Rather than fail the submission, IPython-only lines are dropped and
the trainee is told. Every generated line maps back to (cell, line), so an error can be reported where
the trainee will look for it. Only the stdlib ``json`` module is used: the runtime has no nbformat.

Decisions:

- Cells are numbered 1, 2, … among *all* cells, markdown included, counted from the top: that is
  the cell a trainee finds by counting in Jupyter (which shows no numbers of its own), while the
  execution count ``In [7]`` is missing on unexecuted cells and stale after re-runs; :meth:`describe`
  adds ``In [n]`` when the notebook has it.
- ``%time stmt`` and ``%timeit [options] stmt`` keep ``stmt`` and run it once: ``%time`` assigns in
  IPython too, and running a timed statement once is the cheapest faithful choice. ``%%time``,
  ``%%timeit``, ``%%capture`` and ``%%prun`` cells keep their body (run once) and lose the magic line.
  None of these counts as skipped: the notice about dropped lines names only what did not run.
- Other line magics, shell escapes (``!cmd``, ``x = !cmd``, ``y = %sx cmd``) and help (``obj?``) are
  dropped. A dropped line inside a block becomes ``pass`` at its indentation so the block still
  compiles; at top level it becomes an empty line.
- Other cell magics (``%%bash``, ``%%html``, ``%%writefile`` …) are not Python: the whole cell is left
  out. A ``%%writefile`` file will therefore not exist; the notices say so.
- A line that continues a statement (inside brackets, a multi-line string or after ``\\``) is never
  treated as a magic: ``%d items`` inside a docstring stays.
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from scorer.errors import ErrorCode, ScoringError
from scorer.notices import Notice
from scorer.static_check import check_source_size

_PYTHON_CELL_MAGICS: Final = frozenset({"time", "timeit", "capture", "prun"})
_CELL_MAGIC: Final = re.compile(r"%%(\w+)")
_LINE_MAGIC: Final = re.compile(r"%(\w+)")
_RUN_MAGIC: Final = re.compile(r"%(run|load)\b")
_ASSIGNED_ESCAPE: Final = re.compile(r"[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*[!%]")
_HELP: Final = re.compile(r"(\?{1,2}[A-Za-z_][\w.]*|[A-Za-z_][\w.]*\?{1,2})\s*")
_KEEPS_STATEMENT: Final = re.compile(r"%(time|timeit)\b")  # their statement still runs
_TIMEIT_OPTIONS: Final = re.compile(r"(?:-[nrpc]\s*\d+\s+|-[qo]\s+)*")


@dataclass(frozen=True)
class NotebookSource:
    """Python source made from a notebook's code cells, and the way back to cells.

    ``line_map[i]`` is (code cell number, line within that cell) of generated line ``i + 1``.
    """

    source: str
    line_map: tuple[tuple[int, int], ...]
    execution_counts: dict[int, int] = field(default_factory=dict)  # cell number -> In [n]
    notices: list[Notice] = field(default_factory=list)

    def locate(self, line: int) -> tuple[int, int]:
        """(cell, line in cell) of a 1-based line of :attr:`source`.

        A line past the end (a syntax error at end of file) maps to the last line; a notebook with no
        code maps everything to (0, line).
        """
        if not self.line_map:
            return (0, line)
        index = min(max(line, 1), len(self.line_map)) - 1
        return self.line_map[index]

    def describe(self, line: int) -> str:
        """``cell 3 (In [7]), line 2``: what a trainee can find in Jupyter."""
        cell, in_cell = self.locate(line)
        count = self.execution_counts.get(cell)
        label = f"cell {cell} (In [{count}])" if count is not None else f"cell {cell}"
        return f"{label}, line {in_cell}"


def notebook_to_source(raw: bytes, name: str) -> NotebookSource:
    """Parse ``raw`` (the .ipynb bytes) into :class:`NotebookSource`; NOTEBOOK_UNREADABLE if it is not
    a version-4 notebook, ENTRY_TOO_LARGE if its code cells hold more source than an entry may (they
    are measured before they are converted: converting is linear but not cheap). ``name`` is only
    used in messages."""
    cells = _code_cells(raw, name)
    check_source_size(sum(len(text.encode("utf-8")) for _, text, _ in cells), name)
    lines: list[str] = []
    line_map: list[tuple[int, int]] = []
    counts: dict[int, int] = {}
    dropped_in: list[int] = []
    notices: list[Notice] = []
    for number, text, count in cells:
        if count is not None:
            counts[number] = count
        cell_lines, changed = _convert_cell(text, number, notices)
        if changed:
            dropped_in.append(number)
        for i, line in enumerate(cell_lines, start=1):
            lines.append(line)
            line_map.append((number, i))
    if dropped_in:
        shown = ", ".join(str(n) for n in dropped_in)
        notices.append(
            Notice(
                "magics_dropped",
                f"IPython のマジックコマンドやシェルコマンド（%…、!…）を飛ばしました（セル {shown}）。"
                "!pip install などは採点環境では実行されません。",
                f"Skipped IPython magics and shell commands (%…, !…) in cell(s) {shown}; "
                "!pip install and the like do not run in the scoring environment.",
            )
        )
    source = "".join(line + "\n" for line in lines)
    return NotebookSource(source, tuple(line_map), counts, notices)


def _unreadable(name: str, reason: str) -> ScoringError:
    return ScoringError(ErrorCode.NOTEBOOK_UNREADABLE, params={"name": name, "reason": reason})


def _code_cells(raw: bytes, name: str) -> list[tuple[int, str, int | None]]:
    """(number among all cells, source text, execution count) of each code cell, in order."""
    try:
        nb: Any = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise _unreadable(name, "not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise _unreadable(name, f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError as exc:
        raise _unreadable(name, "JSON nested too deeply") from exc
    if not isinstance(nb, dict):
        raise _unreadable(name, "not a notebook (no top-level object)")
    version = nb.get("nbformat")
    if "worksheets" in nb or (isinstance(version, int) and version < 4):
        raise _unreadable(name, f"nbformat {version} is too old; version 4 is needed")
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise _unreadable(name, "no list of cells")
    out: list[tuple[int, str, int | None]] = []
    for index, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            raise _unreadable(name, f"cell {index} is not an object")
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise _unreadable(name, f"cell {index} has a source that is not text")
        count = cell.get("execution_count")
        out.append((index, source, count if isinstance(count, int) else None))
    return out


def _split_lines(text: str) -> list[str]:
    """Lines as Python counts them (only \\n, \\r\\n and \\r end a line), without a phantom last one."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _convert_cell(text: str, number: int, notices: list[Notice]) -> tuple[list[str], bool]:
    """The cell's lines with IPython syntax removed, and whether anything was removed."""
    lines = _split_lines(text)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and (m := _CELL_MAGIC.match(lines[first])):
        if m.group(1) not in _PYTHON_CELL_MAGICS:
            notices.append(_dropped_cell_notice(number, m.group(1), lines[first]))
            return [], False
        lines[first] = ""  # %%time and the like: the body runs, nothing is skipped
    converted, dropped = _convert_lines(lines)
    for i in dropped:
        if _RUN_MAGIC.match(lines[i].lstrip()):
            notices.append(_run_notice(number, lines[i].strip()))
    skipped = [
        i for i in dropped if not _KEEPS_STATEMENT.match(lines[i].lstrip()) or converted[i].strip() in ("", "pass")
    ]
    return converted, bool(skipped)


def _run_notice(number: int, line: str) -> Notice:
    return Notice(
        "run_skipped",
        f"セル {number} の「{line}」は実行されません。そのコードが必要なら import するか、"
        "submit_katakana に書き写してください。",
        f"'{line}' in cell {number} is not run; import that code or copy it into submit_katakana.",
    )


def _dropped_cell_notice(number: int, magic: str, magic_line: str) -> Notice:
    if magic in ("writefile", "file"):
        target = next((w for w in magic_line.split()[1:] if not w.startswith("-")), "?")
        return Notice(
            "writefile_skipped",
            f"セル {number} の %%writefile は実行されないため、{target} は作られません。"
            f"{target} が必要なら zip に入れてください。",
            f"Cell {number} (%%writefile) is not run, so {target} is not created; "
            f"put {target} in the zip if your code needs it.",
        )
    return Notice(
        "cell_skipped",
        f"セル {number} は %%{magic} のセルなので飛ばしました（Python ではないため）。",
        f"Skipped cell {number}: a %%{magic} cell is not Python.",
    )


def _convert_lines(lines: list[str]) -> tuple[list[str], list[int]]:
    """The converted lines, and the indexes of the lines that were IPython syntax."""
    replaced = {i: r for i, line in enumerate(lines) if (r := _replacement(line)) is not None}
    if not replaced:
        return lines, []
    out = [replaced.get(i, line) for i, line in enumerate(lines)]
    for i in _continuation_lines(out):
        if i in replaced:
            out[i] = lines[i]  # part of a string or a bracketed expression: Python, not IPython
            del replaced[i]
    return out, sorted(replaced)


def _replacement(line: str) -> str | None:
    """What replaces an IPython line (``None``: plain Python, keep it)."""
    body = line.lstrip()
    indent = line[: len(line) - len(body)]
    placeholder = f"{indent}pass" if indent else ""
    if body.startswith("%") and (m := _LINE_MAGIC.match(body)):
        rest = body[m.end() :].strip()
        if m.group(1) == "time" and rest:
            return indent + rest
        if m.group(1) == "timeit":
            options = _TIMEIT_OPTIONS.match(rest + " ")
            rest = rest[options.end() :].strip() if options else rest
            return indent + rest if rest else placeholder
        return placeholder
    if body.startswith(("!", "%")) or _ASSIGNED_ESCAPE.match(body) or _HELP.fullmatch(body):
        return placeholder
    return None


def _continuation_lines(lines: Sequence[str]) -> set[int]:
    """0-based indexes of lines that continue a statement begun on an earlier line.

    If the text cannot be tokenized (say a shell line held an unbalanced quote), nothing is treated
    as a continuation: the plain line-by-line reading is right nearly always.
    """
    found: set[int] = set()
    text = "".join(line + "\n" for line in lines)
    start: int | None = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                continue
            if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                if start is not None:
                    found.update(range(start, tok.end[0]))  # rows start+1..end, 0-based
                start = None
            elif start is None:
                start = tok.start[0]
    except (tokenize.TokenError, SyntaxError):
        return set()
    return found
