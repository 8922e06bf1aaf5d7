"""Receiving an upload's HTTP body: the multipart body is parsed as it arrives and written straight to disk.

Nothing holds the whole file in memory, whatever its size: each chunk is hashed, counted and written,
and the upload is refused as soon as it passes the cap (at once, from ``Content-Length``, when the
client declares a body that is already too large).

The body goes to a part file under ``incoming/``, not into the store: the upload may still be
refused after its body (the CSRF token is a form field, the pre-flight turn is taken, the trainee's
storage budget is weighed). :meth:`app.services.storage.ReceivedUpload.keep` moves it to its content-hash place only in
the transaction that records the row naming it; a refused upload's part file is removed
(:meth:`ReceivedUpload.discard`), so a refusal leaves nothing on disk.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header

from app.services import storage
from app.services.storage import ReceivedUpload

FILE_FIELD = "file"
MULTIPART_SLACK = 64 * 1024  # room for the other fields and the part headers
MAX_FIELD_BYTES = 16 * 1024


class UploadRejected(Exception):
    """The request body cannot be accepted; ``reason`` is an i18n key."""

    def __init__(self, reason: str, **params: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params


@dataclass
class _Part:
    """The multipart part being parsed."""

    header_field: bytes = b""
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    is_file: bool = False

    def reset(self) -> None:
        self.header_field, self.headers, self.name, self.is_file = b"", {}, "", False


def display_filename(raw: bytes) -> str:
    """A file name as the trainee saw it.

    Browsers send UTF-8 (older Japanese Windows software CP932); macOS sends decomposed kana
    (``ファイル`` as ``フ`` + combining mark), so the name is normalised to NFC. Any folder part
    (old browsers send ``C:\\Users\\…\\file.zip``) is dropped.
    """
    for encoding in ("utf-8", "cp932"):
        try:
            name = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        name = raw.decode("latin-1")
    name = unquote(name) if "%" in name and name.isascii() else name
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] or "submission.zip"


_EXTENDED_FILENAME = re.compile(rb"filename\*\s*=\s*([\w!#$&+.^`|~-]+)'[\w-]*'([^;\s]+)", re.IGNORECASE)


def _filename_from_disposition(value: bytes) -> str | None:
    """The part's file name; ``filename*=UTF-8''…`` (RFC 5987, sent by some API clients) wins."""
    extended = _EXTENDED_FILENAME.search(value)
    if extended:
        return display_filename(unquote(extended.group(2).decode("ascii", "replace")).encode())
    _, options = parse_options_header(value)
    if b"filename" in options:
        return display_filename(options[b"filename"])
    return None


async def receive_upload(
    content_type: str,
    content_length: int | None,
    chunks: AsyncIterator[bytes],
    *,
    storage_dir: Path,
    max_bytes: int,
) -> ReceivedUpload:
    """Parse a ``multipart/form-data`` body with one file part named ``file`` into a part file.

    Raises :class:`UploadRejected` (``too_large``, ``bad_request``, ``no_file``); the partial file is
    always removed then. Small text fields are returned in ``fields``. The caller keeps or discards
    the file (:class:`ReceivedUpload`) however it goes on.
    """
    if content_length is not None and content_length > max_bytes + MULTIPART_SLACK:
        raise UploadRejected("too_large", size=content_length)
    ctype, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadRejected("bad_request")

    result = ReceivedUpload()
    digest = hashlib.sha256()
    incoming = storage.incoming_dir(storage_dir) / f"{uuid.uuid4().hex}.part"
    part = _Part()
    value_parts: list[bytes] = []
    pending: list[bytes] = []  # file bytes parsed from the current chunk, written after it
    errors: list[UploadRejected] = []
    seen_file = False
    sink: BinaryIO | None = None

    def on_part_begin() -> None:
        part.reset()
        value_parts.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        key = part.header_field.lower()
        part.headers[key] = part.headers.get(key, b"") + data[start:end]

    def on_header_end() -> None:
        part.header_field = b""

    def on_headers_finished() -> None:
        nonlocal seen_file
        disposition = part.headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = _filename_from_disposition(disposition)
        part.is_file = part.name == FILE_FIELD and filename is not None
        if part.is_file:
            if seen_file:
                errors.append(UploadRejected("bad_request"))
            seen_file = True
            result.original_filename = filename or ""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part.is_file:
            result.size += end - start
            if result.size > max_bytes:
                errors.append(UploadRejected("too_large", size=result.size))
                return
            pending.append(data[start:end])
        else:
            value_parts.append(data[start:end])
            if sum(map(len, value_parts)) > MAX_FIELD_BYTES:
                errors.append(UploadRejected("bad_request"))

    def on_part_end() -> None:
        if not part.is_file and part.name:
            result.fields[part.name] = b"".join(value_parts).decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    try:
        sink = incoming.open("wb")
        async for chunk in chunks:
            try:
                parser.write(chunk)
            except Exception as exc:  # python-multipart raises its own error types for bad bodies
                raise UploadRejected("bad_request") from exc
            if errors:
                raise errors[0]
            if pending:
                data = b"".join(pending)
                pending.clear()
                digest.update(data)
                await anyio.to_thread.run_sync(sink.write, data)
        parser.finalize()
        if errors:
            raise errors[0]
        if not seen_file or result.size == 0:
            raise UploadRejected("no_file")
        sink.close()
        result.sha256 = digest.hexdigest()
        result.storage_key = storage.key_for(result.sha256)
        result.destination = storage.path_for(storage_dir, result.storage_key)
        result.part = incoming
        return result
    finally:
        if sink is not None and not sink.closed:
            sink.close()
        if result.part is None:
            incoming.unlink(missing_ok=True)
