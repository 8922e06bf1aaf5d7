"""One unprivileged host uid per concurrent run, when the worker runs as root.

Why: RLIMIT_NPROC counts every process of a *uid* on the host, not of a run, and the kernel does not
enforce it for root at all. Giving each concurrent run its own uid makes the fork-bomb limit a
per-run limit, and keeps runs from signalling or tracing each other.

Which uid is free is decided by a non-blocking ``flock`` on a per-uid lock file, held for the whole
run: locks vanish with the process that held them, so a crashed worker never leaks a uid. A uid whose
lock we now hold may still have processes left by a worker that died uncleanly (the pid namespace and
``--die-with-parent`` make that unlikely); they are killed before the uid is reused, since holding the
lock proves nobody else is using it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import signal
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scorer.sandbox.config import SandboxConfig, SandboxUnavailable

log = logging.getLogger(__name__)

_SWEEP_SECONDS = 10.0  # safety net for straggler processes to disappear after SIGKILL


@dataclass(frozen=True)
class Lease:
    """The identity a run's bwrap is started with; ``uid`` None means "as the current user"."""

    uid: int | None
    gid: int | None


def needs_pool() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def lease(config: SandboxConfig) -> Iterator[Lease]:
    """Hold a free pool uid for the duration of the ``with`` block (or none when not root)."""
    if not needs_pool():
        yield Lease(uid=None, gid=None)
        return
    lock_dir = _prepare_lock_dir(config.lock_dir)
    uids = list(range(config.uid_base, config.uid_base + config.uid_count))
    start = random.randrange(len(uids))  # noqa: S311 (spreads workers over the pool; not a secret)
    for uid in uids[start:] + uids[:start]:
        fd = os.open(lock_dir / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            kill_processes_of(uid, "left over from an earlier run")
            yield Lease(uid=uid, gid=uid)
        finally:
            os.close(fd)  # releases the lock
        return
    raise SandboxUnavailable(
        f"all {config.uid_count} sandbox uids ({config.uid_base}..) are busy; "
        "raise SandboxConfig.uid_count or run fewer concurrent runs"
    )


def _prepare_lock_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise SandboxUnavailable(f"sandbox lock dir {path} is not a directory owned by us; refusing it")
    return path


def processes_of(uid: int) -> list[int]:
    """Live (non-zombie) pids whose real uid is ``uid``, read from /proc.

    Zombies are left out: they run nothing, SIGKILL cannot remove them, and their parent (or init)
    reaps them.
    """
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        state = fields.get("State", "").split()
        real_uid = fields.get("Uid", "").split()
        if real_uid and int(real_uid[0]) == uid and state and state[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def kill_processes_of(uid: int, why: str) -> None:
    """SIGKILL every process of a pool uid we hold the lock of, and wait (bounded) until they are gone."""
    stragglers = processes_of(uid)
    if not stragglers:
        return
    log.warning("sandbox uid %d: killing %d process(es) %s", uid, len(stragglers), why)
    deadline = time.monotonic() + _SWEEP_SECONDS
    while stragglers and time.monotonic() < deadline:
        for pid in stragglers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
        stragglers = processes_of(uid)
    if stragglers:
        raise SandboxUnavailable(f"cannot clear processes {stragglers} of sandbox uid {uid}")
