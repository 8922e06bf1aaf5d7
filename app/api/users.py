"""``/api/v1/users``: create, list, update and deactivate accounts; move trainees; grant uploads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query
from sqlalchemy import or_, select

from app.api.auth import AdminPrincipal, ApiPrincipal, cohort_or_404
from app.api.delivery import deliver_mail_later
from app.api.errors import COMMON_RESPONSES, ApiError, ApiRoute, not_found
from app.api.ids import PathId, QueryId
from app.api.pagination import Page, PageDep, make_page, paginate
from app.api.schemas import GrantCreate, GrantOut, GrantResult, Me, MoveRequest, UserCreate, UserOut, UserUpdate
from app.folding import fold
from app.models import Enrollment, Role, UploadGrant, User
from app.security.sessions import end_all_sessions
from app.services import people
from app.services.grants import grant_uploads, granted_uploads
from app.services.quota import quota_day, used_slots
from app.services.submissions import active_cohort
from app.web.deps import ClockDep, DeliverEmailDep, SessionDep, SettingsDep

router = APIRouter(tags=["people"], route_class=ApiRoute, responses=COMMON_RESPONSES)


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        reading=user.reading,
        role=user.role,
        language=user.language,
        is_active=user.is_active,
        created_at=user.created_at,
        has_password=user.password_hash is not None,
    )


def _user_or_404(db: SessionDep, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise not_found()
    return user


@router.get("/me", summary="The token's owner and scope", response_model=Me)
def me(principal: ApiPrincipal) -> Me:
    return Me(user=user_out(principal.user), scope=principal.token.scope, token_id=principal.token.id)


@router.get("/users", summary="List users", response_model=Page[UserOut])
def list_users(
    db: SessionDep,
    principal: AdminPrincipal,
    page: PageDep,
    role: Role | None = None,
    cohort_id: Annotated[QueryId, Query(description="only people enrolled in this cohort")] = None,
    active: bool | None = None,
    q: Annotated[str | None, Query(max_length=200, description="part of the name, email or reading")] = None,
) -> Page[UserOut]:
    query = select(User)
    if role is not None:
        query = query.where(User.role == role)
    if active is not None:
        query = query.where(User.is_active.is_(active))
    if cohort_id is not None:
        query = query.where(User.id.in_(select(Enrollment.user_id).where(Enrollment.cohort_id == cohort_id)))
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        key = "%" + fold(q).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                User.email.like(pattern, escape="\\"),
                User.name.ilike(pattern, escape="\\"),
                User.search_key.like(key, escape="\\"),  # the reading too, kana of either kind
            )
        )
    rows, total = paginate(db, query.order_by(User.id), page)
    return make_page([user_out(u) for u in rows], total, page)


@router.post("/users", summary="Create a user", status_code=201, response_model=UserOut)
def create_user(
    body: UserCreate,
    background: BackgroundTasks,
    db: SessionDep,
    settings: SettingsDep,
    principal: AdminPrincipal,
    deliver_email: DeliverEmailDep,
) -> UserOut:
    """The account has no password; with ``send_invite`` it gets the site's invitation link by email."""
    if people.user_by_email(db, body.email) is not None:
        raise ApiError(409, "api_email_taken", email=body.email)
    user = people.create_user(
        db, email=body.email, name=body.name, role=body.role, language=body.language, reading=body.reading
    )
    if body.send_invite:
        deliver_mail_later(deliver_email, background, [people.invite(db, user, settings).id])
    return user_out(user)


@router.get("/users/{user_id}", summary="Read a user", response_model=UserOut)
def read_user(user_id: PathId, db: SessionDep, principal: AdminPrincipal) -> UserOut:
    return user_out(_user_or_404(db, user_id))


@router.patch("/users/{user_id}", summary="Update a user", response_model=UserOut)
def update_user(user_id: PathId, body: UserUpdate, db: SessionDep, principal: AdminPrincipal) -> UserOut:
    user = _user_or_404(db, user_id)
    changes = body.model_dump(exclude_unset=True)
    nulls = sorted(k for k, v in changes.items() if v is None)
    if nulls:
        raise ApiError(422, "api_invalid_request", fields=", ".join(nulls))
    if user.id == principal.user.id and (
        changes.get("is_active") is False or changes.get("role", Role.ADMIN) != Role.ADMIN
    ):
        raise ApiError(409, "api_cannot_demote_self")
    for key, value in changes.items():
        setattr(user, key, value)
    if changes.get("is_active") is False:
        end_all_sessions(db, user.id)
    db.flush()
    return user_out(user)


@router.post("/users/{user_id}/deactivate", summary="Deactivate a user", response_model=UserOut)
def deactivate_user(user_id: PathId, db: SessionDep, principal: AdminPrincipal) -> UserOut:
    """Ends their sessions and stops their API tokens; submissions and results stay."""
    user = _user_or_404(db, user_id)
    if user.id == principal.user.id:
        raise ApiError(409, "api_cannot_demote_self")
    user.is_active = False
    end_all_sessions(db, user.id)
    db.flush()
    return user_out(user)


@router.post("/users/{user_id}/move", summary="Move a trainee to another cohort", response_model=UserOut)
def move_user(user_id: PathId, body: MoveRequest, db: SessionDep, principal: AdminPrincipal) -> UserOut:
    """Leaves the old cohort (or every cohort) as a trainee and joins the new one; past
    submissions stay with the cohort they were made in."""
    user = _user_or_404(db, user_id)
    cohort_or_404(db, principal, body.to_cohort_id)
    if body.from_cohort_id is not None:
        cohort_or_404(db, principal, body.from_cohort_id)
    if user.role != Role.TRAINEE:
        raise ApiError(409, "api_not_trainee", user_id=user.id)
    people.move_trainee(db, user, body.to_cohort_id, body.from_cohort_id)
    return user_out(user)


@router.post("/users/{user_id}/grants", summary="Grant a trainee extra uploads for a day", status_code=201,
             response_model=GrantResult)  # fmt: skip
def create_grant(
    user_id: PathId, body: GrantCreate, db: SessionDep, principal: ApiPrincipal, clock: ClockDep
) -> GrantResult:
    """Adds to that day's limit only; instructors may grant to trainees of the cohorts they teach."""
    user = _user_or_404(db, user_id)
    if body.cohort_id is not None:
        cohort = cohort_or_404(db, principal, body.cohort_id)
    else:
        found = active_cohort(db, user.id)
        if found is None:
            raise ApiError(409, "api_not_trainee", user_id=user.id)
        cohort = cohort_or_404(db, principal, found.id)
    enrollment = db.get(Enrollment, (user.id, cohort.id))
    if enrollment is None or enrollment.role != Role.TRAINEE:
        if not principal.is_admin:
            raise not_found()  # an instructor learns nothing about people outside their cohorts
        raise ApiError(409, "api_not_trainee", user_id=user.id)
    day = body.day or quota_day(clock(), cohort.timezone)
    grant = grant_uploads(
        db, user_id=user.id, day=day, extra=body.extra, reason=body.reason, granted_by_id=principal.user.id
    )
    return GrantResult(
        grant=GrantOut.model_validate(grant),
        limit=cohort.daily_limit + granted_uploads(db, user.id, day),
        used=used_slots(db, user.id, day),
    )


@router.get("/users/{user_id}/grants", summary="A trainee's upload grants", response_model=Page[GrantOut])
def list_grants(user_id: PathId, db: SessionDep, principal: AdminPrincipal, page: PageDep) -> Page[GrantOut]:
    _user_or_404(db, user_id)
    query = select(UploadGrant).where(UploadGrant.user_id == user_id).order_by(UploadGrant.day.desc(), UploadGrant.id)
    rows, total = paginate(db, query, page)
    return make_page([GrantOut.model_validate(g) for g in rows], total, page)
