"""How the sandbox is set up on this host, and the error for "the real sandbox is required but absent".

The configuration is a frozen (hashable) value so that the isolation probe can be cached per
configuration: a worker probes once at start, not before every run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from scorer.sandbox.cgroup import CgroupMode

Mode = Literal["auto", "bwrap", "unsandboxed"]


def _default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "katakana-sandbox-locks"


@dataclass(frozen=True)
class SandboxConfig:
    """Sandbox settings.

    mode: "bwrap" requires bubblewrap; "unsandboxed" forces the plain-subprocess fallback (laptops,
    tests of the fallback); "auto" uses bubblewrap when it works and otherwise falls back, but only
    if ``allow_unsandboxed`` — production sets it False so a broken host fails loudly instead of
    running hostile code unconfined.

    uid_base/uid_count: when the worker runs as root, each concurrent run gets its own unprivileged
    uid from this range, because RLIMIT_NPROC counts every process of a uid on the host (and is not
    enforced for root at all). The uids need no /etc/passwd entry. ``lock_dir`` holds one lock file
    per uid; it must be private to the worker's user (it is created 0700 and refused if someone
    else owns it).

    cgroup_mode: how a run's memory (processes and tmpfs together) and processes are limited as a
    whole. "auto" takes cgroup v2, else v1, else the polling supervisor; "v2"/"v1" require that
    mode (runs fail as the server's fault without it); "supervisor" forces the fallback (tests of
    it, hosts whose cgroups must not be touched). ``cgroup_parent`` names the directory, inside
    the worker's own cgroup, that holds the run groups (or is an absolute path to one).
    """

    mode: Mode = "auto"
    allow_unsandboxed: bool = True
    bwrap_path: str = "bwrap"
    uid_base: int = 200_000
    uid_count: int = 64
    lock_dir: Path = field(default_factory=_default_lock_dir)
    seccomp: bool = True
    cgroup_mode: CgroupMode = "auto"
    cgroup_parent: str = "katakana-sandbox"


class SandboxUnavailable(Exception):
    """The real sandbox is required (mode "bwrap", or "auto" without the fallback) but cannot run.

    The pipeline maps this to a server-side error (the trainee keeps their upload slot).
    """
