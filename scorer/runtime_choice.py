"""Which runtime a submission gets, decided before any of its code runs: from what that code imports.

The entry (a notebook's code cells as run, or the .py) and every module of the trainee's own that
it imports are parsed, never executed. Own modules are found in the extracted zip the way Python
will find them at run time: the entry's folder is ``sys.path[0]``, and a package's relative imports
are resolved from the package. An import of TensorFlow or Keras anywhere in those files — at the
top, inside a function, or by ``importlib.import_module("keras")`` / ``__import__`` with a literal
name — asks for the TensorFlow runtime; everything else runs in the NumPy runtime, the reference.

Reading a superset is deliberate: an import inside ``if False:`` still picks TensorFlow, which
offers every library the NumPy runtime does at the same versions, so the submission runs either way.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from scorer.errors import ErrorCode, ScoringError
from scorer.runtime import Runtime, RuntimeName, Runtimes, RuntimeUnavailable
from scorer.static_check import Locate

# Top-level packages that need the TensorFlow runtime (tf_keras: Keras 2 for TensorFlow 2.16+).
FRAMEWORKS: Final = frozenset({"tensorflow", "keras", "tf_keras"})

# Own modules parsed at most (intake already bounds the zip's files and bytes; this bounds the work).
MAX_MODULES: Final = 500
MAX_MODULE_BYTES: Final = 2 * 1024 * 1024


@dataclass(frozen=True)
class FrameworkImport:
    """One import of TensorFlow or Keras: what, and where the trainee wrote it."""

    module: str  # as written: "tensorflow.keras.models"
    file: str  # relative to the entry's folder: "submit_katakana.ipynb", "lib/model.py"
    where: str  # "line 3", or "cell 2, line 1" in a notebook
    where_ja: str


def framework_imports(
    source: str | bytes, display: str, entry_dir: Path, locate: Locate | None = None
) -> list[FrameworkImport]:
    """Every import of a framework in the entry ``source`` and in the own modules it reaches.

    ``display`` names the entry in messages; ``locate`` maps a line of a notebook's generated
    source to (cell, line in cell). Files that do not parse are skipped: the run will report them.
    """
    found: list[FrameworkImport] = []
    tree = _parse(source)
    if tree is None:
        return found
    seen: set[Path] = set()
    queue: list[tuple[ast.Module, str, str, Locate | None]] = [(tree, display, "", locate)]
    while queue:
        module_tree, file, package, where = queue.pop(0)
        for name, line in _imported_names(module_tree, package):
            if name.split(".")[0] in FRAMEWORKS:
                framework = FrameworkImport(name, file, *_where(line, where))
                if not found or (found[-1].file, found[-1].where) != (file, framework.where):
                    found.append(framework)  # one per import statement: its module, not every name
                continue
            for path, sub_package in _own_module_files(entry_dir, name):
                if path in seen or len(seen) >= MAX_MODULES:
                    continue
                seen.add(path)
                sub_tree = _read_tree(path)
                if sub_tree is not None:
                    queue.append((sub_tree, path.relative_to(entry_dir).as_posix(), sub_package, None))
    return found


def choose_runtime(
    found: Sequence[FrameworkImport],
    runtimes: Runtimes,
    *,
    allowed: Collection[RuntimeName] | None = None,
    refuse_missing: bool = True,
) -> Runtime:
    """The runtime for a submission whose code makes the imports ``found``.

    ``allowed``: what the cohort permits (None: every installed runtime, as for scoring an upload
    its pre-flight accepted). A submission that needs TensorFlow where it is not allowed is
    refused (RUNTIME_NOT_OFFERED, the trainee's to change); where it is not installed, it is
    refused the same way at the pre-flight (``refuse_missing``) and is the server's fault when
    scoring (RuntimeUnavailable: the pre-flight that accepted it saw the runtime).
    """
    if not found:
        return runtimes.numpy
    first = found[0]
    if allowed is not None and RuntimeName.TENSORFLOW not in allowed:
        raise not_offered(first, "not_allowed")
    runtime = runtimes.tensorflow
    if runtime is None:
        if refuse_missing:
            raise not_offered(first, "not_installed")
        raise RuntimeUnavailable(f"{first.file} imports {first.module}: the TensorFlow runtime is not installed")
    return runtime


@dataclass(frozen=True)
class RuntimeChoice:
    """How a run picks its runtime: the rule that differs between the pre-flight and scoring.

    ``allowed``: the runtimes the cohort permits (None: every installed one, as for scoring an upload
    whose pre-flight accepted it). ``refuse_missing``: a needed runtime that is not installed is the
    submission's refusal (the pre-flight: nothing was spent) rather than the service's fault
    (scoring: the pre-flight saw it). ``forced``: a runtime asked for by name (the command line's
    ``--runtime``), whatever the code imports.
    """

    allowed: Collection[RuntimeName] | None = None
    refuse_missing: bool = False
    forced: RuntimeName | None = None

    def choose(self, found: Sequence[FrameworkImport], runtimes: Runtimes) -> Runtime:
        if self.forced is not None:
            runtime = runtimes.get(self.forced)
            if runtime is None:
                raise RuntimeUnavailable(f"the {self.forced.label} runtime is not installed")
            return runtime
        return choose_runtime(found, runtimes, allowed=self.allowed, refuse_missing=self.refuse_missing)


_REASONS: Final = {
    "not_allowed": (
        "this cohort allows the NumPy runtime only",
        "このコースでは NumPy の採点環境だけが使えます",
    ),
    "not_installed": (
        "the TensorFlow runtime is not installed on this server",
        "このサーバーには TensorFlow の採点環境がインストールされていません",
    ),
}


def not_offered(first: FrameworkImport, why: str) -> ScoringError:
    """RUNTIME_NOT_OFFERED for code whose ``first`` import needs TensorFlow; ``why``: "not_allowed"
    (by the cohort) or "not_installed" (on this server)."""
    reason, reason_ja = _REASONS[why]
    return ScoringError(
        ErrorCode.RUNTIME_NOT_OFFERED,
        {
            "module": first.module,
            "file": first.file,
            "where": first.where,
            "where_ja": first.where_ja,
            "reason": reason,
            "reason_ja": reason_ja,
            "why": why,
        },
    )


def _where(line: int, locate: Locate | None) -> tuple[str, str]:
    if locate is None:
        return f"line {line}", f"{line} 行目"
    cell, in_cell = locate(line)
    return f"cell {cell}, line {in_cell}", f"セル {cell} の {in_cell} 行目"


def _parse(source: str | bytes) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _read_tree(path: Path) -> ast.Module | None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MODULE_BYTES + 1)
    except OSError:
        return None
    return None if len(data) > MAX_MODULE_BYTES else _parse(data)


def _imported_names(tree: ast.Module, package: str) -> Iterator[tuple[str, int]]:
    """Absolute names of the modules ``tree`` imports (and of the names it imports from them, which
    may be submodules), with their lines. ``package``: the module's own package, for relative imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, package)
            if base is None:
                continue
            if base:
                yield base, node.lineno
            for alias in node.names:
                if alias.name != "*":
                    yield f"{base}.{alias.name}" if base else alias.name, node.lineno
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
                yield arg.value, node.lineno


def _is_dynamic_import(func: ast.expr) -> bool:
    """``__import__(...)``, ``import_module(...)``, ``importlib.import_module(...)``."""
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _absolute(module: str, level: int, package: str) -> str | None:
    """``from ..x import y`` in package ``a.b`` is ``a.x``; None when it climbs out of the top."""
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if level - 1 > len(parts) or not parts:
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _own_module_files(entry_dir: Path, name: str) -> Iterator[tuple[Path, str]]:
    """The files of the trainee's own modules that importing ``name`` runs (``a.b.c`` runs ``a``,
    ``a.b`` and ``a.b.c``), with the package each belongs to; nothing for a name not in the zip."""
    parts = name.split(".")
    if not all(part.isidentifier() for part in parts):
        return
    folder = entry_dir
    for depth, part in enumerate(parts, start=1):
        package = ".".join(parts[:depth])
        init, plain = folder / part / "__init__.py", folder / f"{part}.py"
        if init.is_file():
            yield init, package
        elif plain.is_file():
            yield plain, ".".join(parts[: depth - 1])
            return  # a plain module has no submodules
        elif not (folder / part).is_dir():
            return  # not the trainee's (a library, or missing: the run says which)
        folder = folder / part
