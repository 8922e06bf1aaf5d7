"""The runtimes: the Python interpreters (with their pinned libraries) that trainee code runs in.

There are two, each built by scripts/setup.sh from its pinned requirements (runtime/):

- ``numpy``: the reference and the default. NumPy, SciPy, pandas, matplotlib, scikit-learn, Pillow.
- ``tensorflow``: the same libraries at the same versions plus TensorFlow (CPU) and Keras, for the
  trainees who build their model with Keras, as the course allows. Optional: a service set up
  without it refuses Keras submissions at the pre-flight, saying so.

Which one a submission gets is decided before it runs, from what its code imports
(:mod:`scorer.runtime_choice`). A runtime is only a name and an interpreter path; everything else is
asked of the interpreter itself, once: its versions, which libraries it offers, and which host
folders must be shown (read-only) inside the sandbox for it to start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from scorer.sandbox.types import Bind


class RuntimeName(StrEnum):
    NUMPY = "numpy"
    TENSORFLOW = "tensorflow"

    @property
    def label(self) -> str:
        """How pages and messages name it."""
        return _LABELS[self]


_LABELS = {RuntimeName.NUMPY: "NumPy", RuntimeName.TENSORFLOW: "TensorFlow + Keras"}

# Libraries a course notebook typically imports at the top; reported with their versions.
REPORTED_PACKAGES = ("numpy", "scipy", "pandas", "matplotlib", "sklearn", "PIL", "tensorflow", "keras")
# Reported from the installed distribution's metadata instead of being imported: importing
# TensorFlow takes seconds, and the probe runs in every process that needs the runtime's folders.
_NOT_IMPORTED = ("tensorflow", "keras")

# What the harness imports before it says hello, so a pre-warmed sandbox has it loaded off the clock.
PRELOAD: dict[RuntimeName, tuple[str, ...]] = {
    RuntimeName.NUMPY: (),
    RuntimeName.TENSORFLOW: ("tensorflow", "keras"),
}

# How pages, emails and logs name the libraries whose versions a runtime's summary shows.
_SHOWN = {"python": "Python", "tensorflow": "TensorFlow", "keras": "Keras", "numpy": "NumPy"}


def runtime_summary(recorded: Mapping[str, object] | None, *, complete: bool = False) -> str:
    """The runtime a report's ``runtime`` field records (its name and versions), as pages, emails
    and logs show it: "TensorFlow + Keras (Python 3.11.2, TensorFlow 2.21.0, Keras 3.15.1, NumPy
    2.3.5)". ``complete`` adds every other library's version (the log). A record without a name
    was made before there were two runtimes: NumPy's. "" when nothing is recorded."""
    if not isinstance(recorded, Mapping) or not recorded:
        return ""
    name = recorded.get("name")
    if name is None:
        label = RuntimeName.NUMPY.label
    else:  # a name this engine does not know is shown as recorded
        label = RuntimeName(str(name)).label if name in set(RuntimeName) else str(name)
    versions = {k: str(v) for k, v in recorded.items() if k != "name" and isinstance(v, str | int | float)}
    shown = [f"{_SHOWN[k]} {versions[k]}" for k in _SHOWN if k in versions]
    if complete:
        shown += [f"{k} {v}" for k, v in sorted(versions.items()) if k not in _SHOWN]
    return f"{label} ({', '.join(shown)})" if shown else label


# Where scripts/setup.sh builds each runtime: /opt/katakana as root, else the user's data folder.
_FOLDERS = {RuntimeName.NUMPY: "runtime", RuntimeName.TENSORFLOW: "runtime-tensorflow"}


def default_locations(name: RuntimeName) -> tuple[Path, ...]:
    folder = _FOLDERS[name]
    return (
        Path("/opt/katakana") / folder / "bin/python",
        Path.home() / ".local/share/katakana-scorer" / folder / "bin/python",
    )


DEFAULT_LOCATIONS = default_locations(RuntimeName.NUMPY)

_PROBE = r"""
import importlib, importlib.metadata, importlib.util, json, os, pkgutil, sys
versions = {}
for name in %(packages)r:
    try:
        if name in %(not_imported)r:
            if importlib.util.find_spec(name) is None:
                continue
            dists = importlib.metadata.packages_distributions().get(name) or [name]
            versions[name] = importlib.metadata.version(dists[0])
            continue
        module = importlib.import_module(name)
        versions[name] = getattr(module, "__version__", "?")
    except Exception:
        pass
top = sorted({m.name for m in pkgutil.iter_modules() if not m.name.startswith("_")})
print(json.dumps({
    "python": "%%d.%%d.%%d" %% sys.version_info[:3],
    "implementation": sys.implementation.name,
    "executable": os.path.realpath(sys.executable),
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "path": [p for p in sys.path if p],
    "packages": versions,
    "modules": top,
}))
"""


@dataclass(frozen=True)
class RuntimeInfo:
    python: str
    implementation: str
    executable: str
    prefix: str
    base_prefix: str
    path: list[str]
    packages: dict[str, str]  # import name -> version, for REPORTED_PACKAGES that import
    modules: list[str] = field(repr=False)  # every top-level module the runtime can import

    def versions(self) -> dict[str, str]:
        """What the site shows: {"python": "3.11.2", "numpy": "2.4.6", ...}."""
        return {"python": self.python, **self.packages}

    def offered_libraries(self) -> str:
        """A short list for error messages: the notable third-party libraries, with versions."""
        return ", ".join(f"{name} {version}" for name, version in self.packages.items())

    def offers(self, module: str) -> bool:
        """Whether ``module`` (its top-level package) can be imported in this runtime."""
        return module.split(".")[0] in self.modules


class RuntimeUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Runtime:
    python: Path
    # Where the probe's answer may be kept between processes (the command line's: starting the
    # runtime to import every library costs over a second); None: once per process only.
    cache_dir: Path | None = field(default=None, compare=False)
    name: RuntimeName = RuntimeName.NUMPY

    @property
    def preload(self) -> tuple[str, ...]:
        """Modules the harness imports before any trainee code (see PRELOAD)."""
        return PRELOAD[self.name]

    def info(self) -> RuntimeInfo:
        if self.cache_dir is None:
            return _probe(str(self.python))
        return _cached_probe(str(self.python), self.cache_dir)

    def binds(self) -> list[Bind]:
        """Host folders the interpreter needs, shown at the same paths, read-only (worked out once
        per process: every run needs them)."""
        return list(_binds(self))

    def _computed_binds(self) -> list[Bind]:
        """Host folders the interpreter needs, shown at the same paths, read-only.

        /usr is always shown by the sandbox; a venv or a Python installed elsewhere (/opt, a home
        folder) needs its prefixes and sys.path entries too. Only folders that exist are listed,
        and a folder already inside another listed one is left out.
        """
        info = self.info()
        candidates = {info.prefix, info.base_prefix, str(Path(info.executable).parent), *info.path}
        if not Path(self.python).is_absolute():
            raise RuntimeUnavailable(f"runtime python must be an absolute path: {self.python}")
        candidates.add(str(Path(self.python).parent.parent))
        roots: list[str] = []
        for path in sorted(candidates, key=len):
            real = os.path.realpath(path)
            if not os.path.isdir(real) or real.startswith("/usr/") or real == "/usr":
                continue
            if any(real == r or real.startswith(r + "/") for r in roots):
                continue
            roots.append(real)
        # The venv's own folder is reached through its unresolved path (bin/python is a symlink).
        venv = str(Path(self.python).parent.parent)
        binds = [Bind(Path(r), r) for r in roots]
        if os.path.realpath(venv) != venv and not venv.startswith("/usr"):
            binds.append(Bind(Path(os.path.realpath(venv)), venv))
        return binds


@functools.lru_cache(maxsize=8)
def _binds(runtime: Runtime) -> tuple[Bind, ...]:
    return tuple(runtime._computed_binds())


@functools.lru_cache(maxsize=8)
def _probe(python: str) -> RuntimeInfo:
    code = _PROBE % {"packages": REPORTED_PACKAGES, "not_imported": _NOT_IMPORTED}
    try:
        proc = subprocess.run(
            [python, "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeUnavailable(f"cannot start runtime {python}: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeUnavailable(f"runtime {python} failed its probe: {proc.stderr.strip()[-2000:]}")
    data = json.loads(proc.stdout)
    return RuntimeInfo(**data)


_CACHE_VERSION = 2  # 2: TensorFlow and Keras reported


def _stamp(path: str) -> list[int] | None:
    """Changes when the file or folder does: mtime and size (None if it is gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def _cache_key(python: str) -> dict[str, object]:
    return {"version": _CACHE_VERSION, "python": python, "stamp": _stamp(python)}


def _cache_file(python: str, cache_dir: Path) -> Path:
    return cache_dir / f"runtime-{hashlib.sha256(python.encode()).hexdigest()[:16]}.json"


@functools.lru_cache(maxsize=8)
def _cached_probe(python: str, cache_dir: Path) -> RuntimeInfo:
    """The probe's answer from ``cache_dir`` when the interpreter (path, mtime, size) and the
    folders on its sys.path (their mtime changes when a library is added or removed) are as they
    were; otherwise probe and store. A cache that cannot be read or written is simply skipped."""
    path = _cache_file(python, cache_dir)
    key = _cache_key(python)
    with contextlib.suppress(OSError, ValueError, TypeError):
        stored = json.loads(path.read_text(encoding="utf-8"))
        info = RuntimeInfo(**stored["info"])
        if stored["key"] == key and stored["paths"] == {p: _stamp(p) for p in info.path}:
            return info
    info = _probe(python)
    record = {"key": key, "paths": {p: _stamp(p) for p in info.path}, "info": dataclasses.asdict(info)}
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=cache_dir, delete=False, suffix=".tmp", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(f.name, path)
    return info


def find_runtime(
    explicit: str | os.PathLike[str] | None = None,
    *,
    cache_dir: Path | None = None,
    name: RuntimeName = RuntimeName.NUMPY,
) -> Runtime:
    """The NumPy runtime to use: an explicit path (the service's KATAKANA_RUNTIME_PYTHON, the command
    line's --runtime-python), else the set-up default.

    A trainee running the local checker without the reference runtime gets their own interpreter,
    which behaves the same apart from library versions.
    """
    if explicit:
        return Runtime(Path(os.path.abspath(explicit)), cache_dir, name)
    for candidate in default_locations(name):
        if candidate.exists():
            return Runtime(candidate, cache_dir, name)
    return Runtime(Path(sys.executable), cache_dir, name)


def find_tensorflow_runtime(
    explicit: str | os.PathLike[str] | None = None, *, cache_dir: Path | None = None, own_interpreter: bool = False
) -> Runtime | None:
    """The TensorFlow runtime: an explicit path, else the set-up default; None when not installed.

    ``own_interpreter`` (the trainee's local checker): without the set-up runtime, this interpreter
    serves when it can import TensorFlow, as the NumPy runtime falls back to it.
    """
    if explicit:
        return Runtime(Path(os.path.abspath(explicit)), cache_dir, RuntimeName.TENSORFLOW)
    for candidate in default_locations(RuntimeName.TENSORFLOW):
        if candidate.exists():
            return Runtime(candidate, cache_dir, RuntimeName.TENSORFLOW)
    if own_interpreter:
        import importlib.util

        if importlib.util.find_spec("tensorflow") is not None:
            return Runtime(Path(sys.executable), cache_dir, RuntimeName.TENSORFLOW)
    return None


@dataclass(frozen=True)
class Runtimes:
    """The runtimes a service or command line has: the NumPy reference, and TensorFlow if installed."""

    numpy: Runtime
    tensorflow: Runtime | None = None

    def get(self, name: RuntimeName) -> Runtime | None:
        return self.numpy if name is RuntimeName.NUMPY else self.tensorflow

    def installed(self) -> tuple[Runtime, ...]:
        return (self.numpy,) if self.tensorflow is None else (self.numpy, self.tensorflow)
