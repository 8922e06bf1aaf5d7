"""Instructor pages: the cohort leaderboard (sort, filter, CSV), the cohort overview, and a
trainee's history with every result, log and zip. Trainees get an anonymised leaderboard when
their cohort allows it.

Access is decided by :mod:`app.services.cohort_access` (admins: every cohort; instructors: the ones
they teach). Anything else is answered as "not found", like the rest of the site.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.i18n import Translator
from app.models import Cohort, Enrollment, Role, Submission, User
from app.services import bulk_zip
from app.services.cohort_access import trainee_cohort, viewable_cohort, viewable_cohorts
from app.services.csv_cells import csv_cell
from app.services.leaderboard import (
    HISTOGRAM_EDGES,
    PER_PAGE,
    Entry,
    SortKey,
    Standing,
    board,
    board_page,
    cohort_figures,
    overview,
    rank_of,
)
from app.services.scoring_queue import cohort_queue, typical_run_seconds
from app.services.submissions import accuracy_history
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
    SettingsDep,
    TranslatorDep,
)
from app.web.downloads import attachment
from app.web.submissions import error_message
from app.web.templating import local_time, local_time_tz, percent, render

router = APIRouter(dependencies=[Depends(verify_csrf)])
CSV_CHUNK_ROWS = 1000  # rows per chunk of the CSV download (~100 kB): each chunk crosses a thread, so few
CSV_TIME = "%Y-%m-%d %H:%M"  # the cohort's local time, bare (the note above the table names the zone)

StandingParam = Annotated[Standing | None, Query()]
SortParam = Annotated[SortKey, Query()]
OrderParam = Annotated[Literal["asc", "desc"], Query()]
SearchParam = Annotated[str | None, Query(max_length=200)]
PageParam = Annotated[int, Query(ge=1)]
# The page's columns: who and whether they passed first, so a phone shows both beside the name
# before any sideways scroll (the name links to the trainee's history).
COLUMNS = [SortKey.RANK, SortKey.NAME, SortKey.PASSED, SortKey.BEST, SortKey.LATEST, SortKey.SUBMISSIONS, SortKey.LAST]


def _followed_cohort(db: Session, user: User, cohort_id: int) -> Cohort:
    cohort = viewable_cohort(db, user, cohort_id)
    if cohort is None:
        raise NotFound
    return cohort


def _query(standing: Standing | None, sort: SortKey, order: str, page: int | None = None, q: str | None = None) -> str:
    params: dict[str, Any] = {"sort": sort.value, "order": order}
    if standing is not None:
        params["standing"] = standing.value
    if q:
        params["q"] = q
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
    q: SearchParam = None,
    page: PageParam = 1,
) -> Response:
    """One page of 100 rows, ranked, filtered and sorted from the board kept in memory
    (app.services.leaderboard); the search (name or e-mail) finds one trainee among thousands
    without paging."""
    cohort = viewable_cohort(db, user, cohort_id)
    if cohort is None:
        return _anonymous_leaderboard(request, db, user, cohort_id, page)
    q = (q or "").strip() or None
    shown = board_page(db, cohort, page=page, standing=standing, sort=sort, descending=order == "desc", search=q)
    context = {
        "cohort": cohort,
        "entries": shown.entries,
        "board": shown,
        "total": shown.total,
        "page": shown.page,
        "pages": shown.pages,
        "standing": standing,
        "sort": sort,
        "order": order,
        "q": q,
        "columns": COLUMNS,
        "standings": list(Standing),
        "link": lambda **kw: _query(
            kw.get("standing", standing), kw.get("sort", sort), kw.get("order", order), kw.get("page"), kw.get("q", q)
        ),
    }
    return render(request, "leaderboard.html", context)


def _anonymous_leaderboard(request: Request, db: Session, user: User, cohort_id: int, page: int) -> Response:
    """What a trainee sees: ranks and scores without names, their own row highlighted.

    Without a page asked for, the page holding the trainee's own row opens, so they find it among
    thousands; a link leads back to it from any other page.
    """
    cohort = trainee_cohort(db, user, cohort_id)
    if cohort is None or not cohort.leaderboard_visible:
        raise NotFound
    mine = rank_of(db, cohort, user.id)
    my_page = (mine - 1) // PER_PAGE + 1 if mine is not None else None
    asked = page if "page" in request.query_params else (my_page or 1)
    shown = board_page(db, cohort, page=asked, scored_only=True)
    context = {
        "cohort": cohort,
        "entries": shown.entries,
        "board": shown,
        "me": user.id,
        "my_page": my_page,
        "link": lambda **kw: urlencode({"page": kw["page"]}),
    }
    return render(request, "leaderboard_anonymous.html", context)


def leaderboard_csv_chunks(entries: list[Entry], cohort: Cohort, t: Translator) -> Iterator[bytes]:
    """The table as the page shows it: accuracies as percentages with two decimals ("96.15%"),
    times in the cohort's time zone, the standing in words. Sent a few hundred rows at a time, so
    the first bytes leave before the last row is formatted."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    out.write("\ufeff")  # the BOM makes Excel read UTF-8, so Japanese names survive
    writer.writerow(
        [t("lb_rank"), t("lb_trainee"), t("lb_reading"), t("lb_email"), t("lb_best"), t("lb_latest"),
         t("lb_submissions"), t("lb_last"), t("lb_pass")]
    )  # fmt: skip
    labels = {
        Standing.NEVER: t("lb_never"),
        Standing.PASSED: t("lb_passed") if cohort.pass_threshold is not None else "",
        Standing.NOT_YET: t("lb_not_passed") if cohort.pass_threshold is not None else "",
    }
    zone = ZoneInfo(cohort.timezone)  # once, not per row: the CSV formats 2,000 rows per request
    for start in range(0, len(entries), CSV_CHUNK_ROWS):
        writer.writerows(
            [
                e.rank or "",
                csv_cell(e.name),
                e.reading,  # kana only (app.folding.normalize_reading): never a formula
                csv_cell(e.email),
                percent(e.best_accuracy),
                percent(e.latest_accuracy),
                e.submissions,
                "" if e.last_submission_at is None else e.last_submission_at.astimezone(zone).strftime(CSV_TIME),
                labels[e.standing],
            ]
            for e in entries[start : start + CSV_CHUNK_ROWS]
        )
        yield out.getvalue().encode("utf-8")
        out.seek(0)
        out.truncate()
    if out.tell():
        yield out.getvalue().encode("utf-8")


@router.get("/cohorts/{cohort_id}/leaderboard.csv", name="leaderboard_csv")
def leaderboard_csv(
    cohort_id: PathId,
    db: SessionDep,
    user: CurrentUser,
    t: TranslatorDep,
    standing: StandingParam = None,
    sort: SortParam = SortKey.RANK,
    order: OrderParam = "asc",
    q: SearchParam = None,
) -> Response:
    """Every matching row (not one page). The rows are read here, while the request's session is
    open; only the formatting streams."""
    cohort = _followed_cohort(db, user, cohort_id)
    q = (q or "").strip() or None
    entries = board(db, cohort, standing=standing, sort=sort, descending=order == "desc", search=q)
    filename = f"leaderboard-{cohort.name}.csv"
    return StreamingResponse(
        leaderboard_csv_chunks(entries, cohort, t),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": attachment(filename)},
    )


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
        bulk_zip.stream_zip(entries, index, cohort.timezone),
        media_type="application/zip",
        headers={"Content-Disposition": attachment(filename), "Cache-Control": "no-store"},
    )


@router.get("/cohorts/{cohort_id}/overview", name="cohort_overview")
def cohort_overview(
    request: Request,
    cohort_id: PathId,
    db: SessionDep,
    user: CurrentUser,
    lang: LangDep,
    clock: ClockDep,
    watch: ScoringQueueDep,
) -> Response:
    cohort = _followed_cohort(db, user, cohort_id)
    summary = overview(db, cohort)
    per_day = [(day.strftime("%m/%d"), n) for day, n in summary.per_day[-60:]]
    slots = watch.slots()
    context = {
        "cohort": cohort,
        "o": summary,
        "queue": cohort_queue(watch.snapshot(db), cohort.id, typical_run_seconds(db), slots, clock()),
        "scoring_workers": slots,
        "histogram": charts.count_rows(summary.histogram, HISTOGRAM_EDGES, cohort.pass_threshold),
        "per_day": charts.count_columns(per_day) if per_day else None,
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
        charts.HistoryPoint(
            label=f"#{s.id} {local_time(s.created_at, cohort.timezone)[5:10].replace('-', '/')}",
            value=float(s.accuracy or 0.0),
            date=local_time_tz(s.created_at, cohort.timezone),
            file=s.original_filename,
            submission_id=s.id,
            note=s.change_note,
        )
        for s in accuracy_history(db, user_id, cohort.id)
    ]
    context = {
        "cohort": cohort,
        "trainee": trainee,
        "submissions": submissions,
        "errors": {s.id: error_message(s, lang) for s in submissions},
        "line_chart": charts.line_chart(history, cohort.pass_threshold),
    }
    return render(request, "trainee_history.html", context)
