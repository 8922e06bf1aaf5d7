"""Structured logs: one line per record, ``key=value`` (default) or JSON, with the submission id.

Why a context variable and not an argument: a log line "about" a submission is often written deep
inside code that has never heard of it (the sandbox, the pre-flight check, the mail transport). The
scoring task and the upload route bind the id once; :class:`ContextFilter` copies it onto every
record made while it is bound, so ``grep submission_id=42`` finds the whole story of submission 42,
in the web process and in the worker alike.

``KATAKANA_LOG_FORMAT=json`` (``Settings.log_format``, passed in by the process that configures its
logging) switches to one JSON object per line, for log shippers that parse it.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

LogFormat = Literal["kv", "json"]

# Per-request / per-task fields; a dict (copied on write) so several fields can be bound at once.
_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("katakana_log_context", default=None)

_MARK = "_katakana_structured"  # set on handlers we installed, so configuring twice is harmless
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def bind(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Add fields (e.g. ``submission_id=42``) to every log line of the current context."""
    return _context.set({**(_context.get() or {}), **fields})


def unbind(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (never overriding what the call itself passed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


def _kv_value(value: Any) -> str:
    text = str(value)
    if text and not any(ch in text for ch in ' "=\n\t'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class StructuredFormatter(logging.Formatter):
    """``ts=… level=… logger=… service=… submission_id=… msg=…`` (msg last, unquoted) or the same as a JSON object."""

    def __init__(self, service: str, fmt: LogFormat = "kv") -> None:
        super().__init__()
        self.service = service
        self.fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": self.service,
            "pid": record.process,
        }
        fields.update(_extra_fields(record))
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        message = record.getMessage()
        if self.fmt == "json":
            return json.dumps({**fields, "msg": message}, ensure_ascii=False, default=str)
        # The message comes last and unquoted (only line breaks escaped): everything after "msg=" is
        # the message, so a line stays readable and greppable exactly as the code wrote it.
        head = " ".join(f"{key}={_kv_value(value)}" for key, value in fields.items())
        return f"{head} msg={message.replace(chr(10), chr(92) + 'n')}"


def restyle(handler: logging.Handler, service: str, fmt: LogFormat) -> None:
    """Give an existing handler (Celery's, uvicorn's) our format and the context filter."""
    handler.setFormatter(StructuredFormatter(service, fmt))
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())


def configure_logging(service: str, fmt: LogFormat, level: int = logging.INFO) -> None:
    """Log the ``app``, ``worker`` and ``scorer`` packages structured to stderr; safe to call twice.

    The handler sits on those package loggers (not on the root logger), so it neither fights
    uvicorn's or pytest's own logging set-up nor prints anything twice.
    """
    for name in ("app", "worker", "scorer"):
        logger = logging.getLogger(name)
        if any(getattr(h, _MARK, False) for h in logger.handlers):
            continue
        handler = logging.StreamHandler()
        setattr(handler, _MARK, True)
        restyle(handler, service, fmt)
        logger.addHandler(handler)
        logger.setLevel(min(level, logger.level or level))
        logger.propagate = True
