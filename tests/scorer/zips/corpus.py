"""Every upload shape the intake must accept or refuse: one case = a name, how to build it, the outcome.

Cases are generated into a temporary folder instead of checked in as binary files, so that a reviewer
reads exactly which bytes each zip holds (raw CP932 names, forged flag bits, lying sizes, link modes).
The tests in ``tests/scorer/test_intake.py`` run :data:`CASES` through ``extract_submission``.
"""

from __future__ import annotations

import json
import stat
import struct
import unicodedata
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from scorer.errors import ErrorCode
from scorer.intake import IntakeLimits, MiB

PY = b"def predict(test_data):\n    return [0] * len(test_data)\n"
NOTEBOOK = json.dumps(
    {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "source": PY.decode()}],
    }
).encode()


@dataclass(frozen=True)
class Member:
    """One zip entry. A ``bytes`` name is written as is, without the UTF-8 flag (Japanese Windows
    writes CP932 that way, macOS writes UTF-8 that way); a ``str`` name is left to zipfile."""

    name: str | bytes
    data: bytes = b""
    mode: int | None = None  # st_mode for external_attr's high 16 bits (type and permissions)
    flags: int = 0  # general-purpose bits forced into both headers (0x1: encrypted)
    method: int = zipfile.ZIP_DEFLATED
    extra: bytes = b""


@dataclass(frozen=True)
class Accepted:
    entry: str  # relative POSIX path of the chosen entry
    kind: Literal["py", "ipynb"]
    notices: tuple[str, ...] = ()  # notice codes, in order
    files: tuple[str, ...] | None = None  # every file written, in zip order, when given


@dataclass(frozen=True)
class Rejected:
    code: ErrorCode
    params: dict[str, object] = field(default_factory=dict)  # must match exactly
    reason_contains: str = ""  # for ZIP_UNSAFE_ENTRY: part of params["reason"]


Build = Callable[[Path], Path]


@dataclass(frozen=True)
class Case:
    name: str
    build: Build  # writes the upload into the given folder and returns its path
    expect: Accepted | Rejected
    limits: IntakeLimits = field(default_factory=IntakeLimits)


class _RawInfo(zipfile.ZipInfo):
    """A ZipInfo that writes its name bytes and flag bits exactly as given."""

    raw_name: bytes | None = None
    forced_flags: int = 0

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # zipfile's private hook
        if self.raw_name is not None:
            return self.raw_name, (self.flag_bits & ~0x800) | self.forced_flags
        name, flags = super()._encodeFilenameFlags()  # type: ignore[misc]
        return name, flags | self.forced_flags


def write_zip(path: Path, members: list[Member]) -> Path:
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)  # the duplicate_name case
        for m in members:
            shown = m.name.decode("cp437") if isinstance(m.name, bytes) else m.name
            info = _RawInfo(shown, date_time=(2024, 4, 1, 12, 0, 0))
            if isinstance(m.name, bytes):
                info.raw_name = m.name
            info.forced_flags = m.flags
            info.compress_type = m.method
            info.extra = m.extra
            if m.mode is not None:
                info.external_attr = m.mode << 16
            elif shown.endswith("/"):
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
            else:
                info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, m.data)
    return path


def zip_of(*members: Member | str) -> Build:
    """A builder for upload.zip; a plain string is a small text file of that name."""
    listed = [m if isinstance(m, Member) else Member(m, b"x = 1\n") for m in members]
    return lambda folder: write_zip(folder / "upload.zip", listed)


def entry(path: str = "submit_katakana.py") -> Member:
    return Member(path, NOTEBOOK if path.endswith(".ipynb") else PY)


def raw_file(data: bytes, name: str = "upload.zip") -> Build:
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return build


def patched(build: Build, patch: Callable[[bytearray], None]) -> Build:
    """A builder whose zip bytes are edited after writing (to forge what zipfile would not write)."""

    def wrapped(folder: Path) -> Path:
        path = build(folder)
        data = bytearray(path.read_bytes())
        patch(data)
        path.write_bytes(bytes(data))
        return path

    return wrapped


def with_comment(build: Build, comment: bytes) -> Build:
    """A zip whose end record is followed by an archive comment (some tools write one)."""

    def wrapped(folder: Path) -> Path:
        path = build(folder)
        with zipfile.ZipFile(path, "a") as zf:
            zf.comment = comment
        return path

    return wrapped


def truncated(build: Build, keep: int = 300) -> Build:
    """A download cut short: only the first ``keep`` bytes, so no central directory."""

    def patch(data: bytearray) -> None:
        del data[keep:]

    return patched(build, patch)


def _headers(data: bytearray) -> tuple[list[int], list[int]]:
    local = [i for i in range(len(data) - 3) if data[i : i + 4] == b"PK\x03\x04"]
    central = [i for i in range(len(data) - 3) if data[i : i + 4] == b"PK\x01\x02"]
    return local, central


def lie_about_size(size: int) -> Callable[[bytearray], None]:
    """Declare ``size`` as the uncompressed size of the (only) entry in both headers."""

    def patch(data: bytearray) -> None:
        local, central = _headers(data)
        struct.pack_into("<I", data, local[0] + 22, size)
        struct.pack_into("<I", data, central[0] + 24, size)

    return patch


def set_method(method: int) -> Callable[[bytearray], None]:
    """Claim another compression method (9 = Deflate64, which zipfile cannot read)."""

    def patch(data: bytearray) -> None:
        local, central = _headers(data)
        struct.pack_into("<H", data, local[0] + 8, method)
        struct.pack_into("<H", data, central[0] + 10, method)

    return patch


def unicode_path_extra(raw_name: bytes, real_name: str) -> bytes:
    """Info-ZIP Unicode Path field (0x7075): version 1, CRC-32 of the stored name, the UTF-8 name."""
    body = b"\x01" + struct.pack("<I", zlib.crc32(raw_name)) + real_name.encode()
    return struct.pack("<HH", 0x7075, len(body)) + body


def cp932(name: str) -> bytes:
    return name.encode("cp932")


def nfd_utf8(name: str) -> bytes:
    return unicodedata.normalize("NFD", name).encode()


def _unsafe(name: str, build: Build, reason: str) -> Case:
    return Case(name, build, Rejected(ErrorCode.ZIP_UNSAFE_ENTRY, reason_contains=reason))


ZEROS_4MIB = bytes(4 * MiB)

CASES: list[Case] = [
    # --- accepted -------------------------------------------------------------------------------
    Case(
        "root_py",
        zip_of(entry(), "model.pkl"),
        Accepted("submit_katakana.py", "py", files=("submit_katakana.py", "model.pkl")),
    ),
    Case("root_ipynb", zip_of(entry("submit_katakana.ipynb")), Accepted("submit_katakana.ipynb", "ipynb")),
    Case(
        "windows_folder_cp932_names",
        # Japanese Windows "Send to → Compressed folder": CP932 names, no UTF-8 flag. ソ is 83 5C in
        # CP932, so its second byte is a backslash that must not be mistaken for a separator.
        zip_of(
            Member(cp932("提出物/")),
            Member(cp932("提出物/submit_katakana.py"), PY),
            Member(cp932("提出物/モデル.pickle"), b"\x80\x04N."),
            Member(cp932("提出物/ソース/表.txt"), b"hello"),
            Member(cp932("提出物/Thumbs.db"), b"junk"),
            Member(cp932("提出物/desktop.ini"), b"junk"),
        ),
        Accepted(
            "提出物/submit_katakana.py",
            "py",
            notices=("names_decoded_cp932", "junk_skipped"),
            files=("提出物/submit_katakana.py", "提出物/モデル.pickle", "提出物/ソース/表.txt"),
        ),
    ),
    Case(
        "macos_finder_nfd_and_appledouble",
        # Finder: UTF-8 names in NFD without the flag, plus __MACOSX/ and ._ AppleDouble files.
        zip_of(
            Member(nfd_utf8("データ提出/")),
            Member(nfd_utf8("データ提出/submit_katakana.ipynb"), NOTEBOOK),
            Member(nfd_utf8("データ提出/重み/パラメータ.npy"), b"\x93NUMPY"),
            Member(nfd_utf8("データ提出/.DS_Store"), b"junk"),
            Member(nfd_utf8("__MACOSX/データ提出/._submit_katakana.ipynb"), b"junk"),
            Member(nfd_utf8("データ提出/._パラメータ.npy"), b"junk"),
        ),
        Accepted(
            "データ提出/submit_katakana.ipynb",
            "ipynb",
            notices=("junk_skipped",),
            files=("データ提出/submit_katakana.ipynb", "データ提出/重み/パラメータ.npy"),
        ),
    ),
    Case(
        "utf8_flagged_names",
        zip_of(entry("課題/submit_katakana.py"), Member("課題/ヘルパー.py", b"x = 1\n")),
        Accepted("課題/submit_katakana.py", "py", files=("課題/submit_katakana.py", "課題/ヘルパー.py")),
    ),
    Case(
        "info_zip_unicode_path_field",
        zip_of(
            Member(
                b"_/submit_katakana.py",
                PY,
                extra=unicode_path_extra(b"_/submit_katakana.py", "課題/submit_katakana.py"),
            )
        ),
        Accepted("課題/submit_katakana.py", "py", files=("課題/submit_katakana.py",)),
    ),
    Case(
        "powershell_backslash_separators",
        zip_of(Member("提出\\submit_katakana.py", PY), Member("提出\\lib\\util.py", b"x = 1\n")),
        Accepted("提出/submit_katakana.py", "py", files=("提出/submit_katakana.py", "提出/lib/util.py")),
    ),
    Case(
        "jupyter_and_python_litter",
        zip_of(
            entry("work/submit_katakana.ipynb"),
            Member("work/.ipynb_checkpoints/submit_katakana-checkpoint.ipynb", NOTEBOOK),
            Member("work/.ipynb_checkpoints/submit_katakana.ipynb", NOTEBOOK),
            Member("work/__pycache__/util.cpython-311.pyc", b"\x00"),
        ),
        Accepted("work/submit_katakana.ipynb", "ipynb", notices=("junk_skipped",)),
    ),
    Case(
        "both_entries_py_wins",
        zip_of(entry("submit_katakana.ipynb"), entry("submit_katakana.py")),
        Accepted("submit_katakana.py", "py", notices=("both_entries",)),
    ),
    Case(
        "nested_two_levels",
        zip_of(entry("parent/submission/submit_katakana.py"), "parent/submission/model.pkl"),
        Accepted("parent/submission/submit_katakana.py", "py", notices=("entry_nested",)),
    ),
    Case(
        "shallowest_wins_over_backup",
        zip_of(entry("sub/submit_katakana.py"), entry("sub/old/submit_katakana.py")),
        Accepted("sub/submit_katakana.py", "py", notices=("other_entries_ignored",)),
    ),
    Case(
        "folder_entry_world_writable_mode",
        zip_of(Member("data/", mode=stat.S_IFDIR | 0o777), entry("submit_katakana.py"), "data/x.txt"),
        Accepted("submit_katakana.py", "py", files=("submit_katakana.py", "data/x.txt")),
    ),
    Case(
        "dos_made_zip_without_unix_mode",
        zip_of(Member("submit_katakana.py", PY, mode=0), Member("dir/", mode=0)),
        Accepted("submit_katakana.py", "py"),
    ),
    Case(
        "executable_and_setuid_bits_ignored",
        zip_of(Member("submit_katakana.py", PY, mode=stat.S_IFREG | stat.S_ISUID | 0o777)),
        Accepted("submit_katakana.py", "py"),
    ),
    Case(
        "archive_comment",
        with_comment(zip_of(entry()), "提出物です".encode() * 1000),
        Accepted("submit_katakana.py", "py"),
        limits=IntakeLimits(max_files=1),
    ),
    Case(
        "stored_bzip2_lzma_methods",
        zip_of(
            Member("submit_katakana.py", PY, method=zipfile.ZIP_STORED),
            Member("a.txt", b"a" * 1000, method=zipfile.ZIP_BZIP2),
            Member("b.txt", b"b" * 1000, method=zipfile.ZIP_LZMA),
        ),
        Accepted("submit_katakana.py", "py", files=("submit_katakana.py", "a.txt", "b.txt")),
    ),
    # --- no usable entry ------------------------------------------------------------------------
    Case(
        "two_entries_in_sibling_folders",
        zip_of(entry("a/submit_katakana.py"), entry("b/submit_katakana.ipynb")),
        Rejected(ErrorCode.ENTRY_AMBIGUOUS, {"paths": "a/submit_katakana.py, b/submit_katakana.ipynb"}),
    ),
    Case(
        "no_entry_lists_near_misses_first",
        zip_of("提出/model.pkl", Member("提出/submit_katakana.py.txt", PY)),
        Rejected(ErrorCode.ENTRY_NOT_FOUND, {"found": "提出/submit_katakana.py.txt, 提出/model.pkl"}),
    ),
    Case(
        "only_a_checkpoint_copy",
        zip_of(Member(".ipynb_checkpoints/submit_katakana-checkpoint.ipynb", NOTEBOOK)),
        Rejected(ErrorCode.ENTRY_NOT_FOUND, {"found": "(none)"}),
    ),
    Case("empty_zip", zip_of(), Rejected(ErrorCode.ENTRY_NOT_FOUND, {"found": "(none)"})),
    # --- not a zip ------------------------------------------------------------------------------
    Case("rar_archive", raw_file(b"Rar!\x1a\x07\x01\x00" + bytes(64)), Rejected(ErrorCode.NOT_A_ZIP)),
    Case("empty_upload", raw_file(b""), Rejected(ErrorCode.NOT_A_ZIP)),
    Case("bare_notebook", raw_file(NOTEBOOK, "submit_katakana.ipynb"), Rejected(ErrorCode.NOT_A_ZIP)),
    Case(
        "truncated_zip",
        truncated(zip_of(entry(), Member("m.bin", bytes(range(256)) * 64))),
        Rejected(ErrorCode.NOT_A_ZIP),
    ),
    Case(
        "deflate64_method",
        patched(zip_of(Member("submit_katakana.py", PY, method=zipfile.ZIP_STORED)), set_method(9)),
        Rejected(ErrorCode.NOT_A_ZIP),
    ),
    # --- unsafe entries -------------------------------------------------------------------------
    _unsafe("slip_dotdot", zip_of(entry(), Member("../evil.py", b"x")), "'..'"),
    _unsafe("slip_dotdot_inside", zip_of(entry(), Member("a/../../evil.py", b"x")), "'..'"),
    Case(
        "slip_windows_backslashes",
        zip_of(entry(), Member("..\\..\\win_evil.py", b"x")),
        Rejected(ErrorCode.ZIP_UNSAFE_ENTRY, {"name": "..\\..\\win_evil.py"}, reason_contains="'..'"),
    ),
    _unsafe("slip_absolute", zip_of(entry(), Member("/etc/x", b"x")), "absolute"),
    _unsafe("slip_drive_letter", zip_of(entry(), Member("C:/evil.py", b"x")), "drive"),
    _unsafe("slip_drive_backslash", zip_of(entry(), Member("C:\\evil.py", b"x")), "drive"),
    _unsafe("slip_unc_path", zip_of(entry(), Member("\\\\server\\share\\x.py", b"x")), "absolute"),
    _unsafe("nul_in_name", zip_of(entry(), Member(b"evil.py\x00.txt", b"x")), "NUL"),
    _unsafe(
        "symlink_entry",
        zip_of(entry(), Member("secret", b"/etc/passwd", mode=stat.S_IFLNK | 0o777)),
        "symbolic link",
    ),
    _unsafe(
        "symlink_folder_entry",
        zip_of(entry(), Member("linked/", b"", mode=stat.S_IFLNK | 0o777)),
        "symbolic link",
    ),
    _unsafe("fifo_entry", zip_of(entry(), Member("pipe", mode=stat.S_IFIFO | 0o644)), "named pipe"),
    _unsafe(
        "char_device_entry", zip_of(entry(), Member("tty", mode=stat.S_IFCHR | 0o644)), "character device"
    ),
    _unsafe(
        "file_entry_with_folder_mode",
        zip_of(entry(), Member("looks_like_a_file", mode=stat.S_IFDIR | 0o755)),
        "but a folder",
    ),
    _unsafe("case_collision", zip_of(entry(), "A.py", "a.py"), "upper/lower case"),
    _unsafe("case_collision_folders", zip_of(entry(), "Data/x.txt", "data/y.txt"), "upper/lower case"),
    _unsafe(
        "nfc_nfd_collision",
        zip_of(entry(), Member("データ.txt", b"1"), Member(nfd_utf8("データ.txt"), b"2")),
        "appears twice",
    ),
    _unsafe("duplicate_name", zip_of(entry(), "m.txt", "m.txt"), "appears twice"),
    _unsafe("file_and_folder_share_a_name", zip_of(entry(), "model", "model/w.npy"), "both a file"),
    _unsafe("name_too_long", zip_of(entry(), "x" * 256 + ".py"), "too long"),
    _unsafe("path_too_deep", zip_of(entry(), "a/" * 600 + "x.py"), "path is too long"),
    # --- other refusals -------------------------------------------------------------------------
    Case(
        "encrypted_entry",
        zip_of(entry(), Member("model.pkl", b"secret", flags=0x1)),
        Rejected(ErrorCode.ZIP_ENCRYPTED, {"name": "model.pkl"}),
    ),
    Case(
        "too_many_files",
        zip_of(entry(), "1.txt", "2.txt", "3.txt", "4.txt"),
        Rejected(ErrorCode.ZIP_TOO_MANY_FILES, {"count": 5, "limit": 3}),
        limits=IntakeLimits(max_files=3),
    ),
    Case(
        "too_many_entries_refused_from_the_end_record",
        # Counted from the end record, before zipfile builds an object per entry: 2 files allowed,
        # so at most 8 entries of any kind (folders, litter).
        zip_of(entry(), *[Member(f"__MACOSX/._{i}", b"") for i in range(10)]),
        Rejected(ErrorCode.ZIP_TOO_MANY_FILES, {"count": 11, "limit": 2}),
        limits=IntakeLimits(max_files=2),
    ),
    Case(
        "litter_does_not_count_as_files",
        zip_of(entry(), *[Member(f"__MACOSX/._{i}", b"") for i in range(6)]),
        Accepted("submit_katakana.py", "py", notices=("junk_skipped",)),
        limits=IntakeLimits(max_files=2),
    ),
    Case(
        "too_large",
        zip_of(entry(), Member("weights.bin", bytes(range(256)) * 8, method=zipfile.ZIP_STORED)),
        Rejected(ErrorCode.ZIP_TOO_LARGE, {"limit": "1 KiB"}),
        limits=IntakeLimits(max_zip_bytes=1024),
    ),
    Case(
        "bomb_declared_over_total",
        zip_of(entry(), Member("zeros.bin", ZEROS_4MIB)),
        Rejected(ErrorCode.ZIP_EXPANDS_TOO_FAR, {"limit": "1 MiB"}),
        limits=IntakeLimits(max_total_bytes=1 * MiB),
    ),
    Case(
        "bomb_ratio_bzip2",
        zip_of(entry(), Member("zeros.bin", ZEROS_4MIB, method=zipfile.ZIP_BZIP2)),
        Rejected(ErrorCode.ZIP_EXPANDS_TOO_FAR, {"limit": "1 MiB"}),
    ),
    Case(
        "bomb_lying_declared_size",
        # Declares 1 KiB but inflates to 4 MiB: zipfile stops at the declared size, then the CRC
        # fails, so the zip is reported as damaged rather than extracted.
        patched(zip_of(Member("submit_katakana.py", ZEROS_4MIB)), lie_about_size(1024)),
        Rejected(ErrorCode.NOT_A_ZIP),
    ),
]

assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
