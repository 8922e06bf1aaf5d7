"""A full disk is a clear, bilingual refusal (507, Retry-After), never a bare 500.

Running out of space is a state of the service, not a bug, and no trainee should see a stack trace
for it. The upload route answers it itself, on its page for browsers (``uploads.py`` uses
:func:`is_disk_full` and the message key); :func:`install_handler` is the net for any other request
that writes (a password reset, an admin import). Either way the upload receiver has already
removed its partial file, so nothing half-written stays behind.
"""

from __future__ import annotations

import errno
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from app.i18n import LANG_COOKIE, Translator, normalize_lang

log = logging.getLogger(__name__)

MESSAGE_KEY = "upload_error_storage_full"
RETRY_AFTER_S = 300
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in _DISK_FULL_ERRNOS


def install_handler(app: FastAPI) -> None:
    """An ``OSError`` meaning "no space" becomes 507 with the message in Japanese and English; any
    other ``OSError`` is re-raised as the bug it is."""

    @app.exception_handler(OSError)
    async def disk_full(request: Request, exc: OSError) -> Response:
        if not is_disk_full(exc):
            raise exc
        log.error("storage full while handling %s %s: %s", request.method, request.url.path, exc)
        lang = normalize_lang(request.cookies.get(LANG_COOKIE))
        body = {
            "error": {
                "code": "storage_full",
                "message": Translator(lang)(MESSAGE_KEY),
                "message_ja": Translator("ja")(MESSAGE_KEY),
                "message_en": Translator("en")(MESSAGE_KEY),
            }
        }
        return JSONResponse(body, status_code=507, headers={"Retry-After": str(RETRY_AFTER_S)})
