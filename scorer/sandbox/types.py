"""What a sandboxed run is asked to do, and what came of it.

The sandbox knows nothing of katakana, zips or labels: it runs a command over a filesystem view made
only of what the request names, under limits, and reports how the process ended. The pipeline decides
what that means for a submission.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

GiB = 1024**3
MiB = 1024**2
KiB = 1024


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Defaults are the production ones from the course's requirements."""

    wall_seconds: float = 600.0
    cpu_seconds: float | None = None  # None: derived from wall_seconds and cpus
    memory_bytes: int = 4 * GiB  # the run's memory as a whole (cgroup), and RLIMIT_AS of each process
    processes: int = 64  # the run's processes (cgroup pids limit); RLIMIT_NPROC per sandbox uid too
    # What the writable tmpfs mounts (/work, /tmp, /dev/shm) may hold together; each is sized to all
    # of it (one file may use it all, RLIMIT_FSIZE), and the watch stops the run past the total.
    writable_bytes: int = 256 * MiB
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 8 * MiB  # stdout+stderr read before the run is stopped as too chatty
    log_keep_bytes: int = 64 * KiB  # head and tail of the output kept, this many bytes each
    result_bytes: int = 64 * MiB  # the result channel (fd 3) read before the run is stopped
    cpus: int = 1  # BLAS/OpenMP threads

    def effective_cpu_seconds(self) -> float:
        if self.cpu_seconds is not None:
            return self.cpu_seconds
        return self.wall_seconds * max(1, self.cpus) + 5

    def overridden(
        self, *, wall_seconds: float | None = None, memory_mb: int | None = None, cpus: int | None = None
    ) -> Limits:
        """These limits with an operator's overrides (None keeps the value): the service's settings
        and the command line's flags name the same three."""
        limits = self
        if wall_seconds is not None:
            limits = dataclasses.replace(limits, wall_seconds=wall_seconds)
        if memory_mb is not None:
            limits = dataclasses.replace(limits, memory_bytes=memory_mb * MiB)
        if cpus is not None:
            limits = dataclasses.replace(limits, cpus=cpus)
        return limits


@dataclass(frozen=True)
class Bind:
    """A host path shown read-only inside the sandbox at ``dest``."""

    source: Path
    dest: str


@dataclass(frozen=True)
class DataFile:
    """A read-only file at ``dest`` made from ``data``: nothing of the host is bound for it, so no
    /proc/PID/mountinfo inside names a host path (bwrap copies it into the sandbox's own root)."""

    dest: str
    data: bytes


@dataclass(frozen=True)
class SandboxRequest:
    argv: list[str]  # run inside the sandbox; argv[0] must be reachable through the binds
    binds: list[Bind] = field(default_factory=list)  # read-only
    files: list[DataFile] = field(default_factory=list)  # read-only, made from bytes
    writable_dirs: list[str] = field(default_factory=lambda: ["/tmp", "/work"])  # sized tmpfs each
    env: dict[str, str] = field(default_factory=dict)  # the complete environment of the command
    cwd: str = "/"
    limits: Limits = field(default_factory=Limits)
    # Written to the command's stdin when the run is handed over, then stdin is closed (at most
    # STDIN_MAX bytes: it must fit the pipe, the command may not be reading yet).
    stdin: bytes = b""
    # Host fds the command inherits under the same numbers (each must be above spawn's fd floor,
    # clear of fd 3); the caller keeps and closes its own copies.
    pass_fds: tuple[int, ...] = ()
    # How long a pre-started command may wait for its hand-over (see start_sandboxed) before the
    # wall clock starts; the sandbox's PID-1 backstop covers this idle time plus the wall limit.
    idle_seconds: float = 0.0
    # How long the command may take from its start to being ready (its first write to the result
    # channel) before the hand-over, off the wall clock; 0: hand over at once. A command that is not
    # ready in time ends as SETUP_FAILED. The PID-1 backstop covers this too.
    startup_seconds: float = 0.0
    # How to tell that the result channel holds the command's complete result. Given, a run whose
    # channel holds a complete result ends there (COMPLETED): what is left of it is killed, and its
    # reaping can wait (StartedRun.hand_over), for a process's exit can take long (tearing down
    # TensorFlow's mappings took 0.2-0.9 s) and can no longer change the result. Only for commands
    # whose result is final once written: the verdict must read the channel no further than that.
    result_complete: Callable[[bytes], bool] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.stdin) > STDIN_MAX:
            raise ValueError(f"stdin of {len(self.stdin)} bytes: at most {STDIN_MAX}")


STDIN_MAX = 60 * KiB  # under Linux's default pipe capacity (64 KiB): the write never blocks


class Isolation(StrEnum):
    BWRAP = "bwrap"
    UNSANDBOXED = "unsandboxed"  # the loud fallback for laptops without bubblewrap


class Termination(StrEnum):
    EXITED = "exited"  # the command exited by itself (see exit_code)
    SIGNALLED = "signalled"  # killed by a signal it did not get from us (see signal)
    WALL_TIMEOUT = "wall_timeout"
    CPU_TIMEOUT = "cpu_timeout"
    OUTPUT_LIMIT = "output_limit"  # stdout/stderr passed output_bytes
    RESULT_LIMIT = "result_limit"  # the result channel passed result_bytes
    FILE_SIZE_LIMIT = "file_size_limit"  # SIGXFSZ
    DISK_LIMIT = "disk_limit"  # the writable mounts together held more than writable_bytes
    MEMORY_LIMIT = "memory_limit"  # the run as a whole (processes + tmpfs) went over memory_bytes
    SETUP_FAILED = "setup_failed"  # the sandbox itself could not start the command
    # Its result channel held a complete result (SandboxRequest.result_complete): the rest of the
    # run was killed then, not waited for; its exit status is not known.
    COMPLETED = "completed"


@dataclass
class SandboxOutcome:
    termination: Termination
    exit_code: int | None
    signal: int | None
    isolation: Isolation
    log_head: bytes  # first log_keep_bytes of stdout+stderr, interleaved as written
    log_tail: bytes  # last log_keep_bytes (empty when everything fits in the head)
    log_total_bytes: int
    result: bytes  # everything the command wrote to its result channel (fd 3)
    duration_s: float
    cpu_s: float  # from wait4; 0 when the run was COMPLETED (its processes were not waited for)
    # The run's cgroup peak (processes, tmpfs, page cache) when there is one, read as it ended; else
    # from wait4 on bwrap: an upper bound, since Linux carries the memory high-water mark of the
    # process that forked bwrap (the worker) into it (0 when COMPLETED). A command that can,
    # measures its own peak.
    peak_memory_bytes: int
    setup_error: str = ""  # bwrap's own complaint when termination is SETUP_FAILED
    accounting: str = ""  # how memory and processes were limited as a whole: cgroup-v2, cgroup-v1, supervisor
    pids_refused: int = 0  # forks the run's pids cgroup refused (0 without a pids cgroup)

    @property
    def log(self) -> str:
        """The kept output as text; a marker stands where the middle was dropped."""
        head = self.log_head.decode("utf-8", "replace")
        if not self.log_tail:
            return head
        dropped = self.log_total_bytes - len(self.log_head) - len(self.log_tail)
        tail = self.log_tail.decode("utf-8", "replace")
        return f"{head}\n… [{dropped} bytes of output omitted] …\n{tail}"
