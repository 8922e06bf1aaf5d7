"""The upload page and the streamed upload itself.

Order matters and is the point of this module: receive the file to disk (capped) → check CSRF →
pre-flight (a refused zip spends nothing) → spend a slot and insert the ``queued`` row in one locked
transaction → commit → enqueue. Browsers get pages; our XHR and API clients get JSON, with HTTP 429
when the daily limit is used up.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from app.i18n import Translator, normalize_lang
from app.models import Cohort, Role, User
from app.observability.structured_logs import bind as bind_log_fields
from app.queue import NoWorkerAnswered
from app.security.csrf import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, tokens_match
from app.security.sessions import SESSION_COOKIE
from app.services import preflight_gate, storage
from app.services.preflight import PreflightVerdict, cached_preflight
from app.services.public_set import public_set_identity
from app.services.smoke_confirm import CONFIRM_FIELD, confirmed_in_form, needs_confirmation
from app.services.submissions import SubmissionRefused, active_cohort, check_can_submit, create_queued
from app.services.uploads import ReceivedUpload, UploadRejected, receive_upload
from app.settings import Settings
from app.web import storage_full
from app.web.csrf import CSRFRejected, verify_csrf
from app.web.deps import (
    ClockDep,
    CurrentUser,
    NotFound,
    SessionDep,
    SettingsDep,
    TranslatorDep,
    Uploader,
    UploaderDep,
    wants_json,
)
from app.web.templating import human_size, render
from app.web.upload_page import (
    SCORER_TEMPLATES,
    limits_view,
    quota_view,
    runtime_key,
    runtime_versions,
    runtime_view,
    standing,
    template_files,
)

log = logging.getLogger(__name__)
router = APIRouter()
page_router = APIRouter(dependencies=[Depends(verify_csrf)])


def _page_context(
    db: Session, user: User, cohort: Cohort | None, settings: Settings, now: Any, t: Translator
) -> dict[str, Any]:
    versions = runtime_versions(runtime_key(settings))
    return {
        "cohort": cohort,
        "quota": quota_view(db, user, cohort, now, t) if cohort else None,
        "standing": standing(db, user.id, cohort) if cohort else None,
        "versions": versions,
        "runtime": runtime_view(runtime_key(settings)),
        "limits": limits_view(t, settings),
        "templates": template_files(),
        "max_bytes": settings.upload_max_bytes,
        "max_size": human_size(settings.upload_max_bytes),
    }


@page_router.get("/upload", name="upload_page")
def upload_page(
    request: Request,
    db: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    clock: ClockDep,
    t: TranslatorDep,
) -> Response:
    cohort = active_cohort(db, user.id)
    return render(request, "upload.html", _page_context(db, user, cohort, settings, clock(), t))


@page_router.get("/templates/{name}", name="template_file")
def template_file(name: str, user: CurrentUser) -> Response:
    if name not in template_files():
        raise NotFound
    return FileResponse(SCORER_TEMPLATES / name, filename=name)


class Refusal(Exception):
    """An upload refused with a message in both languages (``key`` in the i18n tables)."""

    def __init__(
        self,
        status: int,
        key: str,
        detail: str | None = None,
        extra: dict[str, Any] | None = None,
        per_lang: dict[str, dict[str, Any]] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(key)
        self.status, self.key, self.detail, self.extra, self.params = status, key, detail, extra or {}, params
        self.per_lang = per_lang or {}  # parameters worded per language ("3 h 12 min" / "3時間12分")

    def message(self, lang: str) -> str:
        chosen = normalize_lang(lang)
        return Translator(chosen)(self.key, **{**self.params, **self.per_lang.get(chosen, {})})


def parse_validation_accuracy(raw: str | None) -> float | None:
    """ "0.953", "95.3" and "95.3%" all mean 0.953; empty means not given."""
    text = (raw or "").strip().replace("%", "").replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise Refusal(422, "upload_error_validation_accuracy") from None
    if not math.isfinite(value) or value < 0 or value > 100:
        raise Refusal(422, "upload_error_validation_accuracy")
    return value / 100 if value > 1 else value


@router.post("/upload", name="upload")
async def upload(request: Request, user: UploaderDep, settings: SettingsDep, clock: ClockDep) -> Response:
    lang = user.lang
    factory = request.app.state.sessionmaker
    received: ReceivedUpload | None = None
    header_token = request.headers.get(CSRF_HEADER)
    is_form = request.headers.get("content-type", "").startswith("multipart/form-data")
    session_cookie = request.cookies.get(SESSION_COOKIE)
    if (header_token is not None or not is_form) and not tokens_match(
        request.cookies.get(CSRF_COOKIE), header_token, settings, session_cookie
    ):
        raise CSRFRejected  # refused before a byte of the body is read
    try:
        cohort_id = await anyio.to_thread.run_sync(_uploadable_cohort_id, factory, user, clock())
        length = request.headers.get("content-length")
        try:
            received = await receive_upload(
                request.headers.get("content-type", ""),
                int(length) if length and length.isdigit() else None,
                request.stream(),
                storage_dir=settings.storage_dir,  # type: ignore[arg-type]
                max_bytes=settings.upload_max_bytes,
            )
        except UploadRejected as exc:
            status = 413 if exc.reason == "too_large" else 400
            raise Refusal(status, f"upload_error_{exc.reason}", limit=human_size(settings.upload_max_bytes)) from exc
        except OSError as exc:  # the receiver removed its partial file; say so on the page, not as a 500
            if not storage_full.is_disk_full(exc):
                raise
            log.error("storage full while receiving an upload: %s", exc)
            raise Refusal(507, storage_full.MESSAGE_KEY, extra={"retry_after": storage_full.RETRY_AFTER_S}) from exc
        if header_token is None and not tokens_match(
            request.cookies.get(CSRF_COOKIE), received.fields.get(CSRF_FIELD), settings, session_cookie
        ):
            raise CSRFRejected
        validation = parse_validation_accuracy(received.fields.get("validation_accuracy"))
        if settings.preflight:
            try:
                async with preflight_gate.turn(factory, user.id, settings, clock):
                    verdict = await _preflight(request, received)
            except preflight_gate.PreflightRefused as exc:
                raise _gate_refusal(exc, settings) from exc
            if verdict.server_fault:
                raise Refusal(503, "upload_error_preflight_internal", detail=verdict.error_message(lang))
            if not verdict.ok:
                raise Refusal(
                    422,
                    "upload_error_preflight",
                    detail=verdict.error_message(lang),
                    extra={"preflight": verdict.to_json()},
                )
            await _ask_if_near_chance(request, user, received, verdict)
        now = clock()
        try:
            submission = await anyio.to_thread.run_sync(
                lambda: create_queued(
                    factory,
                    user_id=user.id,
                    cohort_id=cohort_id,
                    upload=received,
                    validation_accuracy=validation,
                    now=now,
                )
            )
        except SubmissionRefused as exc:
            raise _refusal_for(exc, now) from exc
    except Refusal as refusal:
        return await _refused(request, refusal, received, user, settings, clock, lang)
    bind_log_fields(submission_id=submission.id)  # every later line of this request names it
    log.info("upload accepted as submission %s (%s bytes)", submission.id, received.size if received else 0)
    await anyio.to_thread.run_sync(_enqueue, request.app.state.enqueue, submission.id)
    url = f"/submissions/{submission.id}"
    if wants_json(request):
        return JSONResponse({"id": submission.id, "status": submission.status.value, "url": url}, status_code=201)
    return RedirectResponse(url, status_code=303)


def _uploadable_cohort_id(factory: Any, user: Uploader, now: dt.datetime) -> int:
    """The cohort to upload to, refusing before the body is read when the upload cannot be taken."""
    if user.role != Role.TRAINEE:
        raise Refusal(403, "upload_error_not_trainee")
    with factory() as db:
        cohort = active_cohort(db, user.id)
        try:
            check_can_submit(db, user.id, cohort, now)
        except SubmissionRefused as exc:
            raise _refusal_for(exc, now) from exc
        assert cohort is not None
        return cohort.id


def _refusal_for(exc: SubmissionRefused, now: dt.datetime) -> Refusal:
    if exc.reason == "quota" and exc.quota is not None:
        per_lang = {code: _quota_params(exc, now, code) for code in ("ja", "en")}
        extra = {
            "resets_at": exc.quota.resets_at.isoformat(),
            "retry_after": max(1, int(exc.quota.resets_in(now).total_seconds())),
        }
        return Refusal(429, "upload_error_quota", extra=extra, per_lang=per_lang)
    return Refusal(403, f"upload_error_{exc.reason}")


def _gate_refusal(exc: preflight_gate.PreflightRefused, settings: Settings) -> Refusal:
    """Busy (their previous check still runs) or over the hourly rate: what happened and when to retry."""
    local = exc.retry_at.astimezone(ZoneInfo(settings.default_timezone))
    extra = {"retry_after": exc.retry_after_s, "retry_at": exc.retry_at.isoformat()}
    minutes = max(1, (exc.retry_after_s + 59) // 60)
    return Refusal(429, f"upload_error_preflight_{exc.reason}", extra=extra, limit=exc.limit, minutes=minutes,
                   time=local.strftime("%H:%M"))  # fmt: skip


def _quota_params(exc: SubmissionRefused, now: Any, lang: str) -> dict[str, Any]:
    assert exc.quota is not None
    t = Translator(normalize_lang(lang))
    local = exc.quota.resets_at.astimezone(ZoneInfo(exc.quota.timezone))
    return {
        "limit": exc.quota.limit,
        "time": local.strftime("%H:%M"),
        "tz": local.tzname() or exc.quota.timezone,
        "remaining": t.duration(exc.quota.resets_in(now)),
    }


async def _preflight(request: Request, received: ReceivedUpload) -> PreflightVerdict:
    settings: Settings = request.app.state.settings
    path = storage.path_for(settings.storage_dir, received.storage_key)  # type: ignore[arg-type]
    checker = request.app.state.preflight_checker
    try:
        public = await anyio.to_thread.run_sync(public_set_identity, settings)
        return await anyio.to_thread.run_sync(
            cached_preflight, request.app.state.sessionmaker, path, received.sha256, checker, public
        )
    except NoWorkerAnswered as exc:
        log.error("no pre-flight verdict for %s: %s", received.sha256, exc)
        raise Refusal(503, "upload_error_preflight_unanswered", extra={"retry_after": 60}) from exc
    except Exception as exc:
        log.exception("pre-flight failed for %s", received.sha256)
        raise Refusal(503, "upload_error_preflight_internal") from exc


async def _ask_if_near_chance(
    request: Request, user: Uploader, received: ReceivedUpload, verdict: PreflightVerdict
) -> None:
    """Stop (409) before the upload is spent when the public smoke images came out near chance,
    unless the trainee confirms now or confirmed this zip before."""
    settings: Settings = request.app.state.settings
    confirmed_now = confirmed_in_form(received.fields.get(CONFIRM_FIELD))
    ask = await anyio.to_thread.run_sync(
        needs_confirmation,
        request.app.state.sessionmaker,
        user.id,
        received.sha256,
        verdict,
        settings.preflight_near_chance_below,
        confirmed_now,
    )
    if ask:
        smoke = verdict.smoke or {}
        raise Refusal(
            409,
            "upload_error_near_chance",
            extra={"preflight": verdict.to_json(), "confirm_field": CONFIRM_FIELD},
            correct=smoke.get("correct", 0),
            total=smoke.get("total", 0),
        )


def _enqueue(enqueue: Any, submission_id: int) -> None:
    try:
        enqueue(submission_id)
    except Exception:  # the row is committed as queued: the worker's sweeper re-queues it
        log.exception("could not enqueue submission %s; the sweeper will", submission_id)


async def _refused(
    request: Request,
    refusal: Refusal,
    received: ReceivedUpload | None,
    user: Uploader,
    settings: Settings,
    clock: Any,
    lang: str,
) -> Response:
    # What was received stays in the store for support, until the sweep removes refused zips
    # past ``refused_upload_retention_s`` (see ``app.services.storage.purge_stale_uploads``).
    body: dict[str, Any] = {
        "error": {
            "code": refusal.key.removeprefix("upload_error_"),
            "message": refusal.message(lang),
            "message_ja": refusal.message("ja"),
            "message_en": refusal.message("en"),
            "detail": refusal.detail,
            **refusal.extra,
        }
    }
    if received is not None:
        body["error"]["upload"] = {
            "sha256": received.sha256,
            "size": received.size,
            "filename": received.original_filename,
        }
    if wants_json(request):
        response: Response = JSONResponse(body, status_code=refusal.status)
    else:
        t = Translator(normalize_lang(lang))

        def context() -> dict[str, Any]:
            with request.app.state.sessionmaker() as db:
                account = db.get(User, user.id)
                assert account is not None
                return _page_context(db, account, active_cohort(db, user.id), settings, clock(), t)

        ctx = await anyio.to_thread.run_sync(context)
        ctx.update(error=refusal.message(lang), error_detail=refusal.detail, preflight=refusal.extra.get("preflight"))
        ctx.update(near_chance=refusal.key == "upload_error_near_chance")
        response = render(request, "upload.html", ctx, refusal.status)
    if "retry_after" in refusal.extra:
        response.headers["Retry-After"] = str(refusal.extra["retry_after"])
    if refusal.status == 413:  # the rest of the body is not read: the connection cannot be reused
        response.headers["Connection"] = "close"
    return response
