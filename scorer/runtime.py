"""The reference runtime: the Python interpreter (with its pinned libraries) that trainee code runs in.

A runtime is only an interpreter path, so an admin can add another one later (say, with TensorFlow).
Everything else is asked of the interpreter itself, once: its versions, which libraries it offers,
and which host folders must be shown (read-only) inside the sandbox for it to start.
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
from dataclasses import dataclass, field
from pathlib import Path

from scorer.sandbox.types import Bind

# Libraries a course notebook typically imports at the top; reported with their versions.
REPORTED_PACKAGES = ("numpy", "scipy", "pandas", "matplotlib", "sklearn", "PIL")

DEFAULT_LOCATIONS = (
    Path("/opt/katakana/runtime/bin/python"),
    Path.home() / ".local/share/katakana-scorer/runtime/bin/python",
)

_PROBE = r"""
import importlib, json, os, pkgutil, sys
versions = {}
for name in %(packages)r:
    try:
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


class RuntimeUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Runtime:
    python: Path
    # Where the probe's answer may be kept between processes (the command line's: starting the
    # runtime to import every library costs over a second); None: once per process only.
    cache_dir: Path | None = field(default=None, compare=False)

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
    code = _PROBE % {"packages": REPORTED_PACKAGES}
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


_CACHE_VERSION = 1


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


def find_runtime(explicit: str | os.PathLike[str] | None = None, *, cache_dir: Path | None = None) -> Runtime:
    """The runtime to use: an explicit path (the service's KATAKANA_RUNTIME_PYTHON, the command
    line's --runtime-python), else the set-up default.

    A trainee running the local checker without the reference runtime gets their own interpreter,
    which behaves the same apart from library versions.
    """
    if explicit:
        return Runtime(Path(os.path.abspath(explicit)), cache_dir)
    for candidate in DEFAULT_LOCATIONS:
        if candidate.exists():
            return Runtime(candidate, cache_dir)
    return Runtime(Path(sys.executable), cache_dir)
