"""A trainee's submissions: the list, the result page, its live status, and downloads.

Every look-up goes through :func:`app.services.submissions.get_visible`: someone else's submission
is answered exactly like one that does not exist (404), so ids reveal nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session

from app.i18n import Translator
from app.models import Enrollment, Role, Submission, SubmissionStatus, User
from app.services import storage
from app.services.progress import Progress, progress, progress_marks
from app.services.rescoring import earlier_results
from app.services.scoring_queue import QueueWatch
from app.services.submissions import accuracy_history, active_cohort, get_visible, own_submissions
from app.settings import Settings
from app.web import charts
from app.web.csrf import verify_csrf
from app.web.deps import (
    ClockDep,
    CurrentUser,
    LangDep,
    NotFound,
    PathId,
    ScoringQueueDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    TranslatorDep,
    UploaderDep,
)
from app.web.downloads import attachment
from app.web.long_poll import SubmissionWatcherDep, Watcher, long_poll
from app.web.templating import local_time, local_time_tz, percent, render
from app.web.upload_page import quota_view, standing
from scorer.disclosure import cap_visible
from scorer.runtime import runtime_summary

router = APIRouter(dependencies=[Depends(verify_csrf)])
LOG_TAIL_LINES = 40


def _visible(db: Session, user: Any, submission_id: int) -> Submission:
    submission = get_visible(db, user, submission_id)
    if submission is None:
        raise NotFound
    return submission


def error_message(submission: Submission, lang: str) -> str:
    """The failure in the user's language, from the stored code (never stored text)."""
    if not submission.error_code:
        return ""
    from scorer.errors import ErrorCode
    from scorer.errors import render as render_error

    params: dict[str, Any] = {}
    if isinstance(submission.result, dict):
        error = submission.result.get("error")
        if isinstance(error, dict) and isinstance(error.get("params"), dict):
            params = error["params"]
    try:
        code = ErrorCode(submission.error_code)
    except ValueError:
        return submission.error_code
    return render_error(code, "en" if lang == "en" else "ja", params)


def log_tail(log: str | None, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join((log or "").splitlines()[-lines:])


def visible_log(submission: Submission, user: User, settings: Settings) -> str:
    """The log this viewer may read. The trainee gets the excerpt of a hidden-set run (bounded again
    here, for rows stored before the bound existed); an instructor or admin looking at someone
    else's submission gets the longer log kept for staff, when there is one."""
    staff = user.role in (Role.INSTRUCTOR, Role.ADMIN) and user.id != submission.user_id
    if staff and isinstance(submission.result, dict) and isinstance(submission.result.get("staff_log"), str):
        return cap_visible(submission.result["staff_log"], settings.hidden_run_stored_log_bytes)
    return cap_visible(submission.log, settings.hidden_run_excerpt_bytes)


def history_points(db: Session, submission: Submission) -> list[charts.HistoryPoint]:
    timezone = submission.cohort.timezone
    rows = accuracy_history(db, submission.user_id, submission.cohort_id)
    return [
        charts.HistoryPoint(
            label=f"#{row.id} {local_time(row.created_at, timezone)[5:10].replace('-', '/')}",
            value=float(row.accuracy or 0.0),
            current=row.id == submission.id,
            date=local_time_tz(row.created_at, timezone),
            file=row.original_filename,
            submission_id=row.id,
            note=row.change_note,
        )
        for row in rows
    ]


@router.get("/submissions", name="submission_list")
def submission_list(
    request: Request, db: SessionDep, user: CurrentUser, lang: LangDep, t: TranslatorDep, clock: ClockDep
) -> Response:
    cohort = active_cohort(db, user.id) if user.role == Role.TRAINEE else None
    return render(
        request,
        "submissions.html",
        {
            "submissions": own_submissions(db, user),
            "standing": standing(db, user.id, cohort) if cohort else None,
            "quota": quota_view(db, user, cohort, clock(), t) if cohort else None,
        },
    )


@router.get("/submissions/{submission_id}", name="submission_result")
def submission_result(
    request: Request,
    submission_id: PathId,
    db: SessionDep,
    user: CurrentUser,
    lang: LangDep,
    t: TranslatorDep,
    settings: SettingsDep,
    clock: ClockDep,
    queue: ScoringQueueDep,
) -> Response:
    submission = _visible(db, user, submission_id)
    staff_view = user.role in (Role.INSTRUCTOR, Role.ADMIN) and user.id != submission.user_id
    gap = charts.overfit_gap(submission.validation_accuracy, submission.accuracy)
    shown_log = cap_visible(submission.log, settings.hidden_run_excerpt_bytes)
    threshold = submission.cohort.pass_threshold
    now = clock()
    state = progress(db, submission, queue, now)
    context = {
        "s": submission,
        "runtime": runtime_summary(submission.runtime),
        "position": state.queue_position,
        "error_message": error_message(submission, lang),
        "log_tail": log_tail(shown_log),
        "visible_log": shown_log,
        "bar_chart": charts.class_bars(submission.per_class, threshold) if submission.per_class else None,
        "heat_chart": charts.heatmap(submission.confusion),
        "line_chart": charts.line_chart(history_points(db, submission), threshold),
        "gap": gap,
        "overfit": gap is not None and gap >= charts.OVERFIT_POINTS,
        "notices": _notices(submission, t),
        "timezone": submission.cohort.timezone,
        "earlier": earlier_results(db, submission.id),
        "progress": state.to_json(now),
        # Staff reach a submission from a history or the similarity page: whose it is, and the way back.
        "staff_view": staff_view,
        "owner": submission.user if staff_view else None,
        "owner_history_url": _history_url(db, submission) if staff_view else None,
        "history_base": _history_base(db, submission, staff_view),
    }
    return render(request, "result.html", context)


def _history_url(db: Session, submission: Submission) -> str | None:
    """The staff page of the submission's trainee in its cohort, while they are enrolled there."""
    enrollment = db.get(Enrollment, (submission.user_id, submission.cohort_id))
    if enrollment is None or enrollment.role != Role.TRAINEE:
        return None
    return f"/cohorts/{submission.cohort_id}/trainees/{submission.user_id}"


def _history_base(db: Session, submission: Submission, staff_view: bool) -> str | None:
    """Where this submission's history downloads are (app/web/history.py), for this viewer."""
    if not staff_view:
        return "/submissions/history"
    url = _history_url(db, submission)
    return f"{url}/history" if url else None


def _notices(submission: Submission, t: Translator) -> list[str]:
    out = []
    for notice in submission.notices or []:
        if isinstance(notice, dict):
            out.append(str(notice.get(t.lang) or notice.get("ja") or ""))
        else:
            out.append(str(notice))
    return [n for n in out if n]


# How often the watcher looks at the watched submissions: a page learns of a result within this.
# One query per tick per web process, however many pages wait (``app.web.long_poll``).
LONG_POLL_TICK_S = 0.1


def submission_watcher(factory: Any, queue: QueueWatch) -> Watcher:
    """The process's one watcher of waiting result pages; each tick's reading of the queue also
    serves ``queue``, so the pages it wakes get their place without reading the queue themselves."""
    return Watcher("submission", lambda ids: progress_marks(factory, ids, queue), LONG_POLL_TICK_S)


def _progress_now(
    factory: Any, queue: QueueWatch, user_id: int, submission_id: int, now: dt.datetime
) -> Progress | None:
    with factory() as db:
        user = db.get(User, user_id)
        submission = get_visible(db, user, submission_id) if user is not None else None
        return progress(db, submission, queue, now) if submission is not None else None


@router.get("/submissions/{submission_id}/status", name="submission_status")
async def submission_status(
    request: Request,
    submission_id: PathId,
    viewer: UploaderDep,
    clock: ClockDep,
    factory: SessionmakerDep,
    queue: ScoringQueueDep,
    watcher: SubmissionWatcherDep,
    known: str | None = None,
    wait: float = 0.0,
) -> Response:
    """The result page's live feed (:func:`app.web.long_poll.long_poll`): ``known`` is the
    ``fingerprint`` the page shows."""
    polled = await long_poll(
        request,
        watcher,
        submission_id,
        viewer.id,
        lambda: _progress_now(factory, queue, viewer.id, submission_id, clock()),
        lambda state: known is None or state.fingerprint != known or state.final,
        wait,
    )
    return JSONResponse(polled.state.to_json(clock()), headers=polled.headers)


def log_document(submission: Submission, t: Translator, output: str) -> str:
    """The downloadable log: the run's facts first, then what the submission printed.

    A successful run often prints nothing, and an empty file reads as "something broke"; the
    header says what happened (and with which test set and runtime) whatever the output was.
    """
    tz = submission.cohort.timezone
    lines = [t("log_doc_header", id=submission.id), ""]
    owner = submission.user
    facts: list[tuple[str, str]] = [
        (t("log_doc_trainee"), f"{owner.name} <{owner.email}>"),
        (t("log_doc_file"), submission.original_filename),
        (t("log_doc_submitted"), local_time_tz(submission.created_at, tz)),
        (t("log_doc_status"), t(f"status_{submission.status.value}")),
    ]
    if submission.accuracy is not None:
        correct = f" ({submission.correct} / {submission.total})" if submission.total else ""
        facts.append((t("log_doc_accuracy"), percent(submission.accuracy) + correct))
    if submission.error_code:
        facts.append((t("log_doc_error"), f"{submission.error_code}: {error_message(submission, t.lang)}"))
    testset = submission.result.get("testset") if isinstance(submission.result, dict) else None
    if isinstance(testset, dict) and testset.get("version"):
        facts.append((t("log_doc_testset"), str(testset["version"])))
    if submission.duration_s is not None:
        facts.append((t("log_doc_duration"), t.seconds(submission.duration_s)))
    if submission.peak_memory_mb is not None:
        facts.append((t("log_doc_memory"), f"{submission.peak_memory_mb:.0f} MB"))
    runtime = runtime_summary(submission.runtime, complete=True)
    if runtime:
        facts.append((t("log_doc_runtime"), runtime))
    lines += [f"{label}: {value}" for label, value in facts]
    lines += ["", f"--- {t('log_doc_output')} ---"]
    if output.strip():
        lines.append(output.rstrip("\n"))
    elif submission.status == SubmissionStatus.SUCCEEDED:
        lines.append(t("log_doc_no_output"))
    elif submission.status == SubmissionStatus.FAILED:
        lines.append(t("log_doc_no_output_failed"))
    else:
        lines.append(t("log_doc_pending"))
    return "\n".join(lines) + "\n"


@router.get("/submissions/{submission_id}/log", name="submission_log")
def submission_log(
    submission_id: PathId, db: SessionDep, user: CurrentUser, settings: SettingsDep, t: TranslatorDep
) -> Response:
    submission = _visible(db, user, submission_id)
    # Named after the trainee too: an instructor downloading several logs can tell them apart.
    filename = f"submission-{submission.id}-{submission.user.name}.log"
    return PlainTextResponse(
        log_document(submission, t, visible_log(submission, user, settings)),
        headers={"Content-Disposition": attachment(filename, fallback=f"submission-{submission.id}.log")},
    )


@router.get("/submissions/{submission_id}/file", name="submission_file")
def submission_file(submission_id: PathId, db: SessionDep, user: CurrentUser, settings: SettingsDep) -> Response:
    submission = _visible(db, user, submission_id)
    path = storage.path_for(settings.storage_dir, submission.storage_key)  # type: ignore[arg-type]
    if not path.is_file():
        raise NotFound
    return FileResponse(path, media_type="application/zip", filename=submission.original_filename)
