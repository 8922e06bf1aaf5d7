"""The reference runtime: the Python interpreter (with its pinned libraries) that trainee code runs in.

A runtime is only an interpreter path, so an admin can add another one later (say, with TensorFlow).
Everything else is asked of the interpreter itself, once: its versions, which libraries it offers,
and which host folders must be shown (read-only) inside the sandbox for it to start.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
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

    def info(self) -> RuntimeInfo:
        return _probe(str(self.python))

    def binds(self) -> list[Bind]:
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


def find_runtime(explicit: str | os.PathLike[str] | None = None) -> Runtime:
    """The runtime to use: an explicit path (the service's KATAKANA_RUNTIME_PYTHON, the command
    line's --runtime-python), else the set-up default.

    A trainee running the local checker without the reference runtime gets their own interpreter,
    which behaves the same apart from library versions.
    """
    if explicit:
        return Runtime(Path(os.path.abspath(explicit)))
    for candidate in DEFAULT_LOCATIONS:
        if candidate.exists():
            return Runtime(candidate)
    return Runtime(Path(sys.executable))
