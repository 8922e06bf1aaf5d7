"""``/api/v1/cohorts``: create, list, update and archive cohorts; their people and leaderboard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.auth import AdminPrincipal, ApiPrincipal, cohort_or_404
from app.api.delivery import deliver_mail_later, enqueue_later
from app.api.errors import COMMON_RESPONSES, ApiError, ApiRoute, not_found
from app.api.ids import PathId
from app.api.pagination import Page, PageDep, make_page, paginate
from app.api.schemas import (
    BulkEnrolRequest,
    BulkEnrolResult,
    BulkEnrolRow,
    CohortCreate,
    CohortOut,
    CohortUpdate,
    EnrollmentCreate,
    EnrollmentOut,
    LeaderboardEntryOut,
    RescoreResult,
    SimilarityPairOut,
    check_email,
)
from app.i18n import Translator
from app.models import Cohort, Enrollment, Role, TestSet, User
from app.services import people
from app.services.cohort_access import viewable_cohorts
from app.services.leaderboard import SortKey, Standing, board_page
from app.services.rescoring import rescore_cohort
from app.services.similarity import flagged_pairs
from app.web.deps import ClockDep, DeliverEmailDep, EnqueueDep, SessionDep, SettingsDep

router = APIRouter(prefix="/cohorts", tags=["cohorts"], route_class=ApiRoute, responses=COMMON_RESPONSES)


def _name_free(db: Session, name: str, cohort_id: int | None = None) -> None:
    query = select(Cohort.id).where(func.lower(Cohort.name) == name.lower())
    if cohort_id is not None:
        query = query.where(Cohort.id != cohort_id)
    if db.scalar(query) is not None:
        raise ApiError(409, "api_cohort_name_taken", name=name)


@router.get("", summary="List cohorts", response_model=Page[CohortOut])
def list_cohorts(
    db: SessionDep,
    principal: ApiPrincipal,
    page: PageDep,
    archived: Annotated[bool | None, Query(description="only archived (true) or only current (false) cohorts")] = None,
) -> Page[CohortOut]:
    """Admins see every cohort; instructors the cohorts they teach."""
    query = viewable_cohorts(principal.user, as_admin=principal.is_admin)
    if archived is not None:
        query = query.where(Cohort.archived.is_(archived))
    rows, total = paginate(db, query.order_by(Cohort.id), page)
    return make_page([CohortOut.model_validate(c) for c in rows], total, page)


@router.post("", summary="Create a cohort", status_code=201, response_model=CohortOut)
def create_cohort(body: CohortCreate, db: SessionDep, principal: AdminPrincipal) -> CohortOut:
    _name_free(db, body.name)
    cohort = Cohort(**body.model_dump(), archived=False)
    db.add(cohort)
    try:
        db.flush()
    except IntegrityError:  # a simultaneous create with the same name
        raise ApiError(409, "api_cohort_name_taken", name=body.name) from None
    return CohortOut.model_validate(cohort)


@router.get("/{cohort_id}", summary="Read a cohort", response_model=CohortOut)
def read_cohort(cohort_id: PathId, db: SessionDep, principal: ApiPrincipal) -> CohortOut:
    return CohortOut.model_validate(cohort_or_404(db, principal, cohort_id))


@router.patch("/{cohort_id}", summary="Update a cohort", response_model=CohortOut)
def update_cohort(cohort_id: PathId, body: CohortUpdate, db: SessionDep, principal: AdminPrincipal) -> CohortOut:
    """Only the fields sent change. ``name``, ``daily_limit``, ``timezone``, ``runtimes`` and the flags
    cannot be null. ``runtimes`` applies to the pre-flights that start after the change."""
    cohort = cohort_or_404(db, principal, cohort_id)
    changes = body.model_dump(exclude_unset=True)
    required = {"name", "title", "daily_limit", "timezone", "leaderboard_visible", "archived", "runtimes"}
    nulls = sorted(k for k in required if k in changes and changes[k] is None)
    if nulls:
        raise ApiError(
            422,
            "api_invalid_request",
            fields=", ".join(nulls),
            details=[{"field": k, "problem": "may not be null"} for k in nulls],
        )
    if "name" in changes:
        _name_free(db, changes["name"], cohort.id)
    start = changes.get("start_date", cohort.start_date)
    end = changes.get("end_date", cohort.end_date)
    if start is not None and end is not None and end < start:
        raise ApiError(422, "api_dates_reversed")
    for key, value in changes.items():
        setattr(cohort, key, value)
    db.flush()
    return CohortOut.model_validate(cohort)


@router.post("/{cohort_id}/archive", summary="Archive a cohort", response_model=CohortOut)
def archive_cohort(cohort_id: PathId, db: SessionDep, principal: AdminPrincipal) -> CohortOut:
    """Archived cohorts take no uploads and leave the trainees' upload page; their data stays."""
    cohort = cohort_or_404(db, principal, cohort_id)
    cohort.archived = True
    db.flush()
    return CohortOut.model_validate(cohort)


def _enrollment_out(enrollment: Enrollment, user: User) -> EnrollmentOut:
    return EnrollmentOut(
        cohort_id=enrollment.cohort_id,
        user_id=user.id,
        role=enrollment.role,
        name=user.name,
        reading=user.reading,
        email=user.email,
        is_active=user.is_active,
    )


@router.get("/{cohort_id}/enrollments", summary="List a cohort's people", response_model=Page[EnrollmentOut])
def list_enrollments(
    cohort_id: PathId,
    db: SessionDep,
    principal: ApiPrincipal,
    page: PageDep,
    role: Annotated[Role | None, Query(description="only trainees or only instructors")] = None,
) -> Page[EnrollmentOut]:
    cohort_or_404(db, principal, cohort_id)
    query = select(Enrollment, User).join(User, User.id == Enrollment.user_id).where(Enrollment.cohort_id == cohort_id)
    if role is not None:
        query = query.where(Enrollment.role == role)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.execute(query.order_by(User.id).limit(page.per_page).offset(page.offset)).all()
    return make_page([_enrollment_out(e, u) for e, u in rows], int(total), page)


@router.post("/{cohort_id}/enrollments", summary="Enrol a user or assign an instructor", response_model=EnrollmentOut)
def add_enrollment(
    cohort_id: PathId, body: EnrollmentCreate, db: SessionDep, principal: AdminPrincipal
) -> EnrollmentOut:
    """Enrols the user with the given role (changing it if already enrolled). Assigning an
    instructor to a trainee account makes the account an instructor."""
    cohort_or_404(db, principal, cohort_id)
    user = db.get(User, body.user_id)
    if user is None:
        raise not_found()
    people.enrol(db, user, cohort_id, Role(body.role))
    enrollment = db.get(Enrollment, (user.id, cohort_id))
    assert enrollment is not None
    return _enrollment_out(enrollment, user)


@router.delete("/{cohort_id}/enrollments/{user_id}", summary="Remove someone from a cohort", status_code=204)
def remove_enrollment(cohort_id: PathId, user_id: PathId, db: SessionDep, principal: AdminPrincipal) -> None:
    cohort_or_404(db, principal, cohort_id)
    enrollment = db.get(Enrollment, (user_id, cohort_id))
    if enrollment is None:
        raise not_found()
    db.delete(enrollment)


@router.post("/{cohort_id}/enrollments/import", summary="Bulk-enrol from CSV", response_model=BulkEnrolResult)
def import_enrollments(
    cohort_id: PathId,
    body: BulkEnrolRequest,
    background: BackgroundTasks,
    db: SessionDep,
    settings: SettingsDep,
    principal: AdminPrincipal,
    deliver_email: DeliverEmailDep,
) -> BulkEnrolResult:
    """``name,email,role,reading`` rows (role and reading optional). New accounts are created
    without a password and (by default) invited by email with a one-time link; existing accounts
    are enrolled as they are, taking the reading when the line gives one. The whole CSV is checked
    first: on any bad line nothing changes."""
    cohort = cohort_or_404(db, principal, cohort_id)
    try:
        rows = people.parse_people_csv(body.csv, check_email)
    except people.CsvProblems as exc:
        ja, en = Translator("ja"), Translator("en")
        details = [
            {"line": p.line, "code": p.code, "problem_ja": p.text(ja), "problem_en": p.text(en)} for p in exc.problems
        ]
        per_lang = {
            "ja": {"problems": "\n".join(p.text(ja) for p in exc.problems)},
            "en": {"problems": "\n".join(p.text(en) for p in exc.problems)},
        }
        raise ApiError(422, "api_csv_invalid", details=details, per_lang=per_lang, count=len(details)) from None
    result_rows, outbox_ids = [], []
    for row in rows:
        user = people.user_by_email(db, row.email)
        created = user is None
        if user is None:
            user = people.create_user(db, email=row.email, name=row.name, role=row.role, reading=row.reading)
        elif row.reading:  # a reading given for someone already here: the CSV is how admins add them
            user.reading = row.reading
        enrolled = people.enrol(db, user, cohort_id, row.role)
        invited = created and body.send_invites
        if invited:
            outbox_ids.append(people.invite(db, user, settings, cohort).id)
        result_rows.append(
            BulkEnrolRow(
                line=row.line, email=row.email, user_id=user.id, created=created, enrolled=enrolled, invited=invited
            )
        )
    deliver_mail_later(deliver_email, background, outbox_ids)
    return BulkEnrolResult(
        created=sum(r.created for r in result_rows),
        enrolled=sum(r.enrolled for r in result_rows),
        unchanged=sum(not r.enrolled for r in result_rows),
        invited=len(outbox_ids),
        rows=result_rows,
    )


@router.get("/{cohort_id}/leaderboard", summary="The cohort's leaderboard", response_model=Page[LeaderboardEntryOut])
def cohort_leaderboard(
    cohort_id: PathId,
    db: SessionDep,
    principal: ApiPrincipal,
    page: PageDep,
    standing: Annotated[Standing | None, Query(description="passed, not_yet or never")] = None,
    sort: SortKey = SortKey.RANK,
    descending: bool = False,
) -> Page[LeaderboardEntryOut]:
    cohort = cohort_or_404(db, principal, cohort_id)
    # Ranked, filtered, sorted and paged by the database, as the site's page is. A page past the end
    # is empty here (an API client pages until it is), where the site shows its last page instead.
    shown = board_page(
        db, cohort, page=page.page, per_page=page.per_page, standing=standing, sort=sort, descending=descending
    )
    chosen = [] if shown.clamped else shown.entries
    return make_page([LeaderboardEntryOut.model_validate(e) for e in chosen], shown.total, page)


@router.post(
    "/{cohort_id}/rescore", summary="Rescore every finished submission of a cohort", response_model=RescoreResult
)
def rescore_whole_cohort(
    cohort_id: PathId,
    background: BackgroundTasks,
    db: SessionDep,
    principal: AdminPrincipal,
    clock: ClockDep,
    enqueue: EnqueueDep,
) -> RescoreResult:
    """Against the active test set (choose it first with ``POST /testsets/{id}/activate``). Each
    previous result is kept in the submission's ``rescores``; nobody's daily count changes."""
    cohort_or_404(db, principal, cohort_id)
    ids = rescore_cohort(db, cohort_id, requested_by_id=principal.user.id, now=clock())
    enqueue_later(enqueue, background, ids)
    active = db.scalar(select(TestSet.version).where(TestSet.is_active).order_by(TestSet.id.desc()).limit(1))
    return RescoreResult(queued=ids, testset_version=active)


@router.get(
    "/{cohort_id}/similarity",
    summary="Pairs of trainees whose work may be shared",
    response_model=Page[SimilarityPairOut],
)
def cohort_similarity(
    cohort_id: PathId,
    db: SessionDep,
    settings: SettingsDep,
    principal: AdminPrincipal,
    page: PageDep,
    false_alarm_rate: Annotated[
        float | None,
        Query(gt=0.0, le=0.05, description="per pair under independence (default: the service's setting)"),
    ] = None,
) -> Page[SimilarityPairOut]:
    """Admins only. Pairs whose copy index independence would produce at most ``false_alarm_rate``
    of the time, or who handed in an identical file few others in the cohort hand in; rare identical
    weights first, then by copy index. Similarity is a reason to talk with the trainees, not proof."""
    cohort = cohort_or_404(db, principal, cohort_id)
    pairs = flagged_pairs(
        db,
        cohort.id,
        false_alarm_rate=settings.similarity_false_alarm_rate if false_alarm_rate is None else false_alarm_rate,
        rare_max=settings.similarity_rare_file_max_trainees,
    ).pairs
    chosen = pairs[page.offset : page.offset + page.per_page]
    return make_page([SimilarityPairOut.model_validate(p) for p in chosen], len(pairs), page)
