"""Find the mistakes that can be found without running the submission: syntax, and a missing predict.

This runs before the sandbox, so a trainee hears about a typo or the old ``func_predict`` in a second,
with a precise message, instead of after queueing for a run. The source is compiled (which reports
every syntax error Python would) and its AST inspected; nothing is ever executed.

The source is refused above MAX_SOURCE_BYTES before anything parses it: compiling costs memory far
out of proportion to the text (``"x=[1,2,3]\n"`` repeated over 2 MB took 1.2 GB), and honest code is
a few tens of KB; what makes an entry larger is weights written into it, which belong in a file. The
caller runs this in a bounded child all the same (scorer.bounded), for what is still expensive below.

Only a missing ``predict`` is an error. A ``predict`` that looks odd (wrong number of arguments,
``async``) only yields a notice: the run itself is the judge, and a false alarm would block a valid
submission.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from scorer.bounded import memory_exhausted
from scorer.errors import ErrorCode, ScoringError, human_bytes
from scorer.notices import Notice

Locate = Callable[[int], tuple[int, int]]

_DETECTED_AT: Final = re.compile(r"\(detected at line (\d+)\)")

# The largest entry source accepted (a .py file, or a notebook's code cells). Expensive code at this
# size compiles in about 150 MiB and 2.5 s; a 784x100 weight matrix written out as text is 600 KB.
MAX_SOURCE_BYTES: Final = 256 * 1024


def check_entry_source(source: str | bytes, filename: str, locate: Locate | None = None) -> list[Notice]:
    """Compile ``source`` and check that it binds ``predict`` at module level; return notices.

    ``source`` may be the raw bytes of a .py file, so that encoding cookies and BOMs are honoured the
    way Python honours them at run time. ``locate`` maps a source line to (cell, line in cell) for
    notebooks, so the SYNTAX_ERROR ``line`` parameter reads ``cell 3, line 2``.
    Raises ENTRY_TOO_LARGE, SYNTAX_ERROR, LEGACY_FUNC_PREDICT or PREDICT_MISSING.
    """
    # A character is at least a byte: only text short enough to pass needs encoding to be measured.
    if isinstance(source, str) and len(source) <= MAX_SOURCE_BYTES:
        check_source_size(len(source.encode("utf-8")), filename)
    else:
        check_source_size(len(source), filename)
    tree = _compile(source, filename, locate)
    bindings = _ModuleBindings()
    bindings.visit(tree)
    notices: list[Notice] = []
    if bindings.calls_get_ipython:
        notices.append(_GET_IPYTHON_NOTICE)
    if "predict" in bindings.nodes:
        last = bindings.nodes["predict"][-1]
        if isinstance(last, ast.FunctionDef | ast.AsyncFunctionDef):
            notices.extend(_signature_notices(last))
        return notices
    # A legacy func_predict is decided here, before any import runs: a star import from the trainee's
    # own package (from common.functions import *) must not hide it behind "predict may come from there".
    if "func_predict" in bindings.nodes:
        raise ScoringError(ErrorCode.LEGACY_FUNC_PREDICT, params={"file": filename})
    if bindings.star_imports:
        notices.append(_star_notice(bindings.star_imports))
        return notices
    raise ScoringError(ErrorCode.PREDICT_MISSING, params={"file": filename})


def check_source_size(size: int, filename: str) -> None:
    """Raise ENTRY_TOO_LARGE for source of ``size`` bytes over MAX_SOURCE_BYTES (before reading it)."""
    if size > MAX_SOURCE_BYTES:
        raise ScoringError(
            ErrorCode.ENTRY_TOO_LARGE,
            params={"file": filename, "size": human_bytes(size), "limit": human_bytes(MAX_SOURCE_BYTES)},
        )


def _where(line: int | None, locate: Locate | None) -> str:
    if line is None:
        return "?"
    if locate is None:
        return f"line {line}"
    cell, in_cell = locate(line)
    return f"cell {cell}, line {in_cell}"


def _where_ja(line: int | None, locate: Locate | None) -> str:
    """:func:`_where` for the Japanese message."""
    if line is None:
        return "?"
    if locate is None:
        return f"{line} 行目"
    cell, in_cell = locate(line)
    return f"セル {cell} の {in_cell} 行目"


# Python names the character only by its code point; trainees know it as a full-width space, typed
# by a Japanese input method that was left on.
_FULL_WIDTH_SPACE: Final = "U+3000"


def _compile(source: str | bytes, filename: str, locate: Locate | None) -> ast.Module:
    """Compile to bytecode (for the errors only the compiler finds, like ``return`` outside a
    function) and parse to an AST; map failures to SYNTAX_ERROR."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are the trainee's business, not errors
            compile(source, filename, "exec", dont_inherit=True)
            return ast.parse(source, filename)
    except SyntaxError as exc:
        reason = exc.msg
        if "codec can't decode" in reason or "unicode error" in reason:
            reason = "the file is not UTF-8 text; save it as UTF-8"
        reason = _DETECTED_AT.sub(lambda m: f"(detected at {_where(int(m.group(1)), locate)})", reason)
        reason_ja = _DETECTED_AT.sub(lambda m: f"（{_where_ja(int(m.group(1)), locate)}で検出）", exc.msg)
        if "codec can't decode" in exc.msg or "unicode error" in exc.msg:
            reason_ja = "ファイルが UTF-8 ではありません。UTF-8 で保存し直してください"
        if _FULL_WIDTH_SPACE in exc.msg:
            reason = (
                "a full-width space (U+3000, typed with the Japanese input on) is not allowed in code; "
                "use a normal space"
            )
            reason_ja = "コードの中に全角スペース（日本語入力のまま打った空白）があります。半角スペースに直してください"
        detail = (exc.text or "").rstrip("\n")
        if detail and exc.offset:
            detail += "\n" + " " * (exc.offset - 1) + "^"
        raise ScoringError(
            ErrorCode.SYNTAX_ERROR,
            params={
                "file": filename,
                "line": _where(exc.lineno, locate),
                "line_ja": _where_ja(exc.lineno, locate),
                "reason": reason,
                "reason_ja": reason_ja,
            },
            detail=detail,
        ) from None
    except ValueError as exc:  # NUL bytes, on Python < 3.12
        raise ScoringError(ErrorCode.SYNTAX_ERROR, params={"file": filename, "line": "?", "reason": str(exc)}) from None
    except (RecursionError, MemoryError):
        if memory_exhausted():
            raise  # the bounded check's memory, not the parser's nesting limit: CHECK_LIMIT
        raise ScoringError(
            ErrorCode.SYNTAX_ERROR,
            params={"file": filename, "line": "?", "reason": "the code is nested too deeply"},
        ) from None


class _ModuleBindings(ast.NodeVisitor):
    """Names bound in the module's own scope, however: ``def``, assignment, import, ``for``, ``with``,
    ``except … as``, walrus, inside module-level ``if``/``try``/loops too. Function, class and lambda
    bodies are separate scopes and are not entered."""

    def __init__(self) -> None:
        self.nodes: dict[str, list[ast.AST]] = {}
        self.star_imports: list[str] = []
        self.calls_get_ipython = False

    def _bind(self, name: str, node: ast.AST) -> None:
        self.nodes.setdefault(name, []).append(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._bind(node.name, node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._bind(node.name, node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node.name, node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        pass

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self._bind(node.id, node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:  # ``predict: Callable`` alone binds nothing
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(alias.asname or alias.name.split(".")[0], node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.star_imports.append("." * node.level + (node.module or ""))
            else:
                self._bind(alias.asname or alias.name, node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name, node)
        self.generic_visit(node)

    def _visit_comprehension(self, node: ast.AST) -> None:
        # Comprehension variables are local to it; only a walrus inside leaks to the module.
        for sub in ast.walk(node):
            if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                self._bind(sub.target.id, sub)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "get_ipython":
            self.calls_get_ipython = True
        self.generic_visit(node)


def _signature_notices(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Notice]:
    args = func.args
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    required_kw = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    notices: list[Notice] = []
    if isinstance(func, ast.AsyncFunctionDef):
        notices.append(
            Notice(
                "predict_async",
                "predict が async def で定義されています。採点では普通の関数として呼ぶため、"
                "予測の代わりにコルーチンが返ります。async を外してください。",
                "predict is defined with async def; the service calls it as a plain function and "
                "would get a coroutine instead of predictions. Remove async.",
            )
        )
    if required > 1 or (positional == 0 and args.vararg is None):
        notices.append(
            Notice(
                "predict_arity",
                f"predict は必須の引数を {required} 個とりますが、採点では predict(test_data) のように "
                "画像の配列 1 つだけを渡して呼びます。",
                f"predict takes {required} required argument(s); the service calls predict(test_data) "
                "with the image array only.",
            )
        )
    if required_kw:
        names = ", ".join(required_kw)
        notices.append(
            Notice(
                "predict_arity",
                f"predict にはキーワード専用の必須引数（{names}）がありますが、採点では渡されません。",
                f"predict has required keyword-only argument(s) ({names}) that the service never passes.",
            )
        )
    return notices


def _star_notice(modules: list[str]) -> Notice:
    shown = ", ".join(modules)
    return Notice(
        "predict_from_star_import",
        f"predict の定義が見つかりませんが、from {shown} import * から来るものとして続けます。",
        f"No predict is defined here; assuming it comes from 'from {shown} import *'.",
    )


_GET_IPYTHON_NOTICE: Final = Notice(
    "get_ipython",
    "get_ipython() は Jupyter の中でしか使えません（ノートブックから書き出した .py によく残ります）。"
    "採点では NameError になるので、その行を消してください。",
    "get_ipython() exists only inside Jupyter (it is left behind when a notebook is exported to .py); "
    "it raises NameError when scored. Delete those lines.",
)


# Calls that train a model. Run at module level they train on every import, as scoring imports the
# entry: a notebook whose training cells were left in.
_TRAINING_METHODS: Final = frozenset({"fit", "fit_generator", "train_on_batch"})


@dataclass(frozen=True)
class TrainingCall:
    call: str  # "model.fit"
    where: str  # "line 12", or "cell 4, line 2"
    where_ja: str


def training_call(source: str | bytes, locate: Locate | None = None) -> TrainingCall | None:
    """The first ``x.fit(...)``-like call outside any function or class, if the source parses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _TRAINING_METHODS:
            owner = ast.unparse(node.func.value) if len(ast.unparse(node.func.value)) <= 40 else "…"
            return TrainingCall(
                f"{owner}.{node.func.attr}", _where(node.lineno, locate), _where_ja(node.lineno, locate)
            )
        pending[0:0] = list(ast.iter_child_nodes(node))
    return None
