"""Who is calling the API: a bearer token, checked on every request.

Only ``Authorization: Bearer kt_…`` is accepted — never the site's session cookie — so a browser
that happens to be logged in cannot be made to call the API from another site (no CSRF surface),
and a trainee's session can do nothing here. The token's scope decides what it may do: ``admin``
everything, ``instructor`` reading and granting in the cohorts its owner teaches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.api.errors import ApiError, not_found
from app.models import ApiToken, Cohort, TokenScope, User
from app.services.api_tokens import authenticate
from app.services.cohort_access import viewable_cohort
from app.web.deps import ClockDep, SessionDep

bearer = HTTPBearer(
    auto_error=False, description="An API token (kt_…) from an admin or `python -m app.cli create-token`"
)


@dataclass(frozen=True)
class Principal:
    user: User
    token: ApiToken

    @property
    def is_admin(self) -> bool:
        return self.token.scope == TokenScope.ADMIN


def get_principal(
    request: Request,
    db: SessionDep,
    clock: ClockDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    token = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        token = authenticate(db, credentials.credentials, clock())
    if token is None:
        raise ApiError(401, "api_unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    return Principal(token.user, token)


ApiPrincipal = Annotated[Principal, Depends(get_principal)]


def require_admin(principal: ApiPrincipal) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "api_admin_only")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


def cohort_or_404(db: Session, principal: Principal, cohort_id: int) -> Cohort:
    """The cohort if this token may see it (admins: any; instructors: the ones they teach)."""
    cohort = viewable_cohort(db, principal.user, cohort_id, as_admin=principal.is_admin)
    if cohort is None:
        raise not_found()
    return cohort
