"""Pre-flight verdicts are cached by the zip's hash (and the public set's): identical uploads run the check once."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.db import make_engine, make_sessionmaker
from app.services.preflight.verdict import PreflightVerdict, cached_preflight


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


def test_the_workers_whole_check_report_is_kept_through_the_cache(sqlite_url: str, tmp_path: Path) -> None:
    """Fields the site does not read itself (the run's facts, anything the engine adds) travel on."""
    engine = make_engine(sqlite_url)
    factory = make_sessionmaker(engine)
    report = {
        "ok": True, "stage": "smoke", "error": None, "log": "ok", "notices": [{"code": "n", "ja": "注", "en": "note"}],
        "duration_s": 0.4, "isolation": "bwrap", "entry": "submit_katakana.py", "zip_sha256": "ef" * 32,
        "smoke_accuracy": 0.4,
    }  # fmt: skip
    first = cached_preflight(factory, tmp_path / "a.zip", "ef" * 32, lambda _path: PreflightVerdict.from_json(report))
    again = cached_preflight(factory, tmp_path / "a.zip", "ef" * 32, lambda _path: PreflightVerdict(ok=False))
    engine.dispose()
    assert first.to_json() == report
    assert again.to_json() == report  # from the cache, whole


def test_a_verdict_holds_only_for_the_public_set_it_was_scored_on(sqlite_url: str, tmp_path: Path) -> None:
    """The smoke accuracy depends on the public set: another set's digest runs the check again."""
    engine = make_engine(sqlite_url)
    factory = make_sessionmaker(engine)
    calls: list[str] = []

    def checker_for(public: str) -> Callable[[Path], PreflightVerdict]:
        def check(_path: Path) -> PreflightVerdict:
            calls.append(public)
            return PreflightVerdict.from_json({"ok": True, "smoke": {"public": public}})

        return check

    verdicts = [
        cached_preflight(factory, tmp_path / "a.zip", "12" * 32, checker_for(public), public)
        for public in ("", "", "aa" * 32, "aa" * 32, "bb" * 32, "")
    ]
    engine.dispose()
    assert calls == ["", "aa" * 32, "bb" * 32]  # each set checked once, then answered from the cache
    assert [v.smoke for v in verdicts] == [{"public": p} for p in ("", "", "aa" * 32, "aa" * 32, "bb" * 32, "")]
