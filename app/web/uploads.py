"""The upload page and the streamed upload itself.

Order matters and is the point of this module: every refusal that needs no body answers before the
body is read (session, a CSRF header, the cohort and daily limit, the pre-flight's one-at-a-time and
hourly rate, the storage budget from the declared length: :func:`_before_body`) → receive the file
to a part file (capped) → check the form's CSRF token → make room in the trainee's storage budget →
take the trainee's pre-flight turn → record the pre-flight, the zip entering the store in that
transaction, and send it → wait briefly (``preflight_inline_wait_s``) for its verdict. A refusal on
the way removes the part file: a refused upload leaves nothing on disk. Whoever runs the pre-flight acts
on the verdict (``app.services.preflight.lifecycle``): a refused zip spends nothing; an accepted one spends
a slot and inserts the ``queued`` row in one locked transaction, then is sent for scoring. A verdict
within the budget is answered as such; otherwise the answer is the pre-flight's page
(``/uploads/preflights/{id}``), which follows the pre-flight live. Browsers get pages; our XHR and API clients
get JSON (202 with the pre-flight's URL while it runs), with HTTP 429 when the daily limit is used up.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from app.i18n import Translator, normalize_lang
from app.models import Cohort, PreflightState, Role, Submission, User
from app.observability.structured_logs import bind as bind_log_fields
from app.queue import NoWorkerAnswered
from app.security.csrf import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, tokens_match
from app.security.sessions import SESSION_COOKIE
from app.services import upload_budget
from app.services.preflight import gate, lifecycle, refusals
from app.services.preflight.lifecycle import StartPreflight
from app.services.preflight.near_chance import CONFIRM_FIELD, confirmed_in_form
from app.services.preflight.verdict import PreflightVerdict
from app.services.progress import progress
from app.services.quota import quota_status
from app.services.scoring_queue import QueueWatch
from app.services.storage import ReceivedUpload
from app.services.submissions import SubmissionRefused, active_cohort, check_can_submit, create_queued
from app.settings import Settings
from app.web import storage_full
from app.web.csrf import CSRFRejected, verify_csrf
from app.web.deps import (
    ClockDep,
    CurrentUser,
    Enqueue,
    EnqueueDep,
    NotFound,
    PathId,
    ScoringQueueDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    StartPreflightDep,
    TranslatorDep,
    Uploader,
    UploaderDep,
    wants_json,
)
from app.web.long_poll import PreflightWatcherDep, Watcher, long_poll
from app.web.templating import human_size, render
from app.web.upload_body import MULTIPART_SLACK, UploadRejected, receive_upload
from app.web.upload_page import (
    SCORER_TEMPLATES,
    limits_view,
    quota_view,
    runtime_key,
    runtime_versions,
    runtime_view,
    standing,
    template_files,
    tensorflow_runtime_key,
)

log = logging.getLogger(__name__)
router = APIRouter()
page_router = APIRouter(dependencies=[Depends(verify_csrf)])


def _page_context(
    db: Session, user: User, cohort: Cohort | None, settings: Settings, now: Any, t: Translator
) -> dict[str, Any]:
    versions = runtime_versions(runtime_key(settings))
    trainee = user.role == Role.TRAINEE  # staff get the contract, never a standing of their own
    return {
        "cohort": cohort,
        "quota": quota_view(db, user, cohort, now, t) if cohort and trainee else None,
        "standing": standing(db, user.id, cohort) if cohort and trainee else None,
        "versions": versions,
        "runtime": runtime_view(runtime_key(settings), tensorflow_runtime_key(settings)),
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

    @classmethod
    def of(cls, reason: refusals.RefusalReason, **kwargs: Any) -> Refusal:
        """A pre-flight's refusal, with the status its reason is answered with."""
        return cls(reason.status, reason.key, **kwargs)

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


CHANGE_NOTE_MAX = 200  # characters: a line on the history, not a report


def parse_change_note(raw: str | None) -> str:
    """What the trainee changed since their last submission, on one line; empty means not said."""
    text = " ".join((raw or "").split())
    if len(text) > CHANGE_NOTE_MAX:
        raise Refusal(422, "upload_error_change_note", limit=CHANGE_NOTE_MAX)
    return text


@router.post("/upload", name="upload")
async def upload(
    request: Request,
    user: UploaderDep,
    settings: SettingsDep,
    clock: ClockDep,
    factory: SessionmakerDep,
    queue: ScoringQueueDep,
    enqueue: EnqueueDep,
    start_preflight: StartPreflightDep,
) -> Response:
    """Async because it streams the body as it arrives; everything blocking runs on threads."""
    reply = _Reply(request, user, settings, clock, factory, queue)
    received: ReceivedUpload | None = None
    started = time.time()  # a support copy stored again from now on is not ours to delete
    header_token = request.headers.get(CSRF_HEADER)
    is_form = request.headers.get("content-type", "").startswith("multipart/form-data")
    session_cookie = request.cookies.get(SESSION_COOKIE)
    if (header_token is not None or not is_form) and not tokens_match(
        request.cookies.get(CSRF_COOKIE), header_token, settings, session_cookie
    ):
        raise CSRFRejected  # refused before a byte of the body is read
    try:
        length = request.headers.get("content-length")
        declared = int(length) if length and length.isdigit() else None
        cohort_id = await anyio.to_thread.run_sync(_before_body, factory, user, declared, settings, clock())
        try:
            received = await receive_upload(
                request.headers.get("content-type", ""),
                declared,
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
        note = parse_change_note(received.fields.get("change_note"))
        await anyio.to_thread.run_sync(_make_room, factory, user, received, settings, clock(), started)
        if settings.preflight:
            confirmed = confirmed_in_form(received.fields.get(CONFIRM_FIELD))
            check = await _start_preflight(
                reply, start_preflight, cohort_id, received, validation, confirmed, change_note=note
            )
            if check.submission_id is not None:  # bound here, so the request's access line names it too
                bind_log_fields(submission_id=check.submission_id)
            return await anyio.to_thread.run_sync(_answer_preflight, reply, check)
        now = clock()
        upload = received  # as the lambda below sees it: never None
        try:
            submission = await anyio.to_thread.run_sync(
                lambda: create_queued(
                    factory,
                    user_id=user.id,
                    cohort_id=cohort_id,
                    upload=upload,
                    validation_accuracy=validation,
                    now=now,
                    change_note=note,
                )
            )
        except SubmissionRefused as exc:
            raise _refusal_for(exc, now) from exc
    except Refusal as refusal:
        return await anyio.to_thread.run_sync(_refused, reply, refusal, received)
    finally:
        if received is not None:  # refused (or failed) before its row was recorded: nothing stays
            received.discard()
    bind_log_fields(submission_id=submission.id)  # every later line of this request names it
    log.info("upload accepted as submission %s (%s bytes)", submission.id, received.size if received else 0)
    await anyio.to_thread.run_sync(_enqueue, enqueue, submission.id)
    return await anyio.to_thread.run_sync(_queued, reply, submission.id)


@dataclass(frozen=True)
class _Reply:
    """What answering an upload or a pre-flight needs; the helpers that take it block (database
    reads), so async code calls them on a thread."""

    request: Request
    user: Uploader
    settings: Settings
    clock: Callable[[], dt.datetime]
    factory: sessionmaker[Session]
    queue: QueueWatch


def _queued(reply: _Reply, submission_id: int) -> Response:
    """The answer for an upload that spent its slot: the result page, or (JSON) the submission with
    its place in the fair order and the expected wait, as the result page's live feed gives them."""
    url = f"/submissions/{submission_id}"
    if not wants_json(reply.request):
        return RedirectResponse(url, status_code=303)
    now = reply.clock()
    with reply.factory() as db:
        row = db.get(Submission, submission_id)
        assert row is not None
        state = progress(db, row, reply.queue, now).to_json(now)
    keys = ("queue_position", "runs_ahead", "estimate_s", "wait_s", "scoring_workers")
    body = {"id": submission_id, "status": state["status"], "url": url, **{k: state[k] for k in keys}}
    return JSONResponse(body, status_code=201)


def _before_body(factory: Any, user: Uploader, declared: int | None, settings: Settings, now: dt.datetime) -> int:
    """Every refusal that does not need the body, before it is read: the cohort and the daily limit,
    the pre-flight's one-at-a-time and hourly rate, and (from the declared length) the storage
    budget. Plain reads: the decisions are taken again, under their locks, once the body is in."""
    cohort_id = _uploadable_cohort_id(factory, user, now)
    if settings.preflight:
        try:
            gate.peek(factory, user.id, settings, now)
        except gate.PreflightRefused as exc:
            raise _gate_refusal(exc, settings) from exc
    if declared is not None:
        try:
            upload_budget.peek(factory, user.id, max(0, declared - MULTIPART_SLACK), settings, now)
        except upload_budget.OverBudget as exc:
            raise _budget_refusal(exc, settings) from exc
    return cohort_id


def _make_room(
    factory: Any, user: Uploader, received: ReceivedUpload, settings: Settings, now: dt.datetime, started: float
) -> None:
    try:
        upload_budget.make_room(
            factory, user.id, received.storage_key, received.size, settings, now, written_before=started
        )
    except upload_budget.OverBudget as exc:
        raise _budget_refusal(exc, settings) from exc


def _budget_refusal(exc: upload_budget.OverBudget, settings: Settings) -> Refusal:
    local = exc.retry_at.astimezone(ZoneInfo(settings.default_timezone))
    extra = {"retry_after": exc.retry_after_s, "retry_at": exc.retry_at.isoformat()}
    return Refusal(429, "upload_error_storage_budget", extra=extra, held=human_size(exc.held),
                   limit=human_size(exc.limit), time=local.strftime("%H:%M"))  # fmt: skip


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
        return Refusal.of(refusals.QUOTA, extra=extra, per_lang=per_lang)
    return Refusal(403, f"upload_error_{exc.reason}")


def _gate_refusal(exc: gate.PreflightRefused, settings: Settings) -> Refusal:
    """Busy (their previous check still runs) or over the hourly rate: what happened and when to retry."""
    local = exc.retry_at.astimezone(ZoneInfo(settings.default_timezone))
    extra = {"retry_after": exc.retry_after_s, "retry_at": exc.retry_at.isoformat()}
    minutes = max(1, (exc.retry_after_s + 59) // 60)
    return Refusal.of(refusals.gate_reason(exc.reason), extra=extra, limit=exc.limit, minutes=minutes,
                   time=local.strftime("%H:%M"), weight=settings.preflight_timeout_weight)  # fmt: skip


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


async def _start_preflight(
    reply: _Reply,
    start_preflight: StartPreflight,
    cohort_id: int,
    received: ReceivedUpload,
    validation: float | None,
    confirmed: bool,
    *,
    change_note: str = "",
) -> lifecycle.PreflightView:
    """Take the trainee's pre-flight turn, record the pre-flight and send it; then wait at most
    ``preflight_inline_wait_s`` for the verdict. The turn is held until the verdict is stored (the
    settling frees it), not until this request ends: one pre-flight at a time per trainee, even while
    nobody waits for it. Whoever runs the pre-flight (a worker; an in-process checker in tests), the
    request learns its outcome the same way: from the row."""
    user, settings, clock, factory = reply.user, reply.settings, reply.clock, reply.factory
    try:
        lease = await anyio.to_thread.run_sync(gate.acquire, factory, user.id, settings, clock())
    except gate.PreflightRefused as exc:
        raise _gate_refusal(exc, settings) from exc
    try:
        preflight_id = await anyio.to_thread.run_sync(
            lambda: lifecycle.start(
                factory,
                user_id=user.id,
                cohort_id=cohort_id,
                upload=received,
                validation_accuracy=validation,
                confirmed=confirmed,
                lease=lease,
                now=clock(),
                change_note=change_note,
            )
        )
    except BaseException:
        with anyio.CancelScope(shield=True):  # no pre-flight holds the turn: free it now
            await anyio.to_thread.run_sync(gate.release, factory, lease)
        raise
    bind_log_fields(preflight_id=preflight_id)
    try:
        await anyio.to_thread.run_sync(start_preflight, preflight_id)
    except NoWorkerAnswered as exc:
        log.error("could not send pre-flight %s: %s", preflight_id, exc)
        await anyio.to_thread.run_sync(lifecycle.give_up, factory, preflight_id, clock())
    deadline = anyio.current_time() + settings.preflight_inline_wait_s
    while anyio.current_time() < deadline:
        check = await anyio.to_thread.run_sync(lifecycle.get_own, factory, user.id, preflight_id)
        if check is None or check.settled:
            break
        await anyio.sleep(INLINE_TICK_S)
    check = await anyio.to_thread.run_sync(lifecycle.get_own, factory, user.id, preflight_id)
    assert check is not None
    return check


INLINE_TICK_S = 0.1  # how often the upload request looks for its verdict within its short budget
# How often the watcher looks at the pre-flights pages wait on: a verdict takes seconds. One query per
# tick per web process, however many pages wait (``app.web.long_poll``).
PREFLIGHT_TICK_S = 0.25


def preflight_watcher(factory: sessionmaker[Session]) -> Watcher:
    return Watcher("pre-flight", lambda ids: lifecycle.preflight_marks(factory, ids), PREFLIGHT_TICK_S)


def _ids(preflight_id: int) -> dict[str, int]:
    """The pre-flight's id in JSON. ``check_id`` is its old name, deprecated (the API docs page says
    so) but still sent: scripts written against it keep working."""
    return {"preflight_id": preflight_id, "check_id": preflight_id}


def _preflight_url(preflight_id: int) -> str:
    return f"/uploads/preflights/{preflight_id}"


def _answer_preflight(reply: _Reply, check: lifecycle.PreflightView) -> Response:
    """The answer for a pre-flight as it stands: the submission once accepted, the refusal as the upload
    page renders it, or (still checking) the pre-flight's page that follows it live."""
    if check.state == PreflightState.ACCEPTED and check.submission_id is not None:
        bind_log_fields(submission_id=check.submission_id)
        return _queued(reply, check.submission_id)
    if check.state == PreflightState.CHECKING:
        url = _preflight_url(check.id)
        if wants_json(reply.request):
            body = {**_ids(check.id), "state": check.state, "url": url, "status_url": f"{url}/status"}
            return JSONResponse(body, status_code=202, headers={"Location": url})
        return RedirectResponse(url, status_code=303)
    refusal = _preflight_refusal(reply.factory, check, reply.user.lang, reply.clock())
    upload = ReceivedUpload(original_filename=check.original_filename, sha256=check.zip_sha256, size=check.zip_size)
    return _refused(reply, refusal, upload, preflight_id=check.id)


def _preflight_refusal(
    factory: sessionmaker[Session], check: lifecycle.PreflightView, lang: str, now: dt.datetime
) -> Refusal:
    """The refusal a settled pre-flight stands for: the same statuses, keys and details as when the
    upload request itself waited for the verdict."""
    verdict = PreflightVerdict.from_json(check.verdict) if check.verdict else None
    reason = refusals.reason_for(str((check.refusal or {}).get("key", refusals.INTERNAL.key)))
    detail = verdict.error_message(lang) if verdict else None
    if reason is refusals.REFUSED and verdict is not None:
        return Refusal.of(reason, detail=detail, extra={"preflight": verdict.to_json()})
    if reason is refusals.NEAR_CHANCE and verdict is not None:
        smoke = verdict.smoke or {}
        extra = {
            "preflight": verdict.to_json(),
            "confirm_field": CONFIRM_FIELD,
            "confirm_url": f"{_preflight_url(check.id)}/confirm",
        }
        return Refusal.of(reason, extra=extra, correct=smoke.get("correct", 0), total=smoke.get("total", 0))
    if reason is refusals.UNANSWERED:
        return Refusal.of(reason, extra={"retry_after": 60})
    if reason is refusals.EXPIRED:  # the question is gone for good: upload again
        return Refusal.of(reason)
    if reason is refusals.QUOTA:
        with factory() as db:
            cohort = db.get(Cohort, check.cohort_id)
            quota = quota_status(db, check.user_id, cohort, now) if cohort is not None else None
        if quota is not None:
            return _refusal_for(SubmissionRefused("quota", quota), now)
    if reason not in (refusals.INTERNAL, refusals.REFUSED):  # the slot could not be spent
        return Refusal(refusals.SLOT_REFUSAL_STATUS, reason.key)
    return Refusal.of(refusals.INTERNAL, detail=detail)


OLD_PREFLIGHT_PATHS = ("", "/status", "/confirm")


@page_router.api_route(
    "/uploads/checks/{preflight_id}{rest:path}", methods=["GET", "HEAD", "POST"], include_in_schema=False
)
def old_preflight_path(request: Request, preflight_id: PathId, rest: str) -> Response:
    """The pre-flight's pages were under ``/uploads/checks/``: a tab left open across a deploy, or a
    script, is sent on to the new path with its method, body and query kept (308)."""
    if rest not in OLD_PREFLIGHT_PATHS:
        raise NotFound
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"{_preflight_url(preflight_id)}{rest}{query}", status_code=308)


@page_router.get("/uploads/preflights/{preflight_id}", name="preflight_page")
def preflight_page(
    request: Request,
    preflight_id: PathId,
    user: UploaderDep,
    settings: SettingsDep,
    clock: ClockDep,
    factory: SessionmakerDep,
    queue: ScoringQueueDep,
) -> Response:
    """The pre-flight of an upload, followed live (``/static/preflight.js``); once settled, what the
    upload request would have answered: the submission, the refusal, or the near-chance question."""
    lifecycle.expire_if_stale(factory, preflight_id, settings, clock())
    check = lifecycle.get_own(factory, user.id, preflight_id)
    if check is None:
        raise NotFound
    if check.settled:
        return _answer_preflight(_Reply(request, user, settings, clock, factory, queue), check)
    if wants_json(request):
        return JSONResponse(_preflight_json(check, clock()), status_code=202, headers={"Cache-Control": "no-store"})
    elapsed = max(0, int((clock() - check.created_at).total_seconds()))
    return render(request, "preflight.html", {"preflight": check, "elapsed": elapsed})


def _preflight_json(check: lifecycle.PreflightView, now: dt.datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        **_ids(check.id),
        "state": check.state,
        "final": check.settled,
        "fingerprint": check.state,
        "elapsed_s": max(0.0, (now - check.created_at).total_seconds()),
        "url": _preflight_url(check.id),
    }
    if check.submission_id is not None:
        body["submission_url"] = f"/submissions/{check.submission_id}"
    return body


@page_router.get("/uploads/preflights/{preflight_id}/status", name="preflight_status")
async def preflight_status(
    request: Request,
    preflight_id: PathId,
    user: UploaderDep,
    settings: SettingsDep,
    clock: ClockDep,
    factory: SessionmakerDep,
    watcher: PreflightWatcherDep,
    known: str | None = None,
    wait: float = 0.0,
) -> Response:
    """The pre-flight page's live feed, long-polled like a submission's (``submission_status``): ``known``
    is the state the page shows. Async: it awaits the watcher while the pre-flight runs."""

    def look() -> lifecycle.PreflightView | None:
        lifecycle.expire_if_stale(factory, preflight_id, settings, clock())  # writes only when it is due
        return lifecycle.get_own(factory, user.id, preflight_id)

    def due_in(check: lifecycle.PreflightView) -> float:  # unsettled by then, the look gives it up
        return (check.created_at - clock()).total_seconds() + settings.preflight_wait_s

    polled = await long_poll(
        request,
        watcher,
        preflight_id,
        user.id,
        look,
        lambda check: known is None or check.state != known or check.settled,
        wait,
        due_in,
    )
    return JSONResponse(_preflight_json(polled.state, clock()), headers=polled.headers)


@page_router.post("/uploads/preflights/{preflight_id}/confirm", name="preflight_confirm")
def preflight_confirm(
    request: Request,
    preflight_id: PathId,
    user: UploaderDep,
    settings: SettingsDep,
    clock: ClockDep,
    factory: SessionmakerDep,
    queue: ScoringQueueDep,
    enqueue: EnqueueDep,
) -> Response:
    """ "Upload it anyway" for a pre-flight that scored near chance: spends the slot without a new upload."""
    # A late click finds the pre-flight expired (its zip deleted) and is told so; nothing is spent.
    lifecycle.expire_if_stale(factory, preflight_id, settings, clock())
    outcome = lifecycle.confirm(factory, user.id, preflight_id, clock(), settings=settings)
    if outcome is None:
        raise NotFound
    check, queued = outcome
    if queued is not None:
        log.info("near-chance pre-flight %s confirmed as submission %s", preflight_id, queued)
        _enqueue(enqueue, queued)
    return _answer_preflight(_Reply(request, user, settings, clock, factory, queue), check)


def _enqueue(enqueue: Enqueue, submission_id: int) -> None:
    try:
        enqueue(submission_id)
    except Exception:  # the row is committed as queued: the worker's sweeper re-queues it
        log.exception("could not enqueue submission %s; the sweeper will", submission_id)


def _refused(
    reply: _Reply, refusal: Refusal, received: ReceivedUpload | None, preflight_id: int | None = None
) -> Response:
    # Refused before its pre-flight: the received file is already gone (``upload``). Refused by the
    # pre-flight: the zip stays in the store for support until the sweep removes it past
    # ``refused_upload_retention_s``, or the trainee's storage budget needs its room.
    lang = reply.user.lang
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
    if preflight_id is not None:
        body["error"].update(_ids(preflight_id))
    if received is not None:
        body["error"]["upload"] = {
            "sha256": received.sha256,
            "size": received.size,
            "filename": received.original_filename,
        }
    if wants_json(reply.request):
        response: Response = JSONResponse(body, status_code=refusal.status)
    else:
        t = Translator(normalize_lang(lang))
        with reply.factory() as db:
            account = db.get(User, reply.user.id)
            assert account is not None
            ctx = _page_context(db, account, active_cohort(db, reply.user.id), reply.settings, reply.clock(), t)
        ctx.update(error=refusal.message(lang), error_detail=refusal.detail, preflight=refusal.extra.get("preflight"))
        ctx.update(near_chance=refusal.key == refusals.NEAR_CHANCE.key, confirm_url=refusal.extra.get("confirm_url"))
        response = render(reply.request, "upload.html", ctx, refusal.status)
    if "retry_after" in refusal.extra:
        response.headers["Retry-After"] = str(refusal.extra["retry_after"])
    if refusal.status == 413:  # the rest of the body is not read: the connection cannot be reused
        response.headers["Connection"] = "close"
    return response
