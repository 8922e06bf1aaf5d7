"""``/api/v1/tokens``: admins issue, list and revoke API tokens. The secret is shown only once."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from app.api.auth import AdminPrincipal
from app.api.errors import COMMON_RESPONSES, ApiError, ApiRoute, not_found
from app.api.ids import PathId, QueryId
from app.api.pagination import Page, PageDep, make_page, paginate
from app.api.schemas import TokenCreate, TokenCreated, TokenOut
from app.models import ApiToken, User
from app.services.api_tokens import TokenRefused, create_token, revoke
from app.web.deps import ClockDep, SessionDep

router = APIRouter(prefix="/tokens", tags=["tokens"], route_class=ApiRoute, responses=COMMON_RESPONSES)


@router.get("", summary="List API tokens", response_model=Page[TokenOut])
def list_tokens(db: SessionDep, principal: AdminPrincipal, page: PageDep, user_id: QueryId = None) -> Page[TokenOut]:
    query = select(ApiToken)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    rows, total = paginate(db, query.order_by(ApiToken.id), page)
    return make_page([TokenOut.model_validate(t) for t in rows], total, page)


@router.post("", summary="Issue an API token", status_code=201, response_model=TokenCreated)
def issue_token(body: TokenCreate, db: SessionDep, principal: AdminPrincipal, clock: ClockDep) -> TokenCreated:
    """For the caller or another user; ``admin`` scope only for admins. Store ``secret`` now."""
    owner = principal.user if body.user_id is None else db.get(User, body.user_id)
    if owner is None:
        raise not_found()
    try:
        issued = create_token(db, owner, body.scope, body.name, created_by=principal.user, now=clock())
    except TokenRefused as exc:
        raise ApiError(409, exc.code, scope=body.scope.value, role=owner.role.value) from None
    return TokenCreated(**TokenOut.model_validate(issued.row).model_dump(), secret=issued.secret)


@router.post("/{token_id}/revoke", summary="Revoke an API token", response_model=TokenOut)
def revoke_token(token_id: PathId, db: SessionDep, principal: AdminPrincipal, clock: ClockDep) -> TokenOut:
    token = db.get(ApiToken, token_id)
    if token is None:
        raise not_found()
    revoke(db, token, clock())
    db.flush()
    return TokenOut.model_validate(token)
