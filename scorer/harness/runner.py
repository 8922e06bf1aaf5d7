"""The trusted harness that runs *inside* the sandbox: import the trainee's entry, call predict, report.

It runs under the reference runtime's interpreter, so it may use only the standard library and NumPy,
and it must not import the ``scorer`` package (which is not mounted). It never sees labels: it gets
the images, calls ``predict`` on chunks, and writes events to fd 3, one JSON object per line:

    {"event": "hello"}                         the sandbox came up (no trainee code has run yet)
    {"event": "loaded", "seconds": 1.2}        the entry was imported
    {"event": "progress", "done": 500, "total": 14500}
    {"event": "error", "code": "...", "params": {...}, "traceback": "..."}
    {"event": "result", "kind": "labels"|"scores", "bytes": K, "predict_seconds": 3.4}
    followed by exactly K bytes: the predictions as a .npy file (no pickle).

The parent checks everything again: this file only turns Python failures into stable codes and keeps
the trainee's own traceback frames (not the harness's) for the log.
"""

from __future__ import annotations

import argparse
import builtins
import errno
import io
import json
import os
import resource
import shutil
import sys
import time
import traceback
import types
from typing import Any

import numpy as np

RESULT_FD = 3
HARNESS_FILE = os.path.abspath(__file__)
DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def peak_rss_kib() -> int:
    """This process's peak resident memory, or a waited-for child's if larger (Linux: KiB).

    Measured here rather than by the parent: the rusage the parent gets from bwrap also carries the
    memory high-water mark of the (large) worker process that forked it.
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return int(max(own, children))


class Channel:
    """Events to the parent over fd 3, opened before any trainee code runs."""

    def __init__(self, fd: int) -> None:
        self._out = os.fdopen(fd, "wb", buffering=0)

    def send(self, event: str, payload: bytes = b"", **fields: Any) -> None:
        if event in ("result", "error"):
            fields["peak_rss_kib"] = peak_rss_kib()
        line = json.dumps({"event": event, **fields}, ensure_ascii=False).encode("utf-8") + b"\n"
        self._out.write(line + payload)


class Failure(Exception):
    def __init__(self, code: str, params: dict[str, Any] | None = None, tb: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.params = params or {}
        self.tb = tb


class CellMap:
    """Maps lines of a notebook's generated source back to (cell, line) for tracebacks."""

    def __init__(self, path: str | None, source_file: str, display: str) -> None:
        self.source_file = source_file
        self.display = display
        self.lines: list[list[int]] = []
        if path:
            with open(path, encoding="utf-8") as f:
                self.lines = json.load(f)

    def describe(self, filename: str, lineno: int | None) -> tuple[str, str]:
        if filename == self.source_file and self.lines and lineno and 0 < lineno <= len(self.lines):
            cell, line = self.lines[lineno - 1]
            return self.display, f"cell {cell}, line {line}"
        return filename, f"line {lineno}"


def trainee_traceback(exc: BaseException, cells: CellMap) -> str:
    """The traceback without the harness's own frames; notebook lines shown as cells."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) != HARNESS_FILE]
    out = ["Traceback (most recent call last):\n"]
    for frame in frames:
        name, where = cells.describe(frame.filename, frame.lineno)
        out.append(f'  File "{name}", {where}, in {frame.name}\n')
        if frame.line:
            out.append(f"    {frame.line.strip()}\n")
    out.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(out)


def reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def classify(exc: BaseException, stage: str, cells: CellMap, workdir: str) -> Failure:
    """Turn an exception from trainee code into a stable failure code."""
    tb = trainee_traceback(exc, cells)
    if isinstance(exc, SystemExit):
        return Failure("submission_exited", {"reason": f"SystemExit({exc.code!r})"}, tb)
    if isinstance(exc, MemoryError):
        return Failure("memory_limit", {}, tb)
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return Failure("disk_limit", {}, tb)
    if stage == "import" and isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        if not os.path.exists(os.path.join(workdir, top)) and not os.path.exists(os.path.join(workdir, top + ".py")):
            return Failure("module_not_found", {"module": exc.name}, tb)
        if os.path.isdir(os.path.join(workdir, top)):
            return own_module_missing(exc.name, tb)
    if stage == "import" and isinstance(exc, FileNotFoundError) and outside_zip(exc.filename):
        return file_outside_zip(exc, cells, tb)
    code = "import_failed" if stage == "import" else "predict_exception"
    return Failure(code, {"reason": reason(exc)}, tb)


def own_module_missing(module: str, tb: str) -> Failure:
    """``common.util`` when ``common/`` is in the zip but ``common/util.py`` is not: name the file."""
    parts = module.split(".")
    return Failure(
        "own_module_missing",
        {"module": module, "package": parts[0] + "/", "missing": "/".join(parts) + ".py"},
        tb,
    )


def outside_zip(filename: object) -> bool:
    """A path that cannot be inside the zip: absolute, or climbing out with ``..`` (../1_data/...)."""
    if not isinstance(filename, str | bytes):
        return False
    path = os.fsdecode(filename)
    return os.path.isabs(path) or os.path.normpath(path).split(os.sep)[0] == ".."


def file_outside_zip(exc: FileNotFoundError, cells: CellMap, tb: str) -> Failure:
    """Typically a local test cell after predict reading ../1_data: say where, in both languages."""
    where, where_ja = "?", "?"
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == cells.source_file and frame.lineno:
            if cells.lines and 0 < frame.lineno <= len(cells.lines):
                cell, line = cells.lines[frame.lineno - 1]
                where, where_ja = f"cell {cell}, line {line}", f"セル {cell} の {line} 行目"
            else:
                where, where_ja = f"line {frame.lineno}", f"{frame.lineno} 行目"
            break
    path = os.fsdecode(exc.filename)
    return Failure("file_outside_zip", {"path": path, "where": where, "where_ja": where_ja}, tb)


class _IPythonStub:
    """Notebooks exported by some tools call get_ipython().run_line_magic(...): make those no-ops."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def import_entry(source_path: str, display: str, entry_path: str, notebook: bool) -> types.ModuleType:
    with open(source_path, "rb") as f:
        source = f.read()  # bytes: compile() honours a coding cookie and a BOM, as an import would
    module = types.ModuleType("submit_katakana")
    module.__file__ = entry_path
    module.__dict__["__builtins__"] = builtins
    sys.modules["submit_katakana"] = module
    # Trainees pickle models from notebooks, where their classes live in __main__; unpickling looks
    # them up there. While the entry runs, __main__ *is* the entry (its __name__ stays
    # "submit_katakana", so an `if __name__ == "__main__":` block does not run).
    sys.modules["__main__"] = module
    if notebook:
        builtins.get_ipython = _IPythonStub  # type: ignore[attr-defined]
        builtins.display = print  # type: ignore[attr-defined]
    code = compile(source, source_path, "exec")
    exec(code, module.__dict__)  # noqa: S102 - running the trainee's code is the point, inside the sandbox
    return module


def as_predictions(raw: Any, n: int, chunk_index: int) -> np.ndarray:
    """Accept lists and arrays of ids or (n, 15) scores; refuse anything else clearly."""
    try:
        arr = np.asarray(raw)
        if arr.dtype == object:
            arr = arr.astype(np.float64)
    except Exception as exc:  # whatever the trainee's object raises while becoming an array
        raise Failure("prediction_shape", {"got": f"{type(raw).__name__} ({reason(exc)})"}) from exc
    if arr.dtype.kind not in "biuf":
        raise Failure("prediction_shape", {"got": f"dtype {arr.dtype}"})
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 0:
        raise Failure("prediction_shape", {"got": f"a single value ({arr!r})"})
    if arr.shape[0] != n:
        raise Failure("prediction_count", {"expected": n, "got": arr.shape[0], "chunk": chunk_index})
    if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 15):
        return arr
    raise Failure("prediction_shape", {"got": f"shape {arr.shape}"})


def run(args: argparse.Namespace, channel: Channel) -> None:
    # A private, writable copy of the submission: trainee code may write next to its files.
    shutil.copytree(args.copy_from, args.copy_to, dirs_exist_ok=True, symlinks=False)
    workdir = args.workdir
    os.chdir(workdir)
    sys.path.insert(0, workdir)
    sys.argv = [args.entry]
    cells = CellMap(args.cellmap, args.source, os.path.basename(args.entry))

    started = time.perf_counter()
    try:
        module = import_entry(args.source, os.path.basename(args.entry), args.entry, args.cellmap is not None)
    except BaseException as exc:
        raise classify(exc, "import", cells, workdir) from exc
    channel.send("loaded", seconds=round(time.perf_counter() - started, 3))

    predict = getattr(module, "predict", None)
    if not callable(predict):
        code = "legacy_func_predict" if callable(getattr(module, "func_predict", None)) else "predict_missing"
        raise Failure(code, {"file": os.path.basename(args.entry)})

    data = np.load(args.data, mmap_mode="r", allow_pickle=False)
    total = int(data.shape[0])
    parts: list[np.ndarray] = []
    predict_seconds = 0.0
    for index, start in enumerate(range(0, total, args.chunk)):
        chunk = np.array(data[start : start + args.chunk])  # a fresh copy each call
        began = time.perf_counter()
        try:
            raw = predict(chunk)
        except BaseException as exc:
            raise classify(exc, "predict", cells, workdir) from exc
        predict_seconds += time.perf_counter() - began
        parts.append(as_predictions(raw, len(chunk), index))
        channel.send("progress", done=start + len(chunk), total=total)

    kinds = {p.ndim for p in parts}
    if len(kinds) > 1:
        raise Failure("prediction_shape", {"got": "a mix of class ids and score arrays across chunks"})
    merged = np.concatenate(parts) if parts else np.zeros((0,), dtype=np.int64)
    merged = merged.astype(np.float64) if merged.dtype.kind == "f" or merged.ndim == 2 else merged.astype(np.int64)
    buffer = io.BytesIO()
    np.save(buffer, merged, allow_pickle=False)
    payload = buffer.getvalue()
    kind = "scores" if merged.ndim == 2 else "labels"
    channel.send("result", payload, kind=kind, bytes=len(payload), predict_seconds=round(predict_seconds, 4))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="Python source to run as module submit_katakana")
    parser.add_argument("--entry", required=True, help="the entry's path inside the writable copy")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--copy-from", required=True)
    parser.add_argument("--copy-to", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--cellmap", default=None)
    args = parser.parse_args()

    channel = Channel(RESULT_FD)
    channel.send("hello", python=sys.version.split()[0], numpy=np.__version__)
    try:
        run(args, channel)
    except Failure as failure:
        channel.send("error", code=failure.code, params=failure.params, traceback=failure.tb)
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:  # copying the submission into the sized /work filled it
            channel.send("error", code="disk_limit", params={}, traceback="")
        else:
            channel.send("error", code="internal_error", params={}, traceback=traceback.format_exc())
    except Exception:  # a fault of the harness itself: never blamed on the trainee
        channel.send("error", code="internal_error", params={}, traceback=traceback.format_exc())
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: trainee atexit hooks and threads must not change the outcome.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
