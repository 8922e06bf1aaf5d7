"""The unsandboxed fallback: the same request, run as a plain subprocess on a host without bubblewrap.

This exists so a trainee's laptop (or a developer's) can run the checker; it is NOT a security
boundary. It keeps what a plain process can keep: the same rlimits, an empty environment (the
request's only), its own session so the whole process group is killed, and the same paths — each
``Bind.dest`` is mapped to its host source, each data file to a copy and each writable dir to a
fresh temp dir, and those prefixes are rewritten in argv, env values and cwd, so ``/submission/x.py``
reaches the host copy. Code that builds paths at run time from other strings is not rewritten, and a
process that calls setsid() escapes the group kill. Production sets ``allow_unsandboxed=False``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scorer.sandbox.bwrap import sandbox_env
from scorer.sandbox.types import SandboxRequest

log = logging.getLogger(__name__)

WARNING = (
    "!!! running UNSANDBOXED: bubblewrap is unavailable, the submission runs with the worker's "
    "own file and network access (only rlimits apply). Never do this on a server. !!!"
)


@dataclass
class UnsandboxedCommand:
    """What to spawn, plus the temp dirs standing in for the writable dirs (remove with cleanup())."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    temp_dirs: list[Path] = field(default_factory=list)

    def cleanup(self) -> None:
        for directory in self.temp_dirs:
            shutil.rmtree(directory, ignore_errors=True)


class PathMap:
    """Rewrites sandbox paths to host paths by their longest matching prefix."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self._pairs = sorted(
            ((dest.rstrip("/") or "/", host) for dest, host in mapping.items()),
            key=lambda pair: len(pair[0]),
            reverse=True,
        )

    def __call__(self, value: str) -> str:
        for dest, host in self._pairs:
            if value == dest:
                return host
            if value.startswith(dest + "/"):
                return host + value[len(dest) :]
        return value


def _rewrite_list(rewrite: PathMap, value: str) -> str:
    """Env values are often colon-separated path lists (PYTHONPATH=/submission:/harness)."""
    return ":".join(rewrite(part) for part in value.split(":"))


def unsandboxed_command(request: SandboxRequest) -> UnsandboxedCommand:
    """Map the request onto host paths. Warns loudly: see the module docstring."""
    log.warning(WARNING)
    temp_dirs: list[Path] = []
    mapping: dict[str, str] = {}
    try:
        for directory in request.writable_dirs:
            host = Path(tempfile.mkdtemp(prefix="katakana-unsandboxed-"))
            temp_dirs.append(host)
            mapping[directory] = str(host)
        for bind in request.binds:
            mapping[bind.dest] = str(bind.source)
        if request.files:
            files = Path(tempfile.mkdtemp(prefix="katakana-unsandboxed-files-"))
            temp_dirs.append(files)
            for index, data_file in enumerate(request.files):
                host = files / str(index) / Path(data_file.dest).name
                host.parent.mkdir()
                host.write_bytes(data_file.data)
                mapping[data_file.dest] = str(host)
        rewrite = PathMap(mapping)
        return UnsandboxedCommand(
            argv=[rewrite(arg) for arg in request.argv],
            env={key: _rewrite_list(rewrite, value) for key, value in sandbox_env(request).items()},
            cwd=rewrite(request.cwd),
            temp_dirs=temp_dirs,
        )
    except BaseException:
        for made in temp_dirs:
            shutil.rmtree(made, ignore_errors=True)
        raise
