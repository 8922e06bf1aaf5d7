"""Password hashing: correct, and never more hashes at once than the process has CPUs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher

from app.security import passwords
from app.security.passwords import HASHING_SLOTS, hash_password, verify_password


class CountingHasher(PasswordHasher):
    """A real Argon2 hasher that records how many calls run at once.

    The first calls wait until the slots are all taken, so the calls really overlap: without the
    bound, the ones after them walk straight in and the peak exceeds the slots.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.full = threading.Event()

    def _enter(self) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            if self.active >= HASHING_SLOTS:
                self.full.set()
        self.full.wait(timeout=120)

    def _leave(self) -> None:
        with self.lock:
            self.active -= 1

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self._enter()
        try:
            return super().verify(hash, password)
        finally:
            self._leave()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._enter()
        try:
            return super().hash(password, salt=salt)
        finally:
            self._leave()


def test_a_password_verifies_and_a_wrong_one_or_no_account_does_not() -> None:
    stored = hash_password("correct horse battery")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "wrong horse battery")
    assert not verify_password(None, "correct horse battery")  # unknown account: same work, refused
    assert not verify_password("not-a-hash", "correct horse battery")


@pytest.mark.parametrize("operation", ["verify", "hash"])
def test_a_class_logging_in_at_once_hashes_at_most_one_password_per_cpu(
    monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    stored = hash_password("correct horse battery")
    counting = CountingHasher()
    monkeypatch.setattr(passwords, "_hasher", counting)
    callers = HASHING_SLOTS + 4

    def one(_: int) -> bool:
        if operation == "verify":
            return verify_password(stored, "correct horse battery")
        return verify_password(hash_password("another password"), "another password")

    with ThreadPoolExecutor(max_workers=callers) as pool:
        results = list(pool.map(one, range(callers)))
    assert results == [True] * callers
    assert counting.peak == HASHING_SLOTS  # every slot used, never one more
