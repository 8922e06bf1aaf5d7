"""Unpack an uploaded submission zip safely and find its entry file, without running anything.

Python's ``zipfile.extractall`` is not safe for uploads: it writes names such as ``..\\..\\x.py`` and
``C:/x.py`` literally, trusts declared sizes, and turns the CP932 names of Japanese Windows into
mojibake. This module therefore plans every entry first (decode the name, refuse anything unsafe,
skip OS litter, find the entry file) and only then writes regular files one by one, counting the
bytes it actually writes. No trainee code is executed here.

The contract: the zip holds ``submit_katakana.py`` or ``submit_katakana.ipynb`` at its root or in one
top-level folder; deeper is accepted when the shallowest candidate is unique.
"""

from __future__ import annotations

import lzma
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Final, Literal, NoReturn

from scorer.errors import ErrorCode, ScoringError, human_bytes
from scorer.notices import Notice

MiB: Final = 1024**2
GiB: Final = 1024**3

ENTRY_STEM: Final = "submit_katakana"
ENTRY_NAMES: Final[dict[str, Literal["py", "ipynb"]]] = {
    f"{ENTRY_STEM}.py": "py",
    f"{ENTRY_STEM}.ipynb": "ipynb",
}

# Litter that archivers and editors add; trainee code never needs it and it must not count as a
# candidate entry (``.ipynb_checkpoints/submit_katakana-checkpoint.ipynb`` is a stale copy).
_JUNK_DIRS: Final = frozenset({"__MACOSX", ".ipynb_checkpoints", "__pycache__"})
_JUNK_FILES: Final = frozenset({".ds_store", "thumbs.db", "desktop.ini"})

_FLAG_ENCRYPTED: Final = 0x1
_FLAG_UTF8: Final = 0x800
_UNICODE_PATH_EXTRA: Final = 0x7075  # Info-ZIP Unicode Path extra field
_SUPPORTED_METHODS: Final = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
_TYPE_NAMES: Final = {
    stat.S_IFIFO: "named pipe",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
    stat.S_IFDIR: "folder",
}
_DRIVE: Final = re.compile(r"^[A-Za-z]:")
_MAX_NAME_BYTES: Final = 255  # NAME_MAX of Linux filesystems
_MAX_PATH_BYTES: Final = 1024  # far below PATH_MAX (4096) once the extraction folder is prefixed
_CHUNK: Final = 256 * 1024
# The ratio guard ignores entries this small: a few KiB of blank lines compress 1000:1 harmlessly.
_RATIO_FLOOR_BYTES: Final = 1 * MiB
_FOUND_SHOWN: Final = 10
_EOCD_SIZE: Final = 22
_ENTRIES_PER_FILE: Final = 4  # entries allowed per file of max_files: folders and OS litter
_DIRECTORY_BYTES_PER_ENTRY: Final = 1024  # a central-directory record with a long name and extras
_ZIP_MAGICS: Final = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

_READ_ERRORS: Final = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError)


@dataclass(frozen=True)
class IntakeLimits:
    """Bounds on what an upload may cost the worker before any trainee code runs.

    - ``max_zip_bytes`` (100 MiB): a CNN for 28×28 images plus code is a few MiB; 100 MiB leaves room
      for large models yet keeps uploads and storage bounded.
    - ``max_files`` (2000): a submission is a handful of files; 2000 still admits a zipped virtualenv
      fragment or image folder by mistake without letting a million tiny entries slow extraction.
    - ``max_total_bytes`` (1 GiB): bytes actually written, so lying headers cannot get past it; a bomb
      costs at most this much disk and time before it is stopped.
    - ``max_ratio`` (2000): deflate cannot exceed about 1032:1, so no zip made by Explorer, Finder or
      ``zip`` trips this however repetitive its data; it stops bzip2/LZMA and crafted bombs early,
      long before ``max_total_bytes``. Entries under 1 MiB are exempt.
    """

    max_zip_bytes: int = 100 * MiB
    max_files: int = 2000
    max_total_bytes: int = 1 * GiB
    max_ratio: int = 2000


@dataclass(frozen=True)
class ExtractedSubmission:
    """Where the submission was unpacked and which file to run."""

    root: Path  # the extraction folder (``dest``)
    entry: Path  # absolute path of submit_katakana.py / .ipynb
    entry_kind: Literal["py", "ipynb"]
    entry_dir: Path  # folder holding the entry: the working directory of the run
    files: list[str]  # relative POSIX paths written, NFC, in zip order
    notices: list[Notice] = field(default_factory=list)


@dataclass(frozen=True)
class _Planned:
    info: zipfile.ZipInfo
    path: str  # safe relative POSIX path, NFC


@dataclass
class _Plan:
    files: list[_Planned] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    junk: list[str] = field(default_factory=list)
    cp932_names: int = 0


def sniff_is_zip(path: Path) -> bool:
    """True when the file starts like a zip: a cheap check before anything is stored or queued.

    Only the leading signature is read, so an upload of a bare ``.ipynb`` or a ``.rar`` is turned away
    at once. A file passing this may still be broken; :func:`extract_submission` finds out.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head in _ZIP_MAGICS


def extract_submission(zip_path: Path, dest: Path, limits: IntakeLimits = IntakeLimits()) -> ExtractedSubmission:
    """Unpack ``zip_path`` into ``dest`` (created if missing; must be empty) and locate the entry.

    Everything is checked before the first byte is written, so a refused zip leaves ``dest`` empty,
    except for a bomb whose headers lie: it is stopped while streaming and leaves partial files. The
    caller owns ``dest`` and deletes it either way. Files are 0644 and folders 0755 whatever the zip
    says, because the sandbox may read them as another uid; nothing is ever made executable or a link.
    """
    notices: list[Notice] = []
    with _open_zip(zip_path, limits) as zf:
        plan = _plan(zf, limits)
        _check_declared_sizes(plan, limits)
        entry_path, kind = _choose_entry(plan, notices)
        _prepare_dest(dest)
        written = _write_all(zf, plan, dest, limits)

    if plan.cp932_names:
        notices.append(
            Notice(
                "names_decoded_cp932",
                f"{plan.cp932_names} 個のファイル名を Shift_JIS (CP932) として読みました。",
                f"Read {plan.cp932_names} file name(s) as Shift_JIS (CP932), as Japanese Windows writes them.",
            )
        )
    if plan.junk:
        notices.append(
            Notice(
                "junk_skipped",
                f"OS や Jupyter が作る不要なファイルを {len(plan.junk)} 個スキップしました"
                "（__MACOSX、.DS_Store、.ipynb_checkpoints など）。",
                f"Skipped {len(plan.junk)} file(s) that the OS or Jupyter adds "
                "(__MACOSX, .DS_Store, .ipynb_checkpoints, …).",
            )
        )
    entry = dest.joinpath(*PurePosixPath(entry_path).parts)
    return ExtractedSubmission(
        root=dest.absolute(),
        entry=entry.absolute(),
        entry_kind=kind,
        entry_dir=entry.parent.absolute(),
        files=written,
        notices=notices,
    )


# --- opening ------------------------------------------------------------------------------------


@contextmanager
def _open_zip(zip_path: Path, limits: IntakeLimits) -> Iterator[zipfile.ZipFile]:
    """Open the upload as a zip after the cheap checks; open-time failures become NOT_A_ZIP."""
    try:
        size = zip_path.stat().st_size
    except OSError as exc:
        raise ScoringError(ErrorCode.NOT_A_ZIP, detail=f"cannot stat upload: {exc}") from exc
    if size > limits.max_zip_bytes:
        raise ScoringError(
            ErrorCode.ZIP_TOO_LARGE,
            params={"size": human_bytes(size), "limit": human_bytes(limits.max_zip_bytes)},
        )
    if not sniff_is_zip(zip_path):
        raise ScoringError(ErrorCode.NOT_A_ZIP, detail=_describe_non_zip(zip_path))
    _check_directory_size(zip_path, size, limits)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ScoringError(ErrorCode.NOT_A_ZIP, detail=f"zipfile: {exc}") from exc
    with zf:
        yield zf


def _check_directory_size(zip_path: Path, size: int, limits: IntakeLimits) -> None:
    """Refuse a huge central directory before ``zipfile`` turns all of it into objects.

    ``ZipFile()`` parses every entry up front: 100 MiB of tiny entries would be about two million
    ZipInfo objects (gigabytes) before :func:`_plan` could count them. The end record says how many
    entries and directory bytes follow. Litter and folders are allowed for (macOS adds a ``._`` twin
    per file), hence the factor.
    """
    declared = _declared_directory(zip_path, size)
    if declared is None:
        return  # no end record: zipfile will say the zip is broken
    entries, directory_bytes = declared
    max_entries = limits.max_files * _ENTRIES_PER_FILE
    if entries > max_entries or directory_bytes > max_entries * _DIRECTORY_BYTES_PER_ENTRY:
        raise ScoringError(
            ErrorCode.ZIP_TOO_MANY_FILES,
            params={"count": entries, "limit": limits.max_files},
            detail=f"central directory: {entries} entries, {directory_bytes} bytes",
        )


def _declared_directory(zip_path: Path, size: int) -> tuple[int, int] | None:
    """(entries, central directory bytes) from the end-of-central-directory record (and its ZIP64
    twin when the 32-bit fields are saturated); None when there is no end record."""
    with zip_path.open("rb") as fh:
        tail_len = min(size, _EOCD_SIZE + 0xFFFF)  # the record may be followed by a 64 KiB comment
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        pos = tail.rfind(b"PK\x05\x06")
        if pos < 0 or pos + _EOCD_SIZE > len(tail):
            return None
        entries, directory_bytes = struct.unpack_from("<HI", tail, pos + 10)
        saturated = entries == 0xFFFF or directory_bytes == 0xFFFFFFFF
        if saturated and pos >= 20 and tail[pos - 20 : pos - 16] == b"PK\x06\x07":
            (record_offset,) = struct.unpack_from("<Q", tail, pos - 20 + 8)
            fh.seek(record_offset)
            record = fh.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                entries, directory_bytes = struct.unpack_from("<QQ", record, 32)
    return int(entries), int(directory_bytes)


def _describe_non_zip(path: Path) -> str:
    """A hint for the log: what the upload looks like instead."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        return f"cannot read the upload: {exc}"
    if not head:
        return "the upload is empty"
    if head.startswith(b"Rar!"):
        return "a RAR archive"
    if head.startswith(b"7z\xbc\xaf"):
        return "a 7-Zip archive"
    if head.lstrip().startswith(b"{"):
        return "looks like JSON (a bare .ipynb?)"
    return f"starts with {head[:8]!r}"


# --- planning -----------------------------------------------------------------------------------


def _plan(zf: zipfile.ZipFile, limits: IntakeLimits) -> _Plan:
    """Decode and vet every entry; raise on the first unsafe one. Nothing is written."""
    plan = _Plan()
    names = _Names()
    for info in zf.infolist():
        name, how = _decode_name(info)
        if how == "cp932":
            plan.cp932_names += 1
        is_dir = name.endswith(("/", "\\"))
        parts = _safe_parts(name)
        if not parts:
            continue
        path = "/".join(parts)
        if _is_junk(parts):
            if not is_dir:
                plan.junk.append(path)
            continue
        _check_type(info, path, is_dir)
        if is_dir:
            names.claim_folder(parts, path)
            plan.dirs.append(path)
            continue
        _check_readable(info, path)
        names.claim_file(parts, path)
        plan.files.append(_Planned(info, path))
        if len(plan.files) > limits.max_files:
            raise ScoringError(
                ErrorCode.ZIP_TOO_MANY_FILES,
                params={"count": _count_files(zf), "limit": limits.max_files},
            )
    return plan


def _count_files(zf: zipfile.ZipFile) -> int:
    return sum(1 for i in zf.infolist() if not i.filename.endswith(("/", "\\")))


def _decode_name(info: zipfile.ZipInfo) -> tuple[str, Literal["utf8", "cp932", "cp437"]]:
    """The entry name as the trainee saw it, NFC.

    Without the UTF-8 flag zipfile decodes names as cp437. macOS writes UTF-8 without the flag and
    Japanese Windows writes CP932, so the cp437 text is turned back into its bytes (lossless: cp437
    maps all 256) and decoded as UTF-8, else CP932. The Info-ZIP Unicode Path field wins when its CRC
    matches the stored name. macOS also writes NFD (``テ`` + ``゙``): normalise to NFC.
    """
    raw_name = info.orig_filename
    if "\x00" in raw_name:
        _unsafe(raw_name.replace("\x00", "\\0"), "NUL character in the name")
    how: Literal["utf8", "cp932", "cp437"] = "utf8"
    if not info.flag_bits & _FLAG_UTF8:
        raw = raw_name.encode("cp437")
        name = _unicode_path_extra(info.extra, raw)
        if name is None:
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                try:
                    name, how = raw.decode("cp932"), "cp932"
                except UnicodeDecodeError:
                    name, how = raw_name, "cp437"
    else:
        name = raw_name
    return unicodedata.normalize("NFC", name), how


def _unicode_path_extra(extra: bytes, raw: bytes) -> str | None:
    pos = 0
    while pos + 4 <= len(extra):
        tag = int.from_bytes(extra[pos : pos + 2], "little")
        size = int.from_bytes(extra[pos + 2 : pos + 4], "little")
        body = extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if tag == _UNICODE_PATH_EXTRA and len(body) >= 5 and body[0] == 1:
            if int.from_bytes(body[1:5], "little") != zlib.crc32(raw):
                return None  # the name was changed after the field was written: ignore it
            try:
                return body[5:].decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def _safe_parts(name: str) -> list[str]:
    """Split a name into components, refusing anything that could leave ``dest``.

    PowerShell 5's Compress-Archive writes backslash separators, so backslashes count as separators
    and ``..\\..\\x`` is refused like ``../../x``. Messages show the name as stored.
    """
    posix = name.replace("\\", "/")
    if len(posix.encode("utf-8")) > _MAX_PATH_BYTES:
        _unsafe(name[:80] + "…", "the path is too long")
    if posix.startswith("/"):
        _unsafe(name, "absolute path")
    if _DRIVE.match(posix):
        _unsafe(name, "Windows drive letter")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            _unsafe(name, "'..' leads outside the zip's folder")
        if len(part.encode("utf-8")) > _MAX_NAME_BYTES:
            _unsafe(name, "a name in the path is too long")
    return parts


def _is_junk(parts: list[str]) -> bool:
    base = parts[-1]
    return any(p in _JUNK_DIRS for p in parts) or base.startswith("._") or base.casefold() in _JUNK_FILES


def _check_type(info: zipfile.ZipInfo, path: str, is_dir: bool) -> None:
    """Only regular files and folders: links, devices and fifos are refused.

    The Unix mode sits in the high 16 bits of ``external_attr``; zips from Windows leave it 0.
    Permission bits are ignored (everything is written 0644/0755).
    """
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == 0:
        return
    if kind == stat.S_IFLNK:
        _unsafe(path, "symbolic link")
    # A folder entry marked as a regular file is harmless (it is made a folder); the reverse is not.
    expected = (stat.S_IFDIR, stat.S_IFREG) if is_dir else (stat.S_IFREG,)
    if kind not in expected:
        what = _TYPE_NAMES.get(kind, f"type {kind:#o}")
        _unsafe(path, f"not a regular file or folder but a {what}")


class _Names:
    """Every path claimed so far, keyed case-insensitively after NFC.

    Two names differing only in case (or in NFC/NFD) would merge on Windows and macOS and confuse the
    trainee; a name used both as a file and as a folder cannot be written at all. Both are refused.
    """

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.folders: dict[str, str] = {}

    def claim_folder(self, parts: list[str], path: str) -> None:
        """Claim ``parts`` and every folder above it, for the entry ``path``."""
        for i in range(1, len(parts) + 1):
            folder = "/".join(parts[:i])
            key = folder.lower()
            if key in self.files:
                _unsafe(path, f"{self.files[key]} is both a file and a folder")
            known = self.folders.setdefault(key, folder)
            if known != folder:
                _unsafe(path, f"same name as {known} when upper/lower case is ignored")

    def claim_file(self, parts: list[str], path: str) -> None:
        self.claim_folder(parts[:-1], path)
        key = path.lower()
        other = self.files.get(key) or self.folders.get(key)
        if other == path:
            _unsafe(path, "the name appears twice in the zip")
        if other is not None:
            _unsafe(path, f"same name as {other} when upper/lower case is ignored")
        self.files[key] = path


def _check_readable(info: zipfile.ZipInfo, path: str) -> None:
    if info.flag_bits & _FLAG_ENCRYPTED:
        raise ScoringError(ErrorCode.ZIP_ENCRYPTED, params={"name": path})
    if info.compress_type not in _SUPPORTED_METHODS:
        raise ScoringError(
            ErrorCode.NOT_A_ZIP,
            detail=f"{path}: compression method {info.compress_type} is not supported "
            "(Deflate64, AES…); re-zip with Explorer or Finder",
        )


def _unsafe(name: str, reason: str) -> NoReturn:
    raise ScoringError(ErrorCode.ZIP_UNSAFE_ENTRY, params={"name": name, "reason": reason})


def _check_declared_sizes(plan: _Plan, limits: IntakeLimits) -> None:
    """Refuse honest bombs before writing anything; lying ones are caught while streaming."""
    total = 0
    for p in plan.files:
        total += p.info.file_size
        if total > limits.max_total_bytes:
            raise ScoringError(
                ErrorCode.ZIP_EXPANDS_TOO_FAR,
                params={"limit": human_bytes(limits.max_total_bytes)},
                detail=f"declared uncompressed sizes add up to more than the limit (at {p.path})",
            )
        cap = _ratio_cap(p.info, limits)
        if p.info.file_size > cap:
            raise ScoringError(
                ErrorCode.ZIP_EXPANDS_TOO_FAR,
                params={"limit": human_bytes(cap)},
                detail=f"{p.path}: declared {p.info.file_size} bytes from {p.info.compress_size} "
                f"compressed (over {limits.max_ratio}:1)",
            )


def _ratio_cap(info: zipfile.ZipInfo, limits: IntakeLimits) -> int:
    return max(_RATIO_FLOOR_BYTES, info.compress_size * limits.max_ratio)


# --- choosing the entry -------------------------------------------------------------------------


def _entry_kind(path: str) -> Literal["py", "ipynb"] | None:
    return ENTRY_NAMES.get(PurePosixPath(path).name)


def _depth_then_name(path: str) -> tuple[int, str]:
    return (path.count("/"), path)


def _choose_entry(plan: _Plan, notices: list[Notice]) -> tuple[str, Literal["py", "ipynb"]]:
    """The shallowest folder holding an entry file; ``.py`` wins over ``.ipynb`` beside it."""
    candidates = [p.path for p in plan.files if _entry_kind(p.path)]
    if not candidates:
        raise ScoringError(
            ErrorCode.ENTRY_NOT_FOUND,
            params={"found": _summarise_found([p.path for p in plan.files])},
            detail="\n".join(p.path for p in plan.files),
        )
    depth = min(c.count("/") for c in candidates)
    shallowest = [c for c in candidates if c.count("/") == depth]
    folders = sorted({str(PurePosixPath(c).parent) for c in shallowest})
    if len(folders) > 1:
        raise ScoringError(ErrorCode.ENTRY_AMBIGUOUS, params={"paths": ", ".join(sorted(shallowest))})
    by_kind = {_entry_kind(c): c for c in shallowest}
    if "py" in by_kind and "ipynb" in by_kind:
        notices.append(
            Notice(
                "both_entries",
                f"{ENTRY_STEM}.py と {ENTRY_STEM}.ipynb の両方があるため、.py を採点しました。",
                f"Both {ENTRY_STEM}.py and {ENTRY_STEM}.ipynb are present: the .py was scored.",
            )
        )
    chosen = by_kind.get("py") or by_kind["ipynb"]
    ignored = [c for c in candidates if c.count("/") > depth]
    if ignored:
        shown = ", ".join(sorted(ignored)[:3])
        notices.append(
            Notice(
                "other_entries_ignored",
                f"より深い場所にある {shown} は使わず、{chosen} を採点しました。",
                f"Scored {chosen}; the deeper {shown} was ignored.",
            )
        )
    if depth >= 2:
        folder = str(PurePosixPath(chosen).parent)
        notices.append(
            Notice(
                "entry_nested",
                f"{chosen} をフォルダ {folder} の中で見つけました。このフォルダを作業フォルダとして実行します。",
                f"Found {chosen} inside {folder}; it runs with that folder as its working directory.",
            )
        )
    kind = _entry_kind(chosen)
    assert kind is not None
    return chosen, kind


def _summarise_found(paths: list[str]) -> str:
    """A short list for the message, near misses first (``submit_katakana.py.txt`` from Windows hiding
    extensions, ``submit_katakana (1).py`` from a second download)."""
    if not paths:
        return "(none)"
    near = [p for p in paths if "katakana" in PurePosixPath(p).name.casefold()]
    rest = [p for p in paths if p not in near]
    ordered = near + rest
    shown = ", ".join(ordered[:_FOUND_SHOWN])
    more = len(ordered) - _FOUND_SHOWN
    return f"{shown}, … (+{more})" if more > 0 else shown


# --- writing ------------------------------------------------------------------------------------


def _prepare_dest(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"extraction folder {dest} is not empty")
    dest.chmod(0o755)


def _write_all(zf: zipfile.ZipFile, plan: _Plan, dest: Path, limits: IntakeLimits) -> list[str]:
    for folder in plan.dirs:
        _make_dirs(dest, folder.split("/"))
    budget = limits.max_total_bytes
    written: list[str] = []
    for p in plan.files:
        parts = p.path.split("/")
        parent = _make_dirs(dest, parts[:-1])
        cap = min(budget, _ratio_cap(p.info, limits))
        try:
            n = _write_file(zf, p.info, parent / parts[-1], cap)
        except _CapExceeded as exc:
            limit = limits.max_total_bytes if cap == budget else cap
            raise ScoringError(
                ErrorCode.ZIP_EXPANDS_TOO_FAR,
                params={"limit": human_bytes(limit)},
                detail=f"{p.path}: stopped after writing {exc.written} bytes "
                f"(declared {p.info.file_size}, compressed {p.info.compress_size})",
            ) from None
        budget -= n
        written.append(p.path)
    return written


def _make_dirs(dest: Path, parts: Iterable[str]) -> Path:
    """Create each folder 0755, refusing to walk through anything that is not a real folder."""
    current = dest
    for part in parts:
        current = current / part
        try:
            os.mkdir(current, 0o755)
            os.chmod(current, 0o755)  # noqa: S103 - the sandbox uid must read it; umask masked mkdir
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise ScoringError(
                    ErrorCode.ZIP_UNSAFE_ENTRY,
                    params={"name": part, "reason": "a file and a folder share this name"},
                ) from None
    return current


class _CapExceeded(Exception):
    def __init__(self, written: int) -> None:
        super().__init__(written)
        self.written = written


def _write_file(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, cap: int) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(target, flags, 0o644)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, 0o644)
        try:
            src = zf.open(info)
        except (*_READ_ERRORS, NotImplementedError, RuntimeError) as exc:
            raise ScoringError(ErrorCode.NOT_A_ZIP, detail=f"{info.filename}: {exc}") from exc
        with src:
            return _copy_capped(src, out, cap, name=info.filename)


def _copy_capped(src: IO[bytes], out: IO[bytes], cap: int, name: str = "") -> int:
    """Copy ``src`` to ``out`` and return the byte count, raising once more than ``cap`` bytes come.

    The count is of bytes actually produced by the decompressor, never what the headers declare, so a
    bomb with lying sizes is stopped at the cap. Read failures (bad CRC, corrupt stream) mean the zip
    is damaged: NOT_A_ZIP.
    """
    total = 0
    while True:
        try:
            chunk = src.read(_CHUNK)
        except _READ_ERRORS as exc:
            raise ScoringError(ErrorCode.NOT_A_ZIP, detail=f"{name}: {exc}") from exc
        if not chunk:
            return total
        total += len(chunk)
        if total > cap:
            raise _CapExceeded(total)
        out.write(chunk)
