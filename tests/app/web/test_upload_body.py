"""Receiving a multipart body as a stream: the cap by counting, hashing, and file names."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from app.services.storage import ReceivedUpload
from app.web.upload_body import UploadRejected, display_filename, receive_upload

BOUNDARY = "xyz"


def _body(filename_header: bytes, data: bytes, extra: dict[str, str] | None = None) -> list[bytes]:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (extra or {}).items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '.encode()
        + filename_header
        + b"\r\nContent-Type: application/zip\r\n\r\n"
    )
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    return parts + chunks + [f"\r\n--{BOUNDARY}--\r\n".encode()]


async def _stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _receive(tmp_path: Path, chunks: list[bytes], max_bytes: int = 10_000, length: int | None = None) -> ReceivedUpload:
    async def go() -> ReceivedUpload:
        return await receive_upload(
            f"multipart/form-data; boundary={BOUNDARY}",
            length,
            _stream(chunks),
            storage_dir=tmp_path,
            max_bytes=max_bytes,
        )

    return anyio.run(go)


def test_stores_by_hash_only_when_kept_and_returns_fields(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20
    received = _receive(tmp_path, _body(b'filename="a.zip"', data, {"validation_accuracy": "0.9"}))
    digest = hashlib.sha256(data).hexdigest()
    assert received.sha256 == digest and received.size == len(data)
    assert received.fields == {"validation_accuracy": "0.9"}
    assert received.storage_key == f"zips/{digest[:2]}/{digest}.zip"
    assert not (tmp_path / "zips").exists()  # received, not stored: the upload may still be refused
    assert [p.read_bytes() for p in (tmp_path / "incoming").iterdir()] == [data]
    received.keep()
    assert (tmp_path / received.storage_key).read_bytes() == data
    assert list((tmp_path / "incoming").iterdir()) == []
    received.discard()  # kept: nothing to remove
    assert (tmp_path / received.storage_key).exists()


def test_a_discarded_upload_leaves_nothing(tmp_path: Path) -> None:
    received = _receive(tmp_path, _body(b'filename="a.zip"', b"PK" * 500))
    received.discard()
    assert list((tmp_path / "incoming").iterdir()) == [] and not (tmp_path / "zips").exists()


def test_refuses_past_the_cap_by_counting_and_keeps_nothing(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected) as refused:
        _receive(tmp_path, _body(b'filename="a.zip"', b"\0" * 20_000))
    assert refused.value.reason == "too_large"
    assert list((tmp_path / "incoming").iterdir()) == []
    assert not (tmp_path / "zips").exists()


def test_refuses_a_declared_oversized_body_before_reading_it(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected, match="too_large"):
        _receive(tmp_path, [], length=10_000_000)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected, match="no_file"):
        _receive(tmp_path, _body(b'filename="a.zip"', b""))


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("提出物.zip".encode(), "提出物.zip"),
        ("提出物.zip".encode("cp932"), "提出物.zip"),  # old Japanese Windows software
        ("テスト.zip".replace("テ", "テ").encode(), "テスト.zip"),  # macOS: decomposed kana
        (b"C:\\Users\\hanako\\Desktop\\sub.zip", "sub.zip"),  # old browsers send the whole path
        (b"", "submission.zip"),
    ],
)
def test_display_filename(raw: bytes, shown: str) -> None:
    assert display_filename(raw) == shown


def test_rfc5987_filename(tmp_path: Path) -> None:
    received = _receive(tmp_path, _body(b"filename*=UTF-8''%E6%8F%90%E5%87%BA.zip", b"PK"))
    assert received.original_filename == "提出.zip"
