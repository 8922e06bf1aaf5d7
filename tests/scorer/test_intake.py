"""Zip intake: every corpus case gives its expected outcome, and what is written is safe to share."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from scorer import intake
from scorer.errors import MESSAGES, ErrorCode, ScoringError, _fields
from scorer.intake import (
    IntakeLimits,
    MiB,
    extract_submission,
    sniff_is_zip,
)
from tests.scorer.zips.corpus import CASES, Accepted, Case, Rejected

BY_NAME = {case.name: case for case in CASES}


def _build(case: Case, tmp_path: Path) -> Path:
    upload_dir = tmp_path / "upload"
    upload_dir.mkdir()
    return case.build(upload_dir)


def _tree(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_corpus_case(case: Case, tmp_path: Path) -> None:
    upload = _build(case, tmp_path)
    out = tmp_path / "out"
    if isinstance(case.expect, Accepted):
        result = extract_submission(upload, out, case.limits)
        expect = case.expect
        assert result.root == out.absolute()
        assert result.entry == out.absolute().joinpath(*expect.entry.split("/"))
        assert result.entry.is_file()
        assert result.entry_kind == expect.kind
        assert result.entry_dir == result.entry.parent
        assert tuple(n.code for n in result.notices) == expect.notices
        assert all(n.ja and n.en for n in result.notices)
        if expect.files is not None:
            assert tuple(result.files) == expect.files
        written = {p.relative_to(out).as_posix() for p in _tree(out) if p.is_file()}
        assert written == set(result.files)
        assert not any(p.is_symlink() for p in _tree(out))
    else:
        assert isinstance(case.expect, Rejected)
        with pytest.raises(ScoringError) as caught:
            extract_submission(upload, out, case.limits)
        err = caught.value
        assert err.code == case.expect.code, err
        for key, value in case.expect.params.items():
            assert err.params[key] == value
        assert case.expect.reason_contains in str(err.params.get("reason", ""))
        for lang in ("ja", "en"):  # every placeholder of the message is filled
            assert _fields(MESSAGES[lang][err.code]) <= set(err.params)
        if case.name != "bomb_lying_declared_size":  # refused before writing anything
            assert not any(p.is_file() for p in _tree(out))
    # Nothing ever lands beside the upload or the extraction folder.
    assert {p.name for p in tmp_path.iterdir()} <= {"upload", "out"}


def test_windows_names_are_extracted_under_their_real_japanese_names(tmp_path: Path) -> None:
    upload = _build(BY_NAME["windows_folder_cp932_names"], tmp_path)
    result = extract_submission(upload, tmp_path / "out")
    folder = tmp_path / "out" / "提出物"
    assert sorted(os.listdir(folder)) == sorted(["submit_katakana.py", "モデル.pickle", "ソース"])
    assert (folder / "ソース" / "表.txt").read_bytes() == b"hello"
    assert result.entry_dir == folder.absolute()


def test_macos_nfd_names_are_written_nfc(tmp_path: Path) -> None:
    upload = _build(BY_NAME["macos_finder_nfd_and_appledouble"], tmp_path)
    extract_submission(upload, tmp_path / "out")
    assert os.listdir(tmp_path / "out" / "データ提出" / "重み") == ["パラメータ.npy"]


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("strict_umask")
@pytest.mark.parametrize("name", ["folder_entry_world_writable_mode", "executable_and_setuid_bits_ignored"])
def test_files_are_0644_and_folders_0755_whatever_the_zip_or_umask_says(name: str, tmp_path: Path) -> None:
    upload = _build(BY_NAME[name], tmp_path)
    out = tmp_path / "out"
    extract_submission(upload, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for path in _tree(out):
        mode = path.lstat().st_mode
        expected = 0o755 if stat.S_ISDIR(mode) else 0o644
        assert stat.S_IMODE(mode) == expected, path


def test_a_bomb_is_stopped_by_the_bytes_written_when_headers_get_past_the_size_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate headers that lie convincingly: skip the declared-size check, so only the writer's
    # own count stands between the bomb and the disk.
    monkeypatch.setattr(intake, "_check_declared_sizes", lambda plan, limits: None)
    upload = _build(BY_NAME["bomb_declared_over_total"], tmp_path)
    out = tmp_path / "out"
    with pytest.raises(ScoringError) as caught:
        extract_submission(upload, out, IntakeLimits(max_total_bytes=1 * MiB))
    assert caught.value.code == ErrorCode.ZIP_EXPANDS_TOO_FAR
    assert caught.value.params == {"limit": "1 MiB"}
    assert sum(p.stat().st_size for p in _tree(out) if p.is_file()) <= 1 * MiB


def test_copy_stops_at_the_cap_whatever_the_source_produces() -> None:
    out = io.BytesIO()
    with pytest.raises(intake._CapExceeded):
        intake._copy_capped(io.BytesIO(bytes(3 * MiB)), out, cap=1 * MiB)
    assert len(out.getvalue()) <= 1 * MiB
    assert intake._copy_capped(io.BytesIO(b"abc"), io.BytesIO(), cap=3) == 3


def test_sniff_is_zip(tmp_path: Path) -> None:
    def upload(name: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        return BY_NAME[name].build(folder)

    assert sniff_is_zip(upload("root_py"))
    assert sniff_is_zip(upload("empty_zip"))
    for name in ("rar_archive", "empty_upload", "bare_notebook"):
        assert not sniff_is_zip(upload(name))
    assert not sniff_is_zip(tmp_path / "missing.zip")


def test_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    upload = _build(BY_NAME["root_py"], tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        extract_submission(upload, out)


def test_defaults_are_the_documented_ones() -> None:
    limits = IntakeLimits()
    assert limits.max_zip_bytes == 100 * MiB
    assert limits.max_files == 2000
    assert limits.max_total_bytes == 1024 * MiB
    assert limits.max_ratio == 2000
