"""The uid pool: one free uid per concurrent run, locks released with the run, stragglers cleared."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from scorer.sandbox import SandboxConfig, SandboxUnavailable, uidpool

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the pool is only used when running as root")


@pytest.fixture
def pool(tmp_path: Path) -> SandboxConfig:
    """A private two-uid pool, far from the default range the other tests share."""
    base = 300_000 + secrets.randbelow(1000) * 10
    return SandboxConfig(uid_base=base, uid_count=2, lock_dir=tmp_path / "locks")


def test_concurrent_leases_get_distinct_uids(pool: SandboxConfig) -> None:
    with uidpool.lease(pool) as first, uidpool.lease(pool) as second:
        assert first.uid is not None and second.uid is not None
        assert first.uid != second.uid
        assert {first.uid, second.uid} == {pool.uid_base, pool.uid_base + 1}
        with pytest.raises(SandboxUnavailable, match="busy"), uidpool.lease(pool):
            pass
    with uidpool.lease(pool) as again:  # released with the with-block
        assert again.uid in (pool.uid_base, pool.uid_base + 1)


def test_leftover_processes_of_a_uid_are_killed_before_reuse(tmp_path: Path) -> None:
    uid = 310_000 + secrets.randbelow(1000)
    config = SandboxConfig(uid_base=uid, uid_count=1, lock_dir=tmp_path / "locks")
    straggler = subprocess.Popen(["sleep", "3600"], user=uid, group=uid, extra_groups=[], cwd="/")
    try:
        assert straggler.pid in uidpool.processes_of(uid)
        with uidpool.lease(config) as lease:
            assert lease.uid == uid
            assert straggler.wait(timeout=30) == -9
            assert uidpool.processes_of(uid) == []
    finally:
        straggler.kill()
        straggler.wait()


def test_a_lock_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 12345, 12345)
    with pytest.raises(SandboxUnavailable, match="owned"), uidpool.lease(SandboxConfig(lock_dir=foreign)):
        pass
