"""The ``Content-Disposition`` of a download: the real name for browsers (RFC 6266 / 5987), an ASCII
one for the rest. Names carry trainees' names, which HTTP headers cannot hold as they are."""

from __future__ import annotations

import re
from urllib.parse import quote

_NOT_PLAIN = re.compile(r"[^A-Za-z0-9._-]+")


def attachment(filename: str, *, fallback: str | None = None) -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''…``. ``fallback`` is the plain name for
    clients that ignore ``filename*``; by default ``filename`` with anything else than ASCII
    letters, digits, dot, dash and underscore replaced."""
    plain = fallback if fallback is not None else _NOT_PLAIN.sub("_", filename)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"
