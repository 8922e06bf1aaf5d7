"""The runtime probe's answer kept between processes (the command line's cache), keyed by the
interpreter's path, mtime and size and by its sys.path folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scorer.runtime import Runtime, _cached_probe, _probe


def counting_runtime(tmp_path: Path) -> tuple[Path, Path]:
    """An interpreter wrapper that counts how often it is started."""
    counter = tmp_path / "starts"
    wrapper = tmp_path / "bin" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho start >> "{counter}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, counter


def starts(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def fresh_info(wrapper: Path, cache: Path) -> dict[str, str]:
    _cached_probe.cache_clear()  # a new command-line process
    _probe.cache_clear()
    return Runtime(wrapper, cache).info().versions()


def test_the_probe_runs_once_until_the_interpreter_changes(tmp_path: Path) -> None:
    wrapper, counter = counting_runtime(tmp_path)
    cache = tmp_path / "cache"
    first = fresh_info(wrapper, cache)
    assert starts(counter) == 1
    assert fresh_info(wrapper, cache) == first
    assert starts(counter) == 1, "the second process asked the interpreter again"

    stat = wrapper.stat()
    os.utime(wrapper, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # replaced / upgraded
    assert fresh_info(wrapper, cache) == first
    assert starts(counter) == 2


def test_a_damaged_cache_file_is_probed_again(tmp_path: Path) -> None:
    wrapper, counter = counting_runtime(tmp_path)
    cache = tmp_path / "cache"
    fresh_info(wrapper, cache)
    (cached,) = cache.glob("runtime-*.json")
    cached.write_text("{not json")
    assert fresh_info(wrapper, cache)["python"]
    assert starts(counter) == 2


def test_without_a_cache_dir_nothing_is_written(tmp_path: Path) -> None:
    wrapper, counter = counting_runtime(tmp_path)
    assert Runtime(wrapper).info().python
    assert starts(counter) == 1
    assert not any(tmp_path.glob("**/runtime-*.json"))
