"""Limits for a run as a whole: one control group per run, or a polling supervisor where there is none.

rlimits bound each process on its own: three children of 1.8 GiB each fit a 4 GiB RLIMIT_AS, and
what a run writes to its tmpfs mounts (/tmp, /work, /dev/shm) is RAM that RLIMIT_AS never sees;
RLIMIT_NPROC counts every process of a uid on the host, not of a run. A control group counts all of
it together: the kernel charges tmpfs pages to the group of the process that wrote them, its OOM
killer stays inside the group, and a pids limit holds per run. Three ways to get one, in order:

- cgroup v2 (``memory.max``, ``memory.swap.max``, ``pids.max``, ``cpu.max``, ``cgroup.kill``,
  ``memory.events`` oom_kill), when the worker's cgroup is delegated to it: the parent must be able
  to enable the memory and pids controllers for its children;
- cgroup v1 (``memory.limit_in_bytes`` + ``memory.memsw.limit_in_bytes``, ``pids.max``,
  ``cpu.cfs_quota_us``, ``memory.oom_control`` oom_kill), when the memory and pids hierarchies are
  mounted and writable (as root on a classic host);
- otherwise a supervisor that adds up, every 100 ms at most, the memory of the run's processes and
  what its tmpfs mounts hold (see usage), and stops the run at the limit. It is weaker (memory
  shared copy-on-write between forked processes is counted once per process, and a burst between
  two samples can overshoot), which is why the cgroup modes come first. What it could not see at
  all (memfds, System V IPC, shared anonymous memory) the seccomp filter refuses in every mode.

In every mode the watch also stops a run whose writable tmpfs mounts together hold more than its
``writable_bytes`` (each mount is sized to the whole amount, so that one file may use all of it).

Groups live under a parent directory (``SandboxConfig.cgroup_parent``) inside the worker's own
cgroup, so a worker confined by its own group confines its runs too. Each run's group is named after
the worker's pid and start time plus a random part: unique across worker slots and concurrent test
processes, and recognisably stale once that worker is gone. Stale groups (a worker killed mid-run)
are swept, their processes killed, when a process first uses a layout.

The sandboxed process joins the group in the forked child, before it executes anything (see
spawn), so bubblewrap and everything the submission starts are inside from the first instruction.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from scorer.sandbox.types import Limits, Termination
from scorer.sandbox.usage import RunMounts, descendants, process_memory, reading_as

log = logging.getLogger(__name__)

CgroupMode = Literal["auto", "v2", "v1", "supervisor"]

V1_CONTROLLERS = ("memory", "pids", "cpu")
V2_CONTROLLERS = ("memory", "pids")  # required; cpu is used when the parent offers it
POLL_SECONDS = 0.1  # how often the run is watched: OOM kills in a group, memory use without one
_KILL_SECONDS = 10.0  # safety net: how long a group's processes may take to vanish after SIGKILL
CFS_PERIOD_US = 100_000
# The worker that made a group: "run-<pid>-<start time in clock ticks>-<random>".
_NAME_PREFIX = "run-"


class Accounting(StrEnum):
    """How a host accounts a run's memory and processes (reported by the self-tests)."""

    CGROUP_V2 = "cgroup-v2"
    CGROUP_V1 = "cgroup-v1"
    SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class Layout:
    """Where run groups are made: for v1 one parent per controller, for v2 a single parent."""

    accounting: Accounting
    parents: tuple[tuple[str, Path], ...] = ()  # (controller or "unified", parent directory)
    why: str = ""  # for the supervisor: why no cgroup mode was usable

    def describe(self) -> str:
        if self.accounting is Accounting.SUPERVISOR:
            return f"{self.accounting.value}: no writable cgroup ({self.why})"
        where = ", ".join(str(path) for _, path in self.parents)
        return f"{self.accounting.value}: one group per run under {where}"


class CgroupUnusable(Exception):
    """A forced cgroup mode cannot work on this host (the message says why)."""


# ------------------------------------------------------------------------------------------ detection


@functools.lru_cache(maxsize=8)
def detect_layout(mode: CgroupMode, parent: str) -> Layout:
    """The layout runs get under ``mode``; probes once per process by creating (and removing) a group.

    Raises CgroupUnusable when a cgroup mode is forced but does not work here. Sweeps stale groups
    left by dead workers under the chosen parents.
    """
    if mode == "supervisor":
        return Layout(Accounting.SUPERVISOR, why="forced by configuration")
    problems: list[str] = []
    for version, finder in (("v2", _v2_parents), ("v1", _v1_parents)):
        if mode not in ("auto", version):
            continue
        try:
            layout = finder(parent)
            _probe(layout)
        except (OSError, CgroupUnusable) as exc:
            problems.append(f"{version}: {exc}")
            continue
        sweep_stale(layout)
        return layout
    if mode != "auto":
        raise CgroupUnusable("; ".join(problems))
    return Layout(Accounting.SUPERVISOR, why="; ".join(problems))


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for v2) → this process's cgroup path, from /proc/self/cgroup."""
    found: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            found[controller] = path
    return found


def _mounts(fstype: str) -> list[tuple[Path, str, set[str]]]:
    """(mount point, root inside the hierarchy, super options) of each mount of ``fstype``."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] == fstype:
            point = Path(fields[4].replace("\\040", " "))
            mounts.append((point, fields[3], set(tail[2].split(","))))
    return mounts


def _inside(point: Path, root: str, own: str, parent: str) -> Path:
    """The parent directory for runs: the worker's own group as seen through this mount, + parent."""
    if os.path.isabs(parent):
        return Path(parent)
    relative = own
    if root != "/" and (own == root or own.startswith(root.rstrip("/") + "/")):
        relative = own[len(root.rstrip("/")) :]
    return point / relative.lstrip("/") / parent


def _v1_parents(parent: str) -> Layout:
    own = _own_cgroups()
    parents = []
    for controller in V1_CONTROLLERS:
        mount = next(((p, r) for p, r, opts in _mounts("cgroup") if controller in opts), None)
        if mount is None or controller not in own:
            raise CgroupUnusable(f"the {controller} controller is not mounted (cgroup v1)")
        parents.append((controller, _inside(*mount, own[controller], parent)))
    return Layout(Accounting.CGROUP_V1, tuple(parents))


def _v2_parents(parent: str) -> Layout:
    mounts = _mounts("cgroup2")
    own = _own_cgroups().get("")
    if not mounts or own is None:
        raise CgroupUnusable("no cgroup2 hierarchy")
    point, root, _ = mounts[0]
    directory = _inside(point, root, own, parent)
    offered = set((directory.parent / "cgroup.controllers").read_text().split())
    missing = [c for c in V2_CONTROLLERS if c not in offered]
    if missing:
        raise CgroupUnusable(f"cgroup2 offers no {', '.join(missing)} controller to {directory.parent}")
    return Layout(Accounting.CGROUP_V2, (("unified", directory),))


def _probe(layout: Layout) -> None:
    """Make the parents, then one limited group, and remove it again: proves the mode is writable."""
    for controller, directory in layout.parents:
        directory.mkdir(parents=True, exist_ok=True)
        if controller == "unified":
            _enable_v2_controllers(directory)
    group = RunGroup.create(layout, Limits())
    group.remove()


def _enable_v2_controllers(directory: Path) -> None:
    """Let ``directory``'s children use memory, pids (and cpu if offered); its parent must offer them.

    Fails with EBUSY when the parent holds processes itself (the "no internal processes" rule): the
    worker has to run in a leaf of its delegated subtree, see docs/operations.md.
    """
    offered = set((directory.parent / "cgroup.controllers").read_text().split())
    wanted = [c for c in (*V2_CONTROLLERS, "cpu") if c in offered]
    enabled = set((directory.parent / "cgroup.subtree_control").read_text().split())
    if not set(wanted) <= enabled:
        _write(directory.parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted if c not in enabled))
    enabled = set((directory / "cgroup.subtree_control").read_text().split())
    if not set(wanted) <= enabled:
        _write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted if c not in enabled))


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as file:
        file.write(value)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""


def _keyed(path: Path, key: str) -> int:
    """A value from a flat-keyed file (``memory.events``, ``memory.oom_control``, ``pids.events``)."""
    for line in _read(path).splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


# -------------------------------------------------------------------------------------------- a group


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _group_name() -> str:
    return f"{_NAME_PREFIX}{os.getpid()}-{_start_time(os.getpid())}-{secrets.token_hex(4)}"


def _owner_alive(name: str) -> bool:
    """Whether the worker that made group ``name`` still runs (same pid *and* start time)."""
    parts = name[len(_NAME_PREFIX) :].split("-")
    if not name.startswith(_NAME_PREFIX) or len(parts) != 3 or not parts[0].isdigit():
        return True  # not ours to judge
    return _start_time(int(parts[0])) == parts[1]


@dataclass
class RunGroup:
    """One run's control group (a directory per v1 controller, or one v2 directory)."""

    layout: Layout
    directories: tuple[tuple[str, Path], ...]

    @classmethod
    def create(cls, layout: Layout, limits: Limits, name: str | None = None) -> RunGroup:
        name = name or _group_name()
        group = cls(layout, tuple((c, parent / name) for c, parent in layout.parents))
        try:
            for _, directory in group.directories:
                directory.mkdir()
            group._set_limits(limits)
        except BaseException:
            group.remove()
            raise
        return group

    def _dir(self, controller: str) -> Path:
        for name, directory in self.directories:
            if name in (controller, "unified"):
                return directory
        raise KeyError(controller)

    def _set_limits(self, limits: Limits) -> None:
        memory = str(limits.memory_bytes)
        quota = max(1, limits.cpus) * CFS_PERIOD_US
        if self.layout.accounting is Accounting.CGROUP_V2:
            directory = self._dir("unified")
            _write(directory / "memory.max", memory)
            if (directory / "memory.swap.max").exists():  # only with swap accounting
                _write(directory / "memory.swap.max", "0")  # swap would let a run exceed its memory
            _write(directory / "memory.oom.group", "1")  # one OOM kill ends the whole run
            _write(directory / "pids.max", str(limits.processes))
            if (directory / "cpu.max").exists():
                _write(directory / "cpu.max", f"{quota} {CFS_PERIOD_US}")
            return
        memory_dir = self._dir("memory")
        _write(memory_dir / "memory.limit_in_bytes", memory)
        if (memory_dir / "memory.memsw.limit_in_bytes").exists():  # only with swap accounting
            _write(memory_dir / "memory.memsw.limit_in_bytes", memory)  # must follow: memsw ≥ memory
        _write(self._dir("pids") / "pids.max", str(limits.processes))
        cpu_dir = self._dir("cpu")
        _write(cpu_dir / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        _write(cpu_dir / "cpu.cfs_quota_us", str(quota))

    def procs_files(self) -> tuple[str, ...]:
        """The files the spawned child writes its pid to, to join every controller's group."""
        return tuple(str(directory / "cgroup.procs") for _, directory in self.directories)

    def oom_kills(self) -> int:
        if self.layout.accounting is Accounting.CGROUP_V2:
            return _keyed(self._dir("unified") / "memory.events", "oom_kill")
        return _keyed(self._dir("memory") / "memory.oom_control", "oom_kill")

    def pids_refused(self) -> int:
        """Forks the pids limit refused (the ``max`` count of ``pids.events``)."""
        return _keyed(self._dir("pids") / "pids.events", "max")

    def memory_peak(self) -> int | None:
        name = "memory.peak" if self.layout.accounting is Accounting.CGROUP_V2 else "memory.max_usage_in_bytes"
        text = _read(self._dir("memory") / name).strip()
        return int(text) if text.isdigit() else None

    def pids(self) -> list[int]:
        found: set[int] = set()
        for _, directory in self.directories:
            found.update(int(pid) for pid in _read(directory / "cgroup.procs").split() if pid.isdigit())
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL everything in the group and wait (bounded) until it is empty.

        v2 has ``cgroup.kill``, which also catches processes forking meanwhile; on v1 the pids limit
        bounds how many a racing fork can add, and the loop repeats until none is left.
        """
        if not self.directories:
            return
        if self.layout.accounting is Accounting.CGROUP_V2:
            with contextlib.suppress(OSError):
                _write(self._dir("unified") / "cgroup.kill", "1")
        deadline = time.monotonic() + _KILL_SECONDS
        while (alive := self.pids()) and time.monotonic() < deadline:
            for pid in alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        if self.pids():
            log.error("cgroup %s: processes %s survive SIGKILL", self.directories[0][1], self.pids())

    def remove(self) -> None:
        """Kill what is left and remove the directories (retrying while the kernel lets go of them)."""
        self.kill()
        for _, directory in self.directories:
            deadline = time.monotonic() + _KILL_SECONDS
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if time.monotonic() >= deadline:
                        log.error("cannot remove cgroup %s: %s", directory, exc)
                        break
                    time.sleep(0.02)


def sweep_stale(layout: Layout) -> list[str]:
    """Remove the groups of workers that are gone (killing anything left in them); their names."""
    names: set[str] = set()
    for _, parent in layout.parents:
        with contextlib.suppress(OSError):
            names.update(entry.name for entry in os.scandir(parent) if entry.is_dir())
    stale = sorted(name for name in names if not _owner_alive(name))
    for name in stale:
        log.warning("removing the cgroup %s of a run whose worker is gone", name)
        group = RunGroup(layout, tuple((c, parent / name) for c, parent in layout.parents))
        group.remove()
    return stale


# ---------------------------------------------------------------------------------- watching a run


@dataclass
class Accounted:
    """What the group (or the supervisor) saw of a run, read after it ended."""

    accounting: Accounting
    memory_limit_hit: bool
    memory_peak_bytes: int | None
    pids_refused: int


class RunLimiter:
    """One run's accounting: the group (if any) its process joins, and the 100 ms watch.

    Use: ``procs_files()`` for spawn, ``start(...)`` once spawned, ``watch`` from the supervision
    loop, ``finish()`` after the run was reaped (kills and removes the group, lets go of the mounts),
    or ``seen()`` as it ended and ``finish()`` later.
    """

    def __init__(self, layout: Layout, limits: Limits) -> None:
        self.layout = layout
        self.limits = limits
        self.group = None if layout.accounting is Accounting.SUPERVISOR else RunGroup.create(layout, limits)
        self.pid: int | None = None
        self.pid1: Callable[[], int | None] = lambda: None
        self.mounts = RunMounts((), limits.writable_bytes)
        self.reader: int | None = None
        self.over_limit = False

    def procs_files(self) -> tuple[str, ...]:
        return self.group.procs_files() if self.group is not None else ()

    def start(
        self,
        pid: int,
        *,
        pid1: Callable[[], int | None] = lambda: None,
        writable: Sequence[str] = (),
        uid: int | None = None,
    ) -> None:
        """``pid`` was spawned; ``pid1`` tells, once known, the sandbox's PID 1, through whose root
        the ``writable`` tmpfs mounts are found; ``uid`` is the run's pool uid (see usage)."""
        self.pid = pid
        self.pid1 = pid1
        self.mounts = RunMounts(writable, self.limits.writable_bytes)
        self.reader = uid

    def watch(self) -> Termination | None:
        """Called every POLL_SECONDS while the run lives: MEMORY_LIMIT once the run is over its memory,
        DISK_LIMIT once its writable mounts together hold more than its writable bytes."""
        if self.pid is None:
            return None
        processes = 0
        if self.group is None or not self.mounts.complete:
            with reading_as(self.reader):
                self.mounts.open_missing(self.pid1())
                if self.group is None:
                    processes = process_memory(descendants(self.pid))
        written = self.mounts.usage()
        if self.group is not None:
            over = self.group.oom_kills() > 0  # the kernel killed one process; the run ends as a whole
        else:
            over = processes + written.memory > self.limits.memory_bytes
        if over:
            self.over_limit = True
            return Termination.MEMORY_LIMIT
        if written.bytes > self.limits.writable_bytes:
            return Termination.DISK_LIMIT
        return None

    def seen(self) -> Accounted:
        """What was seen so far (the group stays): for a run that ended before its processes did
        (a COMPLETED run), read as it ended; its peak is reached by then, an exit only frees."""
        if self.group is None:
            # A sampled peak misses bursts between samples and file pages: no better than wait4's.
            return Accounted(self.layout.accounting, self.over_limit, None, 0)
        hit = self.over_limit or self.group.oom_kills() > 0
        return Accounted(self.layout.accounting, hit, self.group.memory_peak(), self.group.pids_refused())

    def finish(self) -> Accounted:
        """After the run: what was seen; the group's processes are killed and the group removed."""
        self.mounts.close()
        try:
            return self.seen()
        finally:
            if self.group is not None:
                self.group.remove()

    def abandon(self) -> None:
        """The run never started: just remove the group."""
        self.mounts.close()
        if self.group is not None:
            self.group.remove()
