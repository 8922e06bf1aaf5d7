"""Drop request bodies that stall: a bounded wait between chunks, and a bound on the whole body.

A client that opens an upload and then sends a byte now and then ("slowloris") would otherwise hold a
connection, a partial file and the upload route's resources for as long as it likes; a handful of
them keep the site busy for everyone. While the application waits for the next piece of a request
body, this middleware gives it at most ``body_idle_timeout_s``, and the body as a whole at most
``body_total_timeout_s`` from the request's start. When either runs out, the application's wait
ends with :class:`BodyTimeout` (the upload route removes its partial file on the way out, as for
any failed read) and the client gets ``408 Request Timeout`` with ``Connection: close``, in both
languages; uvicorn then closes the connection, since the body was not read to its end.

Once the body is complete nothing is timed: a response may still wait for the client's disconnect.
"""

from __future__ import annotations

import json
import logging
import time

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.i18n import Translator

log = logging.getLogger(__name__)


class BodyTimeout(Exception):
    """The request body stalled or took too long; raised from ``receive`` into the application."""


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, *, idle_timeout_s: float, total_timeout_s: float) -> None:
        self.app = app
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.total_timeout_s
        body_done = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            wait = min(self.idle_timeout_s, deadline - time.monotonic())
            message: Message | None = None
            if wait > 0:
                with anyio.move_on_after(wait):
                    message = await receive()
            if message is None:
                raise BodyTimeout
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except BodyTimeout:
            log.warning("request body stalled: %s %s dropped", scope.get("method", ""), scope.get("path", ""))
            if not started:
                await _send_timeout(send)


async def _send_timeout(send: Send) -> None:
    ja, en = Translator("ja")("body_timeout"), Translator("en")("body_timeout")
    body = json.dumps(
        {"error": {"code": "body_timeout", "message": ja, "message_ja": ja, "message_en": en}}, ensure_ascii=False
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
