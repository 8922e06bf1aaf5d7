"""The instructors' similarity page of a cohort, and its CSV.

Only instructors of the cohort and admins get it (:mod:`app.services.cohort_access`); anyone else,
trainees included, gets "not found", as for every cohort page. The page says plainly that
similarity is a reason to talk with the trainees, not proof of anything.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.models import Cohort, User
from app.services.cohort_access import viewable_cohort
from app.services.similarity import SimilarityView, flagged_pairs, pairs_csv
from app.settings import Settings
from app.web.csrf import verify_csrf
from app.web.deps import CurrentUser, LangDep, NotFound, PathId, SessionDep, SettingsDep
from app.web.templating import render
from scorer.similarity import z_needed

router = APIRouter(dependencies=[Depends(verify_csrf)])


def _flagged(db: Session, user: User, cohort_id: int, settings: Settings) -> tuple[Cohort, SimilarityView]:
    """The cohort (404 unless this viewer may see it) and its pairs worth a conversation."""
    cohort = viewable_cohort(db, user, cohort_id)
    if cohort is None:
        raise NotFound
    view = flagged_pairs(
        db,
        cohort.id,
        false_alarm_rate=settings.similarity_false_alarm_rate,
        rare_max=settings.similarity_rare_file_max_trainees,
    )
    return cohort, view


@router.get("/cohorts/{cohort_id}/similarity", name="cohort_similarity")
def similarity_page(
    request: Request, cohort_id: PathId, db: SessionDep, user: CurrentUser, lang: LangDep, settings: SettingsDep
) -> Response:
    cohort, view = _flagged(db, user, cohort_id, settings)
    context = {
        "cohort": cohort,
        "pairs": view.pairs,
        "view": view,
        "one_in": round(1 / view.false_alarm_rate),
        "z_one_pair": z_needed(1, view.false_alarm_rate),
    }
    return render(request, "similarity.html", context)


@router.get("/cohorts/{cohort_id}/similarity.csv", name="cohort_similarity_csv")
def similarity_csv(cohort_id: PathId, db: SessionDep, user: CurrentUser, settings: SettingsDep) -> Response:
    cohort, view = _flagged(db, user, cohort_id, settings)
    filename = f"similarity-{cohort.name}.csv"
    return Response(
        pairs_csv(view.pairs).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"},
    )
