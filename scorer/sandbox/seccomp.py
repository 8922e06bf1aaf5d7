"""The seccomp filter installed (by bwrap, right before exec) on every sandboxed process.

Namespaces alone leave the kernel's attack surface and a few in-sandbox tricks open: the code could
PTRACE_ATTACH the sandbox's PID 1 and hang the run until the wall limit (it did, before this filter),
open io_uring/bpf/perf/userfaultfd (frequent kernel-exploit entry points), create nested namespaces,
or push characters into a terminal with TIOCSTI. The filter answers those with EPERM (so Python
raises a clean OSError) and allows everything else: NumPy, SciPy, matplotlib and fork keep working.

It also refuses the kinds of memory that belong to no process and no mount, which a run could hold
without any limit seeing it where there is no control group (see usage): memfd_create (a memfd
passed into a unix socket and closed is in nobody's fd table), System V IPC (a detached segment, or
message queues, outlive every process that made them), and shared anonymous mappings (shrunk to one
page, a mapping keeps all the pages of its object). The same filter runs in every accounting mode,
so a submission behaves alike in the pre-flight and in scoring; TensorFlow, scikit-learn, joblib
and multiprocessing use none of them (their shared memory is files in /dev/shm, which is counted).

``clone3`` gets ENOSYS rather than EPERM: its flags live in a struct seccomp cannot inspect, and
ENOSYS makes glibc fall back to ``clone``, whose flags we *can* filter for namespace creation.

The BPF program is built once per process and cached as bytes; each run gets a fresh memfd holding
it (spawn.memory_file: bwrap reads the fd to EOF and closes it).
"""

from __future__ import annotations

import errno
import functools
import logging
import tempfile
from dataclasses import dataclass

log = logging.getLogger(__name__)

DENIED_SYSCALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "mount",
    "umount2",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "pivot_root",
    "chroot",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "syslog",
    "open_by_handle_at",
    "name_to_handle_at",
    # Memory outside any process and any mount (see the module docstring).
    "memfd_create",
    "shmget",
    "msgget",
    "semget",
)

# socket(domain, ...): raw packet capture, host<->VM sockets and kernel netlink are never needed.
AF_NETLINK = 16
AF_PACKET = 17
AF_VSOCK = 40
DENIED_SOCKET_FAMILIES = (AF_NETLINK, AF_PACKET, AF_VSOCK)

# ioctl(fd, request): inject input into a terminal / Linux console tricks.
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
DENIED_IOCTLS = (TIOCSTI, TIOCLINUX)

# mmap(addr, length, prot, flags, ...): shared anonymous memory (MAP_SHARED or MAP_SHARED_VALIDATE,
# with MAP_ANONYMOUS). Private mappings and mappings of files are untouched.
MAP_TYPE = 0x0F
MAP_ANONYMOUS = 0x20
DENIED_MMAP_FLAGS = (0x01 | MAP_ANONYMOUS, 0x03 | MAP_ANONYMOUS)

# clone(flags, ...): any new namespace.
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (
    CLONE_NEWTIME,
    CLONE_NEWNS,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
)


@dataclass(frozen=True)
class SeccompFilter:
    """The compiled filter, or why there is none (``bpf`` is None and ``error`` says why)."""

    bpf: bytes | None
    error: str = ""
    skipped: tuple[str, ...] = ()  # syscall names this libseccomp does not know (older kernels)

    @property
    def available(self) -> bool:
        return self.bpf is not None


@functools.cache
def compiled_filter() -> SeccompFilter:
    """Build the BPF program once; on failure warn loudly and report why (the selftest shows it)."""
    try:
        bpf, skipped = _build()
    except Exception as exc:  # ImportError, OSError from libseccomp, RuntimeError "Unable to find"
        message = f"seccomp filter unavailable ({type(exc).__name__}: {exc}); running WITHOUT it"
        log.warning("!!! %s", message)
        return SeccompFilter(bpf=None, error=message)
    return SeccompFilter(bpf=bpf, skipped=tuple(skipped))


def _build() -> tuple[bytes, list[str]]:
    import pyseccomp as seccomp

    deny = seccomp.ERRNO(errno.EPERM)
    flt = seccomp.SyscallFilter(seccomp.ALLOW)
    skipped: list[str] = []

    def rule(action: int, name: str, *args: object) -> None:
        try:
            flt.add_rule(action, name, *args)
        except (OSError, ValueError, RuntimeError) as exc:
            # An unknown syscall name on this architecture/libseccomp: nothing to deny.
            if name not in skipped:
                skipped.append(name)
            log.debug("seccomp: cannot add rule for %s: %s", name, exc)

    for name in DENIED_SYSCALLS:
        rule(deny, name)
    rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for family in DENIED_SOCKET_FAMILIES:
        rule(deny, "socket", seccomp.Arg(0, seccomp.EQ, family))
    for request in DENIED_IOCTLS:
        rule(deny, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request))
    for flag in NAMESPACE_FLAGS:
        rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    for flags in DENIED_MMAP_FLAGS:
        rule(deny, "mmap", seccomp.Arg(3, seccomp.MASKED_EQ, MAP_TYPE | MAP_ANONYMOUS, flags))

    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.flush()
        out.seek(0)
        data = out.read()
    if not data:
        raise RuntimeError("libseccomp exported an empty program")
    return data, skipped
