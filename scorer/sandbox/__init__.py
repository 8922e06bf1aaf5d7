"""Run a command in a bubblewrap sandbox under limits, and report how it ended.

The sandbox is generic: it shows the command only the request's read-only binds and sized writable
tmpfs dirs, no network, an empty environment plus what the request sets, a seccomp filter, rlimits
on every process, a control group per run (memory and processes of the run as a whole, see cgroup),
and one unprivileged uid per concurrent run when the worker is root. It knows
nothing of submissions; the pipeline interprets the outcome. Each module's docstring says what its
choice defends against.
"""

from scorer.sandbox.config import SandboxConfig, SandboxUnavailable
from scorer.sandbox.run import StartedRun, detect_accounting, detect_isolation, run_sandboxed, start_sandboxed
from scorer.sandbox.spawn import RESULT_FD
from scorer.sandbox.types import (
    Bind,
    DataFile,
    Isolation,
    Limits,
    SandboxOutcome,
    SandboxRequest,
    Termination,
)

__all__ = [
    "RESULT_FD",
    "Bind",
    "DataFile",
    "Isolation",
    "Limits",
    "SandboxConfig",
    "SandboxOutcome",
    "SandboxRequest",
    "SandboxUnavailable",
    "StartedRun",
    "Termination",
    "detect_accounting",
    "detect_isolation",
    "run_sandboxed",
    "start_sandboxed",
]
