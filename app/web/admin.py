"""The admin's view of the embedded mail folder: what the service would have emailed, readable on
the site when no SMTP server is configured (the embedded default and the demo)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.web.csrf import verify_csrf
from app.web.deps import AdminUser, LangDep, NotFound, SettingsDep
from app.web.templating import local_time_tz, render

router = APIRouter(prefix="/admin", dependencies=[Depends(verify_csrf)])
MAX_LISTED = 500


def mail_files(mail_dir: Path) -> list[Path]:
    if not mail_dir.is_dir():
        return []
    files = [p for p in mail_dir.rglob("*") if p.is_file() and p.suffix in (".eml", ".msg", "")]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)[:MAX_LISTED]


def _date(header: object, timezone: str) -> str:
    """The Date header on the site's clock ("2026-11-28 18:00 JST"), not the raw RFC 2822 text in UTC."""
    try:
        sent = email.utils.parsedate_to_datetime(str(header))
    except (TypeError, ValueError):
        return str(header or "")
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=dt.UTC)
    return local_time_tz(sent, timezone)


def _summary(path: Path, root: Path, timezone: str) -> dict[str, str]:
    with path.open("rb") as fh:
        message = email.message_from_binary_file(fh, policy=email.policy.default)
    return {
        "name": path.relative_to(root).as_posix(),
        "to": str(message.get("To", "")),
        "subject": str(message.get("Subject", "")),
        "date": _date(message.get("Date", ""), timezone),
    }


@router.get("/mail", name="admin_mail")
def mail_list(request: Request, admin: AdminUser, settings: SettingsDep, lang: LangDep) -> Response:
    root = settings.mail_dir
    assert root is not None
    messages = [_summary(p, root, settings.default_timezone) for p in mail_files(root)]
    return render(request, "admin_mail.html", {"messages": messages})


@router.get("/mail/{name:path}", name="admin_mail_message")
def mail_message(request: Request, name: str, admin: AdminUser, settings: SettingsDep, lang: LangDep) -> Response:
    root = settings.mail_dir
    assert root is not None
    wanted = {p.relative_to(root).as_posix(): p for p in mail_files(root)}
    path = wanted.get(name)
    if path is None:
        raise NotFound
    with path.open("rb") as fh:
        message = email.message_from_binary_file(fh, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else ""
    summary = _summary(path, root, settings.default_timezone)
    return render(request, "admin_mail.html", {"message": summary, "body": text, "messages": None})
