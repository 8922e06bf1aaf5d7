"""Pre-flight verdicts are cached by the zip's hash: identical uploads run the check once."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.db import make_engine, make_sessionmaker
from app.services.preflight import PreflightVerdict, cached_preflight


def test_twenty_identical_uploads_at_once_run_the_check_once(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    factory = make_sessionmaker(engine)
    calls: list[Path] = []
    started = threading.Barrier(20)

    def checker(path: Path) -> PreflightVerdict:
        calls.append(path)
        return PreflightVerdict(ok=False, error={"code": "syntax_error", "message": "x", "message_ja": "x"})

    def run(_: int) -> PreflightVerdict:
        started.wait()
        return cached_preflight(factory, tmp_path / "a.zip", "ab" * 32, checker)

    with ThreadPoolExecutor(20) as pool:
        verdicts = list(pool.map(run, range(20)))
    engine.dispose()
    assert len(calls) == 1
    assert all(v.ok is False and v.error and v.error["code"] == "syntax_error" for v in verdicts)


def test_a_checker_that_crashes_is_not_cached(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    factory = make_sessionmaker(engine)
    outcomes: list[str] = []

    def flaky(path: Path) -> PreflightVerdict:
        if not outcomes:
            outcomes.append("crash")
            raise RuntimeError("sandbox unavailable")
        outcomes.append("ok")
        return PreflightVerdict(ok=True)

    with contextlib.suppress(RuntimeError):
        cached_preflight(factory, tmp_path / "a.zip", "cd" * 32, flaky)
    assert cached_preflight(factory, tmp_path / "a.zip", "cd" * 32, flaky).ok
    engine.dispose()
    assert outcomes == ["crash", "ok"]
