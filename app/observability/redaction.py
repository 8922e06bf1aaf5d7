"""Keep secrets in URLs out of the logs.

uvicorn's access log writes each request line with its query string, and one page takes a secret
there: the emailed password link ``/password/set?token=…``. Anyone who can read the logs (a log
shipper, a support engineer) could then set that trainee's password. The filter rewrites the
values of secret-looking query parameters to ``[redacted]`` before the line is formatted, whatever
handler and format the line is then written with.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# Parameter names whose values are secrets (matched whole, case-insensitively).
SECRET_PARAMS = ("token", "password", "passwd", "secret", "key", "api_key", "access_token", "code", "signature")
_SECRET_QUERY = re.compile(r"(?i)([?&;](?:" + "|".join(SECRET_PARAMS) + r")=)[^&;#\s\"]*")


def redact_url(text: str) -> str:
    """``/password/set?token=abc&x=1`` → ``/password/set?token=[redacted]&x=1``."""
    return _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, text)


class RedactSecretsFilter(logging.Filter):
    """Redacts secret query values in a record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact_url(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install(logger_names: tuple[str, ...] = ("uvicorn.access", "uvicorn.error", "app.access")) -> None:
    """Attach the filter to the loggers that write request lines (idempotent)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecretsFilter) for f in logger.filters):
            logger.addFilter(RedactSecretsFilter())
