"""The bubblewrap command line for one run: what the sandboxed process can see, and how it is started.

The view is built from nothing (bwrap's empty root, remounted read-only at the end) plus:
- /usr read-only, with /bin, /lib, /lib64, /sbin mirroring the host (symlinks on merged-/usr hosts);
- a fresh /proc for the new pid namespace;
- a /dev made by hand inside the read-only root: the null, full, random and urandom devices, the
  fd/stdin/stdout/stderr links and a *sized* tmpfs at /dev/shm. Not bwrap's ``--dev``: that is an
  unsized, writable tmpfs (RAM that no limit counted), and it brings /dev/zero, whose shared
  mappings are memory that can outlive every mapping of it unseen by a poller (see usage), and
  terminals, which nothing here needs;
- a minimal /etc: ld.so.cache (shared-library lookup) and a synthetic passwd/group naming the
  sandbox user, so ``getpass``/``pwd``/``Path.home()`` work without the host's account files;
- each writable dir as a *sized* tmpfs (an unsized tmpfs is RAM that RLIMIT_AS does not count);
- the request's binds, read-only, and its data files (copied by bwrap into its root, read-only).
Nothing else of the host is visible: not /etc, /home, /root, /sys, the repository or the worker's
temp files. /proc/self/mountinfo shows a bind's *source* path whatever its destination, so what is
private to a run comes as a data file or through a descriptor, never as a bind.

The command runs as PID 1 of the new pid namespace (``--as-pid-1``) through ``timeout -s KILL``:
whatever happens to the worker, PID 1 dies after wall+grace and takes the whole namespace with it.
``--die-with-parent`` alone loses a race with bwrap's startup: when the parent dies within
milliseconds of starting bwrap, a daemonised child (fork, setsid, fork) outlives the sandbox
(bubblewrap issue 633).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from scorer.sandbox.types import SandboxRequest

SANDBOX_UID = 1000  # the uid the code sees inside; mapped to the pool uid (or the caller) outside
SANDBOX_USER = "sandbox"
SANDBOX_HOSTNAME = "sandbox"

# Host top-level entries that only hold system binaries and libraries; shown as on the host.
SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

# Entries of the host's /etc shown read-only when they exist; nothing secret. ld.so.cache finds
# shared libraries; fonts/ is fontconfig's configuration (Pillow and matplotlib load it).
ETC_FILES = ("ld.so.cache", "fonts")

PASSWD = (
    f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
    f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_UID}:{SANDBOX_USER}:/tmp:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_UID}:\nnogroup:x:65534:\n"

# The host's device nodes shown in /dev (bound: a user namespace may not create device nodes).
DEVICES = ("null", "full", "random", "urandom")
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)

# BLAS/OpenMP pools size themselves to the host's cores; every thread's stack counts in RLIMIT_AS.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)

# The sandbox's PID 1 kills the command this long after the wall limit, as a backstop for the
# worker's own (earlier) kill.
WALL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class BwrapFds:
    """Fd numbers, as seen by bwrap, of what the parent passes along."""

    seccomp: int | None  # the BPF program (memfd), or None to run without a filter
    status: int  # bwrap writes JSON lines: child-pid, then exit-code if the command was executed
    etc_passwd: int  # pipes holding the synthetic files (read by bwrap with --ro-bind-data)
    etc_group: int
    files: tuple[int, ...] = ()  # one per request.files, in order, read the same way


def find_bwrap(bwrap_path: str) -> str | None:
    """The bwrap executable, resolved against PATH; None when absent."""
    return shutil.which(bwrap_path)


def find_timeout() -> str:
    """GNU timeout, which must live under the read-only system dirs shown in the sandbox."""
    found = shutil.which("timeout", path="/usr/bin:/bin")
    if found is None:
        raise FileNotFoundError("GNU coreutils 'timeout' not found in /usr/bin or /bin")
    return found


def sandbox_env(request: SandboxRequest) -> dict[str, str]:
    """The command's complete environment: the request's, plus thread caps it did not set."""
    env = dict(request.env)
    threads = str(max(1, request.limits.cpus))
    for name in THREAD_ENV:
        env.setdefault(name, threads)
    return env


def timeout_argv(request: SandboxRequest, timeout_path: str) -> list[str]:
    """``timeout -s KILL <idle+startup+wall+grace> -- argv``: the sandbox's PID 1."""
    seconds = request.idle_seconds + request.startup_seconds + request.limits.wall_seconds + WALL_GRACE_SECONDS
    return [timeout_path, "-s", "KILL", "--", f"{seconds:.3f}", *request.argv]


def bwrap_argv(bwrap: str, request: SandboxRequest, fds: BwrapFds, *, timeout_path: str) -> list[str]:
    """The complete bwrap command line (bwrap itself must be started with an empty environment)."""
    limits = request.limits
    args = [
        bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        SANDBOX_HOSTNAME,
        "--clearenv",
    ]
    for key, value in sandbox_env(request).items():
        args += ["--setenv", key, value]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_DIRS:
        host = f"/{name}"
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    args += ["--proc", "/proc"]
    for name in DEVICES:
        args += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
    for name, target in DEV_LINKS:
        args += ["--symlink", target, f"/dev/{name}"]
    args += ["--perms", "01777", "--size", str(limits.writable_bytes), "--tmpfs", "/dev/shm"]
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind-data", str(fds.etc_passwd), "/etc/passwd"]
    args += ["--ro-bind-data", str(fds.etc_group), "/etc/group"]
    for directory in request.writable_dirs:
        args += ["--perms", "01777", "--size", str(limits.writable_bytes), "--tmpfs", directory]
    for bind in request.binds:
        args += ["--ro-bind", str(bind.source), bind.dest]
    for fd, data_file in zip(fds.files, request.files, strict=True):
        args += ["--ro-bind-data", str(fd), data_file.dest]
    args += ["--remount-ro", "/", "--chdir", request.cwd]
    if fds.seccomp is not None:
        args += ["--seccomp", str(fds.seccomp)]
    args += ["--json-status-fd", str(fds.status), "--as-pid-1", "--"]
    args += timeout_argv(request, timeout_path)
    return args
