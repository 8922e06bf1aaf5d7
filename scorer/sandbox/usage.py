"""What a run holds in memory and on its writable mounts, read from outside while it runs.

Where there is no control group nothing in the kernel adds up a run's memory, so the supervisor does
(see cgroup.RunLimiter), every POLL_SECONDS, from /proc and from the run's own tmpfs mounts:

- the anonymous memory of each process (RssAnon, and VmSwap should the host swap);
- shared memory mapped by its processes on no mount of the run, once per object at the largest
  resident size any process maps of it (little should be left: see below);
- what its writable tmpfs mounts hold: every file's bytes (unlinked but still open files too), plus
  INODE_BYTES per file for the kernel's inode and dentry, which no byte count shows.

What a poller cannot find is refused instead of counted: /dev is part of the read-only root (see
bwrap), and the seccomp filter refuses memfd_create, System V IPC and shared anonymous mappings
(memory that can belong to no process and no mount, see seccomp). Memory that forked processes share
copy-on-write is counted once per process, an overestimate; a burst between two samples is not seen.

The mounts also give the run's writes in total, in every accounting mode: each tmpfs is sized to the
whole ``writable_bytes`` so that one file may use it all, and the run is stopped once they hold more
than that together.

Reading another uid's /proc entries (a mount through /proc/PID/root, a process's smaps) needs ptrace
rights over it, which a worker that is root without CAP_SYS_PTRACE (Docker's default capabilities)
lacks: there the supervisor saw none of a run's files. So those reads are made as the run's pool uid
(``reading_as``), the owner of the run's namespaces.
The mounts are opened once, as soon as bwrap has made them, and kept open: from then on their figures
need no access to any process of the run, whatever it does to itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import mmap
import os
import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from scorer.sandbox.stop import children_of

INODE_BYTES = 1024  # kernel memory per tmpfs file (inode and dentry) that no byte count shows
_PAGE = mmap.PAGESIZE


# setresuid's number, to change the calling thread's ids alone: glibc's wrappers change every thread.
_SETRESUID = {"x86_64": 117, "aarch64": 147}
_KEEP = -1  # setresuid: leave this id as it is


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _set_effective_uid(uid: int) -> bool:
    number = _SETRESUID.get(platform.machine())
    if number is None:
        return False
    return int(_libc().syscall(number, _KEEP, uid, _KEEP)) == 0


@contextlib.contextmanager
def reading_as(uid: int | None) -> Iterator[None]:
    """Make this thread's /proc reads as ``uid``, the run's pool uid (when we are root).

    The kernel lets a process read another's /proc entries when it may ptrace it: same uid, or
    CAP_SYS_PTRACE over the target's user namespace, which the owner of that namespace has. The
    run's namespaces belong to its pool uid, so with that uid as our *effective* uid (the filesystem
    uid alone fails the capability check) the reads pass without CAP_SYS_PTRACE. Only the calling
    thread changes, through the raw system call, and it is root again on the way out (its real and
    saved uids stay 0, so its capabilities come back). On an architecture not listed, or when the
    switch is refused, the reads are made as ourselves.
    """
    if uid is None or os.geteuid() != 0 or not _set_effective_uid(uid):
        yield
        return
    try:
        yield
    finally:
        if not _set_effective_uid(0):  # cannot fail while the real uid is 0; if it did, stop loudly
            raise RuntimeError("could not become root again after reading a run's /proc entries")


# ------------------------------------------------------------------------------------------ mounts


@dataclass(frozen=True)
class MountUsage:
    """What the run's writable tmpfs mounts hold together."""

    bytes: int
    files: int

    @property
    def memory(self) -> int:
        """Their cost in memory: the bytes, and the kernel's objects for each file."""
        return self.bytes + self.files * INODE_BYTES


class RunMounts:
    """The run's writable tmpfs mounts, opened once through its PID 1 and then held.

    ``paths`` are where the mounts are inside the sandbox, each a tmpfs of ``size_bytes``. Until
    bwrap has made them the same paths through /proc/PID/root are folders of its root (or, before
    it has its own mount namespace, of the host): those are told apart by their size and skipped.
    """

    def __init__(self, paths: Sequence[str], size_bytes: int) -> None:
        self.paths = list(paths)
        self.size = -(-size_bytes // _PAGE) * _PAGE  # tmpfs rounds its size up to whole pages
        self.handles: dict[str, int] = {}

    @property
    def complete(self) -> bool:
        return len(self.handles) == len(self.paths)

    def open_missing(self, pid1: int | None) -> None:
        """Open the mounts not held yet, through ``pid1``'s root (call within ``reading_as``)."""
        if pid1 is None or self.complete or not _own_mount_namespace(pid1):
            return
        for path in self.paths:
            if path in self.handles:
                continue
            try:
                fd = os.open(f"/proc/{pid1}/root{path}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                info = os.fstatvfs(fd)
            except OSError:
                os.close(fd)
                continue
            if info.f_blocks * info.f_frsize != self.size:
                os.close(fd)  # not mounted yet: the folder beneath
                continue
            self.handles[path] = fd

    def usage(self) -> MountUsage:
        total = files = 0
        for fd in self.handles.values():
            info = os.fstatvfs(fd)
            total += (info.f_blocks - info.f_bfree) * info.f_frsize
            files += info.f_files - info.f_ffree
        return MountUsage(total, files)

    def close(self) -> None:
        """Let go of the mounts (they vanish with the last reference; call once the run is over)."""
        while self.handles:
            os.close(self.handles.popitem()[1])


def _own_mount_namespace(pid: int) -> bool:
    """Whether ``pid`` lives in a mount namespace other than ours (bwrap has built its view)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False


# ------------------------------------------------------------------------------------------ memory


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/PID/task/*/children)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue += children_of(current)
    return found


def process_memory(pids: list[int]) -> int:
    """The memory the processes hold themselves (call within ``reading_as``).

    Anonymous memory (and its swapped-out part) of each process. Shared memory on the kernel's
    internal mount (shared anonymous mappings; the filter refuses new ones, but the count must not
    rely on it) is counted once per object, at the most any process has resident of it; when a
    process's mappings cannot be read, its whole RssShmem is counted instead. Mapped files of the
    run's own tmpfs are left to the mounts' figure, other mapped files are page cache.
    """
    total = 0
    shared: dict[int, int] = {}
    for pid in pids:
        fields = _status(pid)
        total += fields.get("RssAnon", 0) + fields.get("VmSwap", 0)
        shmem = fields.get("RssShmem", 0)
        if not shmem:
            continue
        try:
            objects = _internal_shmem(pid)
        except OSError:
            total += shmem
            continue
        for inode, resident in objects.items():
            shared[inode] = max(shared.get(inode, 0), resident)
    return total + sum(shared.values())


def _status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/PID/status that count here, in bytes ({} when the process is gone)."""
    wanted = ("RssAnon", "RssShmem", "VmSwap")
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in wanted:
                    found[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return found


def _internal_shmem(pid: int) -> dict[int, int]:
    """Resident bytes of each object on the kernel's internal shmem mount that ``pid`` maps."""
    device = shmem_device()
    objects: dict[int, int] = {}
    current: int | None = None
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as smaps:
        for line in smaps:
            head = line.split(None, 5)
            if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
                current = int(head[4]) if head[3] == device else None
            elif current is not None and line.startswith("Rss:"):
                objects[current] = objects.get(current, 0) + int(line.split()[1]) * 1024
    return objects


@functools.cache
def shmem_device() -> str:
    """The ``major:minor`` (as /proc/PID/maps prints it) of the kernel's internal shmem mount, which
    holds shared anonymous mappings: found by making one here (the filter applies only inside)."""
    region = mmap.mmap(-1, _PAGE, flags=mmap.MAP_SHARED)
    try:
        view = ctypes.c_char.from_buffer(region)
        address = ctypes.addressof(view)
        del view  # the region cannot be closed while a view of it exists
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            for line in maps:
                span, _, _, device, _ = line.split(None, 5)[:5]
                start, end = (int(part, 16) for part in span.split("-"))
                if start <= address < end:
                    return device
    finally:
        region.close()
    return "?"
