"""Instructor pages: the cohort leaderboard (sort, filter, CSV), the cohort overview, and a
trainee's history with every result, log and zip. Trainees get an anonymised leaderboard when
their cohort allows it.

Access is decided by :mod:`app.services.cohort_access` (admins: every cohort; instructors: the ones
they teach). Anything else is answered as "not found", like the rest of the site.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.i18n import Translator
from app.models import Cohort, Enrollment, Role, Submission, User
from app.services import bulk_zip
from app.services.cohort_access import trainee_cohort, viewable_cohort, viewable_cohorts
from app.services.leaderboard import Entry, SortKey, Standing, arrange, cohort_figures, leaderboard, overview
from app.services.submissions import accuracy_history
from app.web import charts
from app.web.csrf import verify_csrf
from app.web.deps import CurrentUser, LangDep, NotFound, PathId, SessionDep, SettingsDep, TranslatorDep
from app.web.submissions import error_message
from app.web.templating import local_time, percent, render

router = APIRouter(dependencies=[Depends(verify_csrf)])
PER_PAGE = 100
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

StandingParam = Annotated[Standing | None, Query()]
SortParam = Annotated[SortKey, Query()]
OrderParam = Annotated[Literal["asc", "desc"], Query()]


def _followed_cohort(db: Session, user: User, cohort_id: int) -> Cohort:
    cohort = viewable_cohort(db, user, cohort_id)
    if cohort is None:
        raise NotFound
    return cohort


def _query(standing: Standing | None, sort: SortKey, order: str, page: int | None = None) -> str:
    params: dict[str, Any] = {"sort": sort.value, "order": order}
    if standing is not None:
        params["standing"] = standing.value
    if page is not None and page > 1:
        params["page"] = page
    return urlencode(params)


@router.get("/cohorts", name="cohort_list")
def cohort_list(request: Request, db: SessionDep, user: CurrentUser, lang: LangDep) -> Response:
    if user.role == Role.TRAINEE:
        raise NotFound
    cohorts = list(db.scalars(viewable_cohorts(user).order_by(Cohort.archived, Cohort.name)))
    return render(request, "leaderboard_cohorts.html", {"cohorts": cohorts, "figures": cohort_figures(db, cohorts)})


@router.get("/cohorts/{cohort_id}/leaderboard", name="leaderboard")
def leaderboard_page(
    request: Request,
    cohort_id: PathId,
    db: SessionDep,
    user: CurrentUser,
    lang: LangDep,
    standing: StandingParam = None,
    sort: SortParam = SortKey.RANK,
    order: OrderParam = "asc",
    page: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    cohort = viewable_cohort(db, user, cohort_id)
    if cohort is None:
        return _anonymous_leaderboard(request, db, user, cohort_id)
    entries = arrange(leaderboard(db, cohort), standing=standing, sort=sort, descending=order == "desc")
    pages = max(1, (len(entries) + PER_PAGE - 1) // PER_PAGE)
    page = min(page, pages)
    context = {
        "cohort": cohort,
        "entries": entries[(page - 1) * PER_PAGE : page * PER_PAGE],
        "total": len(entries),
        "page": page,
        "pages": pages,
        "standing": standing,
        "sort": sort,
        "order": order,
        "columns": list(SortKey),
        "standings": list(Standing),
        "link": lambda **kw: _query(
            kw.get("standing", standing), kw.get("sort", sort), kw.get("order", order), kw.get("page")
        ),
    }
    return render(request, "leaderboard.html", context)


def _anonymous_leaderboard(request: Request, db: Session, user: User, cohort_id: int) -> Response:
    """What a trainee sees: ranks and scores without names, their own row highlighted."""
    cohort = trainee_cohort(db, user, cohort_id)
    if cohort is None or not cohort.leaderboard_visible:
        raise NotFound
    entries = [e for e in leaderboard(db, cohort) if e.rank is not None]
    return render(request, "leaderboard_anonymous.html", {"cohort": cohort, "entries": entries, "me": user.id})


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A name such as "=HYPERLINK(...)" must stay text when Excel opens the file.
    return "'" + text if text.startswith(CSV_FORMULA_START) else text


def standing_label(entry: Entry, cohort: Cohort, t: Translator) -> str:
    """Passed / not yet / never submitted; without a pass mark only "never submitted" is a state."""
    if entry.standing == Standing.NEVER:
        return t("lb_never")
    if cohort.pass_threshold is None:
        return ""
    return t("lb_passed") if entry.passed else t("lb_not_passed")


def leaderboard_csv_text(entries: list[Entry], cohort: Cohort, t: Translator) -> str:
    """The table as the page shows it: accuracies as percentages with two decimals ("96.15%"),
    times in the cohort's time zone, the standing in words."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [t("lb_rank"), t("lb_trainee"), t("lb_email"), t("lb_best"), t("lb_latest"), t("lb_submissions"),
         t("lb_last"), t("lb_pass")]
    )  # fmt: skip
    for e in entries:
        writer.writerow(
            [
                e.rank or "",
                _csv_cell(e.name),
                _csv_cell(e.email),
                percent(e.best_accuracy),
                percent(e.latest_accuracy),
                e.submissions,
                local_time(e.last_submission_at, cohort.timezone),
                standing_label(e, cohort, t),
            ]
        )
    return "\ufeff" + out.getvalue()  # the BOM makes Excel read UTF-8, so Japanese names survive


@router.get("/cohorts/{cohort_id}/leaderboard.csv", name="leaderboard_csv")
def leaderboard_csv(
    cohort_id: PathId,
    db: SessionDep,
    user: CurrentUser,
    t: TranslatorDep,
    standing: StandingParam = None,
    sort: SortParam = SortKey.RANK,
    order: OrderParam = "asc",
) -> Response:
    cohort = _followed_cohort(db, user, cohort_id)
    entries = arrange(leaderboard(db, cohort), standing=standing, sort=sort, descending=order == "desc")
    filename = f"leaderboard-{cohort.name}.csv"
    return Response(
        leaderboard_csv_text(entries, cohort, t).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"},
    )


def _attachment(filename: str) -> str:
    return f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"


@router.get("/cohorts/{cohort_id}/submissions.zip", name="cohort_submissions_zip")
def cohort_submissions_zip(
    cohort_id: PathId,
    db: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    which: Annotated[bulk_zip.Which, Query()] = bulk_zip.Which.BEST,
) -> Response:
    """Every trainee's best (or latest scored) submission in one zip, with an ``index.csv``.

    Instructors of the cohort and admins only, like the leaderboard. Everything the download needs
    from the database is read here; the response then only reads files while it streams.
    """
    cohort = _followed_cohort(db, user, cohort_id)
    assert settings.storage_dir is not None
    entries = bulk_zip.members(db, cohort, which, settings.storage_dir)
    index = bulk_zip.index_csv(entries, cohort.timezone, percent, local_time)
    filename = f"submissions-{which.value}-{cohort.name}.zip"
    return StreamingResponse(
        bulk_zip.stream_zip(entries, index),
        media_type="application/zip",
        headers={"Content-Disposition": _attachment(filename), "Cache-Control": "no-store"},
    )


def count_chart(pairs: list[tuple[str, int]], *, width: int = 640, height: int = 220) -> charts.BarChart:
    """Bars for counts (trainees per accuracy range, submissions per day), scaled to the largest."""
    top, bottom, left, right = 10, 40, 40, 10
    plot_h = height - top - bottom
    peak = max((n for _, n in pairs), default=0) or 1
    slot = (width - left - right) / max(1, len(pairs))
    bars = []
    for i, (label, n) in enumerate(pairs):
        h = plot_h * n / peak
        bars.append(charts.Bar(left + i * slot + slot * 0.1, top + plot_h - h, slot * 0.8, h, label, n))
    ticks = [(top + plot_h * (1 - f), f"{round(peak * f)}") for f in (0, 0.5, 1.0)]
    return charts.BarChart(width, height, top, bottom, left, bars, ticks)


@router.get("/cohorts/{cohort_id}/overview", name="cohort_overview")
def cohort_overview(request: Request, cohort_id: PathId, db: SessionDep, user: CurrentUser, lang: LangDep) -> Response:
    cohort = _followed_cohort(db, user, cohort_id)
    summary = overview(db, cohort)
    per_day = [(day.strftime("%m/%d"), n) for day, n in summary.per_day[-60:]]
    context = {
        "cohort": cohort,
        "o": summary,
        "histogram": count_chart(summary.histogram),
        "per_day": count_chart(per_day) if per_day else None,
    }
    return render(request, "cohort_overview.html", context)


@router.get("/cohorts/{cohort_id}/trainees/{user_id}", name="trainee_history")
def trainee_history(
    request: Request, cohort_id: PathId, user_id: PathId, db: SessionDep, user: CurrentUser, lang: LangDep
) -> Response:
    cohort = _followed_cohort(db, user, cohort_id)
    enrollment = db.get(Enrollment, (user_id, cohort.id))
    if enrollment is None or enrollment.role != Role.TRAINEE:
        raise NotFound
    trainee = db.get(User, user_id)
    assert trainee is not None
    submissions = list(
        db.scalars(
            select(Submission)
            .where(Submission.user_id == user_id, Submission.cohort_id == cohort.id)
            .order_by(Submission.created_at.desc(), Submission.id.desc())
        )
    )
    history = [
        (f"#{s.id} {local_time(s.created_at, cohort.timezone)[5:10]}", float(s.accuracy or 0.0), False)
        for s in accuracy_history(db, user_id, cohort.id)
    ]
    context = {
        "cohort": cohort,
        "trainee": trainee,
        "submissions": submissions,
        "errors": {s.id: error_message(s, lang) for s in submissions},
        "line_chart": charts.line_chart(history),
    }
    return render(request, "trainee_history.html", context)
