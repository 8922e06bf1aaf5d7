"""Downloads of a trainee's 「識別精度の変遷」 (:mod:`app.services.history`): CSV and a PNG chart.

The trainee downloads their own, for the cohort they are in now; the cohort's instructors and
admins download any of its trainees' (:mod:`app.services.cohort_access`), everyone else gets
"not found", as everywhere on the site. Registered before the submission routes, whose
``/submissions/{id}`` would otherwise take ``history.csv`` for an id.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.models import Cohort, Enrollment, Role, User
from app.services.cohort_access import viewable_cohort
from app.services.history import History, history, history_csv
from app.services.submissions import active_cohort
from app.settings import Settings
from app.web.csrf import verify_csrf
from app.web.deps import CurrentUser, LangDep, NotFound, PathId, SessionDep, SettingsDep, TranslatorDep
from app.web.downloads import attachment
from app.web.history_png import font_path, history_png

router = APIRouter(dependencies=[Depends(verify_csrf)])


def _own(db: Session, user: User) -> tuple[User, Cohort]:
    cohort = active_cohort(db, user.id) if user.role == Role.TRAINEE else None
    if cohort is None:
        raise NotFound
    return user, cohort


def _trainees(db: Session, user: User, cohort_id: int, user_id: int) -> tuple[User, Cohort]:
    cohort = viewable_cohort(db, user, cohort_id)
    enrollment = db.get(Enrollment, (user_id, cohort_id)) if cohort is not None else None
    trainee = db.get(User, user_id) if enrollment is not None and enrollment.role == Role.TRAINEE else None
    if cohort is None or trainee is None:
        raise NotFound
    return trainee, cohort


def _filename(found: History, trainee: User, cohort: Cohort, suffix: str) -> str:
    return f"history-{cohort.name}-{trainee.name}.{suffix}"


def _csv(trainee: User, cohort: Cohort, db: Session) -> Response:
    found = history(db, trainee, cohort)
    return Response(
        history_csv(found),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": attachment(_filename(found, trainee, cohort, "csv"),
                                                   fallback=f"history-{cohort.name}-{trainee.id}.csv")},
    )  # fmt: skip


def _png(trainee: User, cohort: Cohort, db: Session, t: TranslatorDep, settings: Settings) -> Response:
    found = history(db, trainee, cohort)
    return Response(
        history_png(found, t, font_path(settings.chart_font)),
        media_type="image/png",
        headers={"Content-Disposition": attachment(_filename(found, trainee, cohort, "png"),
                                                   fallback=f"history-{cohort.name}-{trainee.id}.png")},
    )  # fmt: skip


@router.get("/submissions/history.csv", name="own_history_csv")
def own_history_csv(db: SessionDep, user: CurrentUser) -> Response:
    return _csv(*_own(db, user), db)


@router.get("/submissions/history.png", name="own_history_png")
def own_history_png(
    request: Request, db: SessionDep, user: CurrentUser, lang: LangDep, t: TranslatorDep, settings: SettingsDep
) -> Response:
    return _png(*_own(db, user), db, t, settings)


@router.get("/cohorts/{cohort_id}/trainees/{user_id}/history.csv", name="trainee_history_csv")
def trainee_history_csv(cohort_id: PathId, user_id: PathId, db: SessionDep, user: CurrentUser) -> Response:
    return _csv(*_trainees(db, user, cohort_id, user_id), db)


@router.get("/cohorts/{cohort_id}/trainees/{user_id}/history.png", name="trainee_history_png")
def trainee_history_png(
    cohort_id: PathId, user_id: PathId, db: SessionDep, user: CurrentUser, t: TranslatorDep, settings: SettingsDep
) -> Response:
    return _png(*_trainees(db, user, cohort_id, user_id), db, t, settings)
