"""Jinja2 set-up: every page gets the translator, the user, the CSRF token and formatting helpers."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.i18n import Translator, normalize_lang
from app.security.csrf import CSRF_FIELD
from app.web import charts
from scorer.classes import KATAKANA

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)


def local_time(value: dt.datetime | None, timezone: str = "Asia/Tokyo") -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def local_time_tz(value: dt.datetime | None, timezone: str = "Asia/Tokyo") -> str:
    """What pages show: the cohort's local time with its zone ("2026-11-28 18:00 JST"), so a trainee
    abroad or an instructor in another zone never guesses which clock a date is on."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(timezone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or timezone}"


def zone_label(timezone: str, at: dt.datetime | None = None) -> str:
    """The zone as pages write it beside a time ("JST"): its abbreviation at ``at`` (now by
    default), the IANA name only when the zone has none."""
    local = (at or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(timezone))
    return local.tzname() or timezone


# A message that shows code (the func_predict refusal's fix) ends with it, after a line of its own
# saying so; static/upload.js splits the same way.
_CODE_EXAMPLE = re.compile(r"\n(例|Example):\n")


def prose_and_code(text: str | None) -> tuple[str, str]:
    """A message as (prose, code example): the example is shown in a monospace block that scrolls
    sideways on a phone instead of wrapping mid-line; "" when the message has none."""
    parts = _CODE_EXAMPLE.split(text or "", maxsplit=1)
    if len(parts) != 3:
        return text or "", ""
    prose, marker, code = parts
    return f"{prose}\n{marker}:", code


def percent(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value * 100:.{digits}f}%"


def human_size(n: int) -> str:
    from scorer.errors import human_bytes

    return human_bytes(n)


templates.env.filters["local_time"] = local_time_tz  # pages: always with the zone (CSV cells stay bare)
templates.env.filters["percent"] = percent
templates.env.filters["human_size"] = human_size
templates.env.filters["zone_label"] = zone_label
templates.env.filters["prose_and_code"] = prose_and_code
templates.env.globals["charts"] = charts
templates.env.globals["CSRF_FIELD"] = CSRF_FIELD
templates.env.globals["KATAKANA"] = KATAKANA


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200) -> HTMLResponse:
    lang = normalize_lang(getattr(request.state, "lang", None))
    base = {
        "lang": lang,
        "t": Translator(lang),
        "user": getattr(request.state, "user", None),
        "csrf_token": getattr(request.state, "csrf_token", ""),
    }
    return templates.TemplateResponse(request, name, {**base, **(context or {})}, status_code=status_code)
