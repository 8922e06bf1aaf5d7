"""The seccomp filter: the listed attacks fail with EPERM (clone3 with ENOSYS), ordinary work goes on."""

from __future__ import annotations

from scorer.sandbox import Termination
from scorer.sandbox.seccomp import compiled_filter

from .conftest import RunPy

LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"


def test_the_filter_compiles() -> None:
    compiled = compiled_filter()
    assert compiled.available, compiled.error
    assert compiled.bpf


def test_ptrace_of_pid_1_is_denied(run_py: RunPy) -> None:
    code = LIBC + "rc = libc.ptrace(16, 1, None, None)\nprint('PTRACE', rc, ctypes.get_errno())\n"
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "PTRACE -1 1" in outcome.log  # EPERM


def test_namespaces_and_mounts_are_denied(run_py: RunPy) -> None:
    code = LIBC + (
        "CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000\n"
        "print('UNSHARE', libc.unshare(CLONE_NEWUSER), ctypes.get_errno())\n"
        "print('MOUNT', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())\n"
        "print('CHROOT', libc.chroot(b'/tmp'), ctypes.get_errno())\n"
        "SYS_clone3 = 435\n"
        "print('CLONE3', libc.syscall(SYS_clone3, None, 0), ctypes.get_errno())\n"
        "SYS_clone = 56\n"
        "rc = libc.syscall(SYS_clone, CLONE_NEWNS | 17, None, None, None, None)\n"
        "print('CLONE', rc, ctypes.get_errno())\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    lines = outcome.log.split("\n")
    assert "UNSHARE -1 1" in lines
    assert "MOUNT -1 1" in lines
    assert "CHROOT -1 1" in lines
    assert "CLONE3 -1 38" in lines  # ENOSYS, so libc falls back to the filterable clone
    assert "CLONE -1 1" in lines


def test_odd_socket_families_and_tiocsti_are_denied(run_py: RunPy) -> None:
    code = LIBC + (
        "import socket\n"
        "for family in (socket.AF_PACKET, socket.AF_VSOCK, socket.AF_NETLINK):\n"
        "    try:\n"
        "        kind = socket.SOCK_STREAM if family == socket.AF_VSOCK else socket.SOCK_RAW\n"
        "        socket.socket(family, kind)\n"
        "        print('OPENED', family)\n"
        "    except OSError as e:\n"
        "        print('DENIED', family, e.errno)\n"
        "print('TIOCSTI', libc.ioctl(0, 0x5412, ctypes.c_char_p(b'x')), ctypes.get_errno())\n"
        "s = socket.socket(socket.AF_UNIX); s.close(); print('UNIX OK')\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "OPENED" not in outcome.log
    assert outcome.log.count("DENIED") == 3
    assert "TIOCSTI -1 1" in outcome.log
    assert "UNIX OK" in outcome.log


def test_threads_and_processes_still_work(run_py: RunPy) -> None:
    code = (
        "import threading, multiprocessing as mp\n"
        "t = threading.Thread(target=print, args=('THREAD',)); t.start(); t.join()\n"
        "with mp.get_context('fork').Pool(2) as pool: print('POOL', sum(pool.map(abs, [-1, -2, -3])))\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "THREAD" in outcome.log
    assert "POOL 6" in outcome.log


def test_the_x32_syscall_abi_cannot_bypass_the_filter(run_py: RunPy) -> None:
    # x32 syscall numbers (bit 30 set) are another way into ptrace on x86_64: the filter kills them.
    code = LIBC + "libc.syscall(0x40000000 | 521, 16, 1, 0, 0)\nprint('SURVIVED')\n"
    outcome = run_py(code)
    assert "SURVIVED" not in outcome.log
    assert outcome.termination is Termination.SIGNALLED
    assert outcome.signal == 31  # SIGSYS


def test_memory_outside_processes_and_mounts_is_refused(run_py: RunPy) -> None:
    # A memfd, System V IPC and shared anonymous memory can outlive every process that maps them
    # (a memfd in flight in a unix socket, a detached segment, a mapping shrunk to one page):
    # without a control group nothing would count them, so no mode allows them.
    code = LIBC + (
        "import mmap\n"
        "try:\n"
        "    os.memfd_create('x'); print('MEMFD MADE')\n"
        "except OSError as e:\n"
        "    print('MEMFD', e.errno)\n"
        "for flags in (mmap.MAP_SHARED, 0x03):\n"  # MAP_SHARED_VALIDATE too
        "    rc = libc.mmap(None, 4096, 3, flags | 0x20, -1, 0)\n"
        "    print('SHARED ANON', ctypes.c_void_p(rc).value == ctypes.c_void_p(-1).value, ctypes.get_errno())\n"
        "print('SHMGET', libc.shmget(0, 4096, 0o1600), ctypes.get_errno())\n"
        "print('MSGGET', libc.msgget(0, 0o1600), ctypes.get_errno())\n"
        "print('SEMGET', libc.semget(0, 1, 0o1600), ctypes.get_errno())\n"
        "private = mmap.mmap(-1, 1 << 20, flags=mmap.MAP_PRIVATE); private[:3] = b'abc'\n"
        "with open('/dev/shm/shared', 'w+b') as f:\n"
        "    f.write(bytes(4096)); f.flush()\n"
        "    view = mmap.mmap(f.fileno(), 4096); view[:2] = b'ok'; print('FILE MAP', view[:2].decode())\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    lines = outcome.log.split("\n")
    assert "MEMFD 1" in lines
    assert lines.count("SHARED ANON True 1") == 2
    for call in ("SHMGET", "MSGGET", "SEMGET"):
        assert f"{call} -1 1" in lines
    assert "FILE MAP ok" in lines  # private memory and shared files (counted by their mount) work
