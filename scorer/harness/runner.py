"""The trusted harness that runs *inside* the sandbox: import the trainee's entry, call predict, report.

It runs under a runtime's interpreter, so it may use only the standard library and NumPy, and it
must not import the ``scorer`` package (which is not mounted). It never sees labels. Over its job
channel (a unix socket, ``--channel-fd``) it gets the images as a descriptor (see read_images),
imports what its runtime preloads (TensorFlow and Keras in the TensorFlow runtime, see preload),
says hello, then gets its job (one JSON object: entry, source, workdir, ...; a pre-warmed sandbox
waits there until the worker sends it) with the submission's folder and the generated input's as
descriptors; it calls ``predict`` on chunks, and writes events to fd 3, one JSON object per line:

    {"event": "hello"}                         ready: images read, no trainee code has run yet
    {"event": "importing"}                     the last line written before any trainee code runs
    {"event": "loaded", "seconds": 1.2}        the entry was imported
    {"event": "progress", "done": 500, "total": 14500}
    {"event": "error", "code": "...", "params": {...}, "traceback": "..."}
    {"event": "result", "kind": "labels"|"scores", "bytes": K, "predict_seconds": 3.4}
    followed by exactly K bytes: the predictions as a .npy file (no pickle).

Stdout and stderr are flushed before the final event ("result" or "error"): the parent takes the
run as ended once that event is complete on the channel and kills what is left, without waiting for
this process's exit (which takes long after TensorFlow: its mappings are torn down).

The parent checks everything again: this file only turns Python failures into stable codes and keeps
the trainee's own traceback frames (not the harness's) for the log. Once trainee code has run it
shares this process and may have replaced anything here, so the parent trusts only what was written
before "importing" (a failure of the harness itself, e.g. while copying the submission); every later
line — and whatever else happens to the process — is the submission's. This file still tries to give
a trainee the precise reason: it keeps its own references to what it calls after the import (a
trainee replacing ``numpy.concatenate`` does not break it), and it never lets an exception that
cannot even be printed escape.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import errno
import importlib
import io
import json
import linecache
import logging
import os
import re
import resource
import shutil
import socket
import sys
import time
import traceback
import types
import warnings
from typing import Any

import numpy as np

RESULT_FD = 3
HARNESS_FILE = os.path.abspath(__file__)
DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
TRACEBACK_KEEP = 32 * 1024  # head and tail of a traceback sent to the parent (it caps again)
MESSAGE_MAX = 1024 * 1024  # a job message is a few hundred bytes
# The name a notebook's generated code runs under (tracebacks, linecache): a name, not a file here.
GENERATED_SOURCE = "/input/submit_katakana.py"

# Taken before any trainee code runs: the trainee may replace the module attributes, not these.
_asarray = np.asarray
_concatenate = np.concatenate
_zeros = np.zeros
_save = np.save
_float64 = np.float64
_int64 = np.int64
_dumps = json.dumps
_write = os.write
_perf_counter = time.perf_counter
_BytesIO = io.BytesIO


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
        self._fd = fd

    def send(self, event: str, payload: bytes = b"", **fields: Any) -> None:
        if event in ("result", "error"):
            flush_output()  # what was printed before it is the run's log: the parent may stop at it
            fields["peak_rss_kib"] = peak_rss_kib()
        # A lone surrogate (an exception message "\ud800") cannot be UTF-8: written as its JSON escape
        # instead, the report still arrives, and the parent makes the text storable.
        line = _dumps({"event": event, **fields}, ensure_ascii=False).encode("utf-8", "backslashreplace")
        data = memoryview(line + b"\n" + payload)
        while data:  # a write to a pipe interrupted by a signal may be partial
            data = data[_write(self._fd, data) :]


def flush_output() -> None:
    """Flush stdout and stderr, and the originals the code may have replaced them with anything else;
    never fail here (not even on a flush that raises SystemExit): nothing to report it to."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(BaseException):
            stream.flush()  # type: ignore[union-attr]


class Failure(Exception):
    def __init__(self, code: str, params: dict[str, Any] | None = None, tb: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.params = params or {}
        self.tb = tb


class CellMap:
    """Maps lines of a notebook's generated source back to (cell, line) for tracebacks."""

    def __init__(self, lines: list[list[int]], source_file: str, display: str) -> None:
        self.source_file = source_file
        self.display = display
        self.lines = lines

    def describe(self, filename: str, lineno: int | None) -> tuple[str, str]:
        if filename == self.source_file and self.lines and lineno and 0 < lineno <= len(self.lines):
            cell, line = self.lines[lineno - 1]
            return self.display, f"cell {cell}, line {line}"
        return filename, f"line {lineno}"


def _bounded(text: str, keep: int = TRACEBACK_KEEP) -> str:
    if len(text) <= 2 * keep:
        return text
    return f"{text[:keep]}\n… [{len(text) - 2 * keep} characters cut by the harness] …\n{text[-keep:]}"


def trainee_traceback(exc: BaseException, cells: CellMap) -> str:
    """The traceback without the harness's own frames; notebook lines shown as cells."""
    try:
        return _bounded(_trainee_traceback(exc, cells))
    except Exception:  # a frame or an exception that cannot be formatted: say so, never fail here
        return f"Traceback unavailable ({type_name(exc)} could not be formatted)\n"


def _trainee_traceback(exc: BaseException, cells: CellMap) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) != HARNESS_FILE]
    out = ["Traceback (most recent call last):\n"]
    for frame in frames:
        name, where = cells.describe(frame.filename, frame.lineno)
        out.append(f'  File "{name}", {where}, in {frame.name}\n')
        if frame.line:
            out.append(f"    {frame.line.strip()}\n")
    out.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(out)


def type_name(exc: BaseException) -> str:
    try:
        name = type(exc).__name__
        return name if isinstance(name, str) else "Exception"
    except Exception:
        return "Exception"


def reason(exc: BaseException) -> str:
    """``Type: message`` in at most 300 characters; an exception whose ``__str__`` fails is named only."""
    try:
        message = str(exc)
        if not isinstance(message, str):
            raise TypeError("__str__ returned a non-string")
    except Exception:
        return f"{type_name(exc)} (its message could not be printed)"
    text = f"{type_name(exc)}: {_ANSI.sub('', message[:400])}"
    return text if len(text) <= 300 else text[:297] + "..."


# What Keras and TensorFlow trainees get wrong, recognised by the exception TensorFlow or Keras
# raises (TensorFlow 2.21, Keras 3). Each gets its own code and message with what to change.
TF1_NAMES = frozenset({
    "Session", "InteractiveSession", "placeholder", "set_random_seed", "global_variables_initializer",
    "get_variable", "variable_scope", "ConfigProto", "reset_default_graph", "get_default_graph", "contrib",
    "AdamOptimizer", "GradientDescentOptimizer", "Saver", "logging", "layers",
})  # fmt: skip
_TF_MODULE_ATTR = re.compile(r"^module '(tensorflow[\w.]*)' has no attribute '(\w+)'")
_REMOVED_METHOD = re.compile(
    r"object has no attribute '(predict_classes|predict_proba|fit_generator|predict_generator|evaluate_generator)'"
)
_IMAGE_DATA_GENERATOR = re.compile(
    r"'ImageDataGenerator'.*'keras\.preprocessing(\.image)?'|'keras\.preprocessing(\.image)?'.*'ImageDataGenerator'"
)
_SAVEDMODEL = re.compile(r"File format not supported: filepath=(.*?)\. Keras 3 only supports", re.S)
_CUSTOM_OBJECT = re.compile(
    r"Could not locate (?:class|function) '([\w.]+)'"
    r"|Unknown (?:layer|loss|metric|activation|optimizer|regularizer|initializer|constraint|object)[\w ]*: '?([\w.]+)"
)
_CHANNELS_FIRST = re.compile(r"\((?:\d+|None), 1, 28, 28\)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

_REMOVED = {
    "predict_classes": (
        "removed in TensorFlow 2.6", "TensorFlow 2.6 で削除",
        "Return np.argmax(model.predict(x), axis=1), or model.predict(x) itself: (N, 15) scores are accepted.",
        "np.argmax(model.predict(x), axis=1) を返すか、model.predict(x) をそのまま返してください"
        "（(N, 15) のスコアも受け付けます）。",
    ),
    "predict_proba": (
        "removed in TensorFlow 2.6", "TensorFlow 2.6 で削除",
        "Use model.predict(x): it returns the probabilities, and (N, 15) scores are accepted.",
        "model.predict(x) を使ってください（確率が返り、(N, 15) のスコアはそのまま受け付けます）。",
    ),
    "fit_generator": (
        "removed in Keras 3", "Keras 3 で削除",
        "Training does not belong in the submission: delete it and load the saved model.",
        "提出物で学習する必要はありません。その行を削除し、保存したモデルを読み込んでください。",
    ),
    "predict_generator": (
        "removed in Keras 3", "Keras 3 で削除",
        "Use model.predict(x).", "model.predict(x) を使ってください。",
    ),
    "evaluate_generator": (
        "removed in Keras 3", "Keras 3 で削除",
        "Delete it: the server computes the score.", "その行を削除してください（採点はサーバーが行います）。",
    ),
    "ImageDataGenerator": (
        "removed from keras.preprocessing.image in Keras 3", "Keras 3 で keras.preprocessing.image から削除",
        "Delete the import (predict does not need it), or import it from tensorflow.keras.preprocessing.image.",
        "その import を削除するか（predict には不要です）、"
        "tensorflow.keras.preprocessing.image から import してください。",
    ),
}  # fmt: skip


def framework_failure(exc: BaseException, tb: str) -> Failure | None:
    """The Keras / TensorFlow mistake ``exc`` shows, if it is one of those with their own message."""
    message = _ANSI.sub("", str(exc))
    if isinstance(exc, AttributeError):
        match = _TF_MODULE_ATTR.match(message)
        if match and match.group(2) in TF1_NAMES:
            module = match.group(1).replace("._api.v2", "").replace("tensorflow", "tf", 1)
            short = f"{module[3:]}.{match.group(2)}" if module != "tf" else match.group(2)
            return Failure("tensorflow_1_code", {"name": f"tf.{short}", "short": short}, tb)
    if isinstance(exc, AttributeError | ImportError):
        match = _REMOVED_METHOD.search(message)
        name = match.group(1) if match else "ImageDataGenerator" if _IMAGE_DATA_GENERATOR.search(message) else None
        if name is not None:
            since, since_ja, fix, fix_ja = _REMOVED[name]
            params = {"name": name, "since": since, "since_ja": since_ja, "fix": fix, "fix_ja": fix_ja}
            return Failure("keras_removed_api", params, tb)
    if isinstance(exc, ValueError):
        match = _SAVEDMODEL.search(message)
        if match and "SavedModel" in message:
            return Failure("keras_savedmodel", {"path": match.group(1)}, tb)
        if "incompatible with the layer" in message:
            match = _CHANNELS_FIRST.search(message)
            if match:
                return Failure("channels_first_input", {"got": f"shape {match.group(0)}"}, tb)
    if isinstance(exc, ValueError | TypeError):
        match = _CUSTOM_OBJECT.search(message)
        if match:
            return Failure("keras_custom_object", {"name": match.group(1) or match.group(2)}, tb)
        if any(f.name == "compile_args_from_training_config" for f in traceback.extract_tb(exc.__traceback__)):
            return Failure("keras_custom_object", {"name": "loss"}, tb)  # a custom loss in a legacy .h5
    return None


def classify(exc: BaseException, stage: str, cells: CellMap, workdir: str) -> Failure:
    """Turn an exception from trainee code into a stable failure code; never raises itself."""
    tb = trainee_traceback(exc, cells)
    try:
        return _classify(exc, stage, tb, cells, workdir)
    except Exception:  # e.g. an exception whose attributes raise when read
        code = "import_failed" if stage == "import" else "predict_exception"
        return Failure(code, {"reason": f"{type_name(exc)} (its details could not be read)"}, tb)


def _classify(exc: BaseException, stage: str, tb: str, cells: CellMap, workdir: str) -> Failure:
    if isinstance(exc, SystemExit):
        return Failure("submission_exited", {"reason": f"SystemExit({exc.code!r})"}, tb)
    if isinstance(exc, MemoryError):
        return Failure("memory_limit", {}, tb)
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return Failure("disk_limit", {}, tb)
    framework = framework_failure(exc, tb)
    if framework is not None:
        return framework
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


def import_entry(source: bytes, source_path: str, entry_path: str, notebook: bool) -> types.ModuleType:
    """Run the entry's ``source`` (bytes: compile() honours a coding cookie and a BOM, as an import
    would) as the module ``submit_katakana``, its code named ``source_path``."""
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
        arr = _asarray(raw)
        if arr.dtype == object:
            arr = arr.astype(_float64)
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


class State:
    """Whether trainee code may have run: after that, a failure here is no longer the harness's own."""

    imported = False


def run(job: Job, data: np.ndarray, channel: Channel, state: State) -> None:
    # A private, writable copy of the submission: trainee code may write next to its files.
    shutil.copytree(job.submission, job.work, dirs_exist_ok=True, symlinks=False)
    if job.generated:  # a notebook's code cells: read here, they are no file of the sandbox
        source = job.read_generated("submit_katakana.py")
        source_path = GENERATED_SOURCE
        text = source.decode("utf-8")
        linecache.cache[source_path] = (len(text), None, text.splitlines(keepends=True), source_path)
        cells = CellMap(json.loads(job.read_generated(job.cellmap)) if job.cellmap else [], source_path, job.name)
    else:
        source_path = os.path.join(job.work, job.source)
        with open(source_path, "rb") as f:
            source = f.read()
        cells = CellMap([], source_path, job.name)
    job.close()  # no descriptor of the host's survives into trainee code
    workdir = job.workdir
    os.chdir(workdir)
    sys.path.insert(0, workdir)
    sys.argv = [job.entry]

    channel.send("importing")  # the parent trusts nothing on this channel after this line
    state.imported = True
    started = _perf_counter()
    try:
        module = import_entry(source, source_path, job.entry, job.generated)
    except BaseException as exc:
        raise classify(exc, "import", cells, workdir) from exc
    channel.send("loaded", seconds=round(_perf_counter() - started, 3))

    predict = getattr(module, "predict", None)
    if not callable(predict):
        code = "legacy_func_predict" if callable(getattr(module, "func_predict", None)) else "predict_missing"
        raise Failure(code, {"file": job.name})

    total = int(data.shape[0])
    parts: list[np.ndarray] = []
    predict_seconds = 0.0
    for index, start in enumerate(range(0, total, job.chunk)):
        # A view, not a copy: the images are this single-use run's own, read before the trainee's
        # code, and each chunk is handed over once, so a predict that scales in place harms nothing.
        chunk = data[start : start + job.chunk]
        began = _perf_counter()
        try:
            raw = predict(chunk)
        except BaseException as exc:
            raise classify(exc, "predict", cells, workdir) from exc
        predict_seconds += _perf_counter() - began
        parts.append(as_predictions(raw, len(chunk), index))
        channel.send("progress", done=start + len(chunk), total=total)

    kinds = {p.ndim for p in parts}
    if len(kinds) > 1:
        raise Failure("prediction_shape", {"got": "a mix of class ids and score arrays across chunks"})
    merged = _concatenate(parts) if parts else _zeros((0,), dtype=_int64)
    merged = merged.astype(_float64) if merged.dtype.kind == "f" or merged.ndim == 2 else merged.astype(_int64)
    buffer = _BytesIO()
    _save(buffer, merged, allow_pickle=False)
    payload = buffer.getvalue()
    kind = "scores" if merged.ndim == 2 else "labels"
    channel.send("result", payload, kind=kind, bytes=len(payload), predict_seconds=round(predict_seconds, 4))


def _harness_failed(channel: Channel, state: State, exc: BaseException) -> None:
    """The harness's own code failed. Before the import that is the service's fault; after it, the
    trainee's code shared this process (and may have replaced what failed), so it is theirs."""
    if not state.imported:
        channel.send("error", code="internal_error", params={}, traceback=_bounded(traceback.format_exc()))
        return
    why = f"the harness failed after your code was imported ({type_name(exc)})"
    channel.send("error", code="harness_disrupted", params={"reason": why}, traceback=trainee_traceback(exc, _NO_CELLS))


_NO_CELLS = CellMap([], "", "")


def read_images(fd: int) -> np.ndarray:
    """The images from the descriptor the parent sent (a .npy file), read whole; the fd is closed.

    The parent opens the file itself (it may be readable by the worker only) and each sandbox gets
    its own open, so the file is never copied per run. Read into memory before any trainee code
    runs, so nothing of the run can later find the file's host path in /proc/*/fd or maps.
    """
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return np.load(f, allow_pickle=False)
    finally:
        os.close(fd)


def preload(modules: list[str]) -> None:
    """Import the runtime's heavy libraries (TensorFlow, Keras) before any trainee code, so a warm
    sandbox has them loaded off the clock. Their start-up notices on fd 2 (oneDNN, CPU features)
    are discarded: they are not the trainee's output. Keras's own notices while loading a model
    (absl's "Compiled the loaded model, but ...", UserWarnings about optimizer variables) would
    fill the log excerpt a hidden-set run may show and read like errors: only errors are kept."""
    if not modules:
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        for name in modules:
            importlib.import_module(name)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    logging.getLogger("absl").setLevel(logging.ERROR)
    if "keras" in modules:
        keras2_sequential_shapes()
    for library in modules:
        warnings.filterwarnings("ignore", module=rf"{re.escape(library)}(\.|$)")


def keras2_sequential_shapes() -> None:
    """Let Keras 3 read the Sequential models the Keras 2 of the course's era saved to .h5.

    Keras 2 kept a Sequential model's input shape on its first layer as ``batch_input_shape``
    (batch dimension included); Keras 3's legacy loader hands it on as ``input_shape``, which has
    no batch dimension, so the model is built for (None, None, 28, 28, 1) and loading fails with
    "Kernel shape must have the same length as input". Here the batch dimension is dropped before
    the layer is made, as Keras 2 did. And Keras 2.2 saved its optimizer's settings as ``lr`` and
    ``decay``, which Keras 3's optimizers refuse: they are renamed (``learning_rate``) or left out
    (a decay only matters for training). Applied before any trainee code; a Keras without these
    functions is left alone.
    """
    try:
        from keras.src.legacy.saving import saving_utils  # type: ignore[import-not-found]
    except ImportError:
        return
    original = getattr(saving_utils, "model_from_config", None)
    if original is None:
        return

    def model_from_config(config: Any, custom_objects: Any = None) -> Any:
        inner = config.get("config") if isinstance(config, dict) else None
        if isinstance(inner, dict) and config.get("class_name") != "InputLayer":
            shape = inner.get("batch_input_shape")
            if isinstance(shape, list | tuple) and len(shape) > 1:
                inner.pop("batch_input_shape")
                inner["input_shape"] = list(shape[1:])
        return original(config, custom_objects=custom_objects)

    saving_utils.model_from_config = model_from_config
    original_compile_args = getattr(saving_utils, "compile_args_from_training_config", None)
    if original_compile_args is None:
        return

    def compile_args_from_training_config(training_config: Any, custom_objects: Any = None) -> Any:
        optimizer = training_config.get("optimizer_config") if isinstance(training_config, dict) else None
        settings = optimizer.get("config") if isinstance(optimizer, dict) else None
        if isinstance(settings, dict):
            if "lr" in settings:
                settings.setdefault("learning_rate", settings.pop("lr"))
            settings.pop("decay", None)
        return original_compile_args(training_config, custom_objects=custom_objects)

    saving_utils.compile_args_from_training_config = compile_args_from_training_config


class JobChannel:
    """The parent's messages, on the unix socket inherited as ``--channel-fd`` (SOCK_SEQPACKET): first
    the images, then the job, each with its descriptors. Descriptors rather than binds, because the
    sandbox's mountinfo names every bind's host path; the harness closes each before trainee code
    runs, and the sandbox's PID 1, which inherited only the socket, never holds one."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)

    def receive(self, descriptors: int) -> tuple[bytes, list[int]]:
        data, fds, flags, _ = socket.recv_fds(self.sock, MESSAGE_MAX, descriptors, socket.MSG_CMSG_CLOEXEC)
        if len(fds) != descriptors or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or not data:
            for fd in fds:
                os.close(fd)
            raise RuntimeError(f"the parent's message brought {len(fds)} descriptors, not {descriptors}")
        return data, fds

    def close(self) -> None:
        self.sock.close()


class Job:
    """What to run (the parent's JSON) and where from: the submission's folder and the folder of
    generated input (a notebook's code and cell map), as descriptors until ``close``."""

    def __init__(self, fields: dict[str, Any], submission_fd: int, generated_fd: int, work: str) -> None:
        self.submission_fd = submission_fd
        self.generated_fd = generated_fd
        self.work = work
        root, self.source = fields["source"]
        self.generated = root == "input"
        self.entry = os.path.join(work, fields["entry"])
        self.name = os.path.basename(self.entry)
        self.workdir = os.path.join(work, fields["workdir"]) if fields["workdir"] else work
        self.cellmap: str | None = fields.get("cellmap")
        self.chunk = int(fields.get("chunk", 500))

    @property
    def submission(self) -> str:
        return f"/proc/self/fd/{self.submission_fd}"

    def read_generated(self, name: str) -> bytes:
        with open(f"/proc/self/fd/{self.generated_fd}/{name}", "rb") as f:
            return f.read()

    def close(self) -> None:
        for fd in (self.submission_fd, self.generated_fd):
            os.close(fd)


def read_job(jobs: JobChannel, work: str) -> Job:
    data, (submission_fd, generated_fd) = jobs.receive(2)
    jobs.close()
    return Job(json.loads(data.decode("utf-8")), submission_fd, generated_fd, work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channel-fd", type=int, required=True, help="the job channel (a unix socket)")
    parser.add_argument("--work", required=True, help="the writable folder the submission is copied to and run in")
    parser.add_argument("--preload", action="append", default=[], help="a library to import before hello")
    args = parser.parse_args()

    channel = Channel(RESULT_FD)
    state = State()
    try:
        jobs = JobChannel(args.channel_fd)
        _, (images_fd,) = jobs.receive(1)
        data = read_images(images_fd)
        preload(args.preload)
        # Ready: a pre-warmed sandbox waits here, interpreter and libraries loaded, until its job comes.
        channel.send("hello", python=sys.version.split()[0], numpy=np.__version__)
        run(read_job(jobs, args.work), data, channel, state)
    except Failure as failure:
        channel.send("error", code=failure.code, params=failure.params, traceback=failure.tb)
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:  # copying the submission into the sized /work filled it
            channel.send("error", code="disk_limit", params={}, traceback="")
        else:
            _harness_failed(channel, state, exc)
    except Exception as exc:
        _harness_failed(channel, state, exc)
    flush_output()
    # Skip interpreter teardown: trainee atexit hooks and threads must not change the outcome.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
