"""Password hashing with Argon2id (argon2-cffi's defaults follow RFC 9106's recommendations).

Every hash and verification takes one of a few slots, as many as the CPUs this process may run on.
Argon2 is slow and memory-hard on purpose: each call holds 64 MiB and a few hundred milliseconds
of CPU. The site's synchronous routes run in a thread pool of 40, so a class logging in at once
before a deadline would otherwise hash 40 passwords side by side: 2.5 GB of RAM for no gain in
throughput (there are only so many cores), and every other request starved meanwhile. With the
slots, the memory stays at CPUs × 64 MiB and the other requests keep their share of the CPU.
"""

from __future__ import annotations

import os
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10

# The CPUs this process may use (a container's cpuset, not the host's count).
HASHING_SLOTS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_slots = threading.BoundedSemaphore(HASHING_SLOTS)

# Verified against when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


def hash_password(password: str) -> str:
    with _slots:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        with _slots:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
