"""The bwrap command line: the properties that are cheaper to check on the argv than by attacking."""

from __future__ import annotations

import dataclasses

from scorer.sandbox import Bind, DataFile, Limits, SandboxRequest
from scorer.sandbox.bwrap import BwrapFds, bwrap_argv, sandbox_env
from scorer.sandbox.types import MiB

FDS = BwrapFds(seccomp=11, status=12, etc_passwd=13, etc_group=14)


def _argv(request: SandboxRequest) -> list[str]:
    return bwrap_argv("/usr/bin/bwrap", request, FDS, timeout_path="/usr/bin/timeout")


def _follows(argv: list[str], *sequence: str) -> bool:
    return any(argv[i : i + len(sequence)] == list(sequence) for i in range(len(argv)))


def test_every_writable_dir_is_a_sized_tmpfs() -> None:
    request = SandboxRequest(argv=["/x"], writable_dirs=["/tmp", "/work"], limits=Limits(writable_bytes=8 * MiB))
    argv = _argv(request)
    size = str(8 * MiB)
    for directory in ("/tmp", "/work", "/dev/shm"):
        assert _follows(argv, "--size", size, "--tmpfs", directory)
    assert argv.count("--tmpfs") == 3


def test_dev_is_made_by_hand_in_the_read_only_root() -> None:
    argv = _argv(SandboxRequest(argv=["/x"]))
    assert "--dev" not in argv  # bwrap's /dev is an unsized, writable tmpfs
    for name in ("null", "full", "random", "urandom"):
        assert _follows(argv, "--dev-bind", f"/dev/{name}", f"/dev/{name}")
    assert "/dev/zero" not in argv
    assert argv.index("--remount-ro") > max(i for i, arg in enumerate(argv) if arg.startswith("/dev/"))


def test_data_files_are_copied_in_not_bound() -> None:
    request = SandboxRequest(argv=["/x"], files=[DataFile("/harness/runner.py", b"code")])
    argv = bwrap_argv("/usr/bin/bwrap", request, dataclasses.replace(FDS, files=(15,)), timeout_path="/t")
    assert _follows(argv, "--ro-bind-data", "15", "/harness/runner.py")


def test_pid_1_is_timeout_with_a_backstop_after_the_wall_limit() -> None:
    argv = _argv(SandboxRequest(argv=["/x", "arg"], limits=Limits(wall_seconds=10)))
    tail = argv[argv.index("--as-pid-1") :]
    assert tail[:2] == ["--as-pid-1", "--"]
    assert tail[2:6] == ["/usr/bin/timeout", "-s", "KILL", "--"]
    assert float(tail[6]) > 10
    assert tail[7:] == ["/x", "arg"]


def test_namespaces_teardown_and_fds_are_requested() -> None:
    argv = _argv(SandboxRequest(argv=["/x"]))
    for flag in (
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ):
        assert flag in argv
    assert _follows(argv, "--seccomp", "11")
    assert _follows(argv, "--json-status-fd", "12")
    assert _follows(argv, "--remount-ro", "/")


def test_binds_are_read_only_and_env_is_the_requests() -> None:
    request = SandboxRequest(
        argv=["/x"],
        binds=[Bind(__import__("pathlib").Path("/srv/run/sub"), "/submission")],
        env={"A": "1", "OMP_NUM_THREADS": "3"},
    )
    argv = _argv(request)
    assert _follows(argv, "--ro-bind", "/srv/run/sub", "/submission")
    assert "--bind" not in argv
    assert _follows(argv, "--setenv", "A", "1")
    assert sandbox_env(request)["OMP_NUM_THREADS"] == "3"  # the caller's choice wins
    assert sandbox_env(request)["OPENBLAS_NUM_THREADS"] == "1"  # from limits.cpus
