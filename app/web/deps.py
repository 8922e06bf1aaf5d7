"""FastAPI dependencies, as ``Annotated`` aliases: ``SessionDep``, ``CurrentUser``, ``LangDep``…

The database session commits when the endpoint returns without error and rolls back otherwise —
the one place request transactions end. It ends *before* the response is sent (``scope="function"``),
so a browser following a redirect never sees an uncommitted change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.i18n import LANG_COOKIE, Lang, Translator, normalize_lang
from app.models import Role, User
from app.security.sessions import SESSION_COOKIE, session_user
from app.services.preflight.lifecycle import StartPreflight
from app.services.scoring_queue import QueueWatch
from app.services.submissions import active_cohort
from app.services.testset_import import TestSetImporter
from app.settings import Settings

# Ids in paths are bounded to what the database can hold (PostgreSQL INTEGER): a larger one cannot
# exist, and must not reach the driver (an overflow there was a 500). Out of range answers 404.
MAX_PATH_ID = 2**31 - 1
PathId = Annotated[int, Path(ge=1, le=MAX_PATH_ID)]


def path_error(exc: RequestValidationError) -> bool:
    """Whether validation failed on a path parameter (an id that cannot exist: a 404, not a 422)."""
    return any(tuple(error.get("loc", ()))[:1] == ("path",) for error in exc.errors())


class LoginRequired(Exception):
    """Raised by ``CurrentUser``; answered with a redirect to the login page (401 for scripts)."""


class NotFound(Exception):
    """Answered with the 404 page. Also used where a 403 would tell that something exists."""


def app_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency handing a route what ``create_app`` keeps as ``app.state.<name>``; the
    ``Annotated`` alias that uses it says its type. Async, so no thread is taken to read it."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = f"app_state_{name}"
    return dependency


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def may_write(request: Request) -> bool:
    """Whether this request's transaction may write: unsafe methods, and API calls (a token's
    ``last_used_at`` is updated on every use, GETs included)."""
    return request.method not in SAFE_METHODS or "authorization" in request.headers


def get_sessionmaker(request: Request) -> sessionmaker[Session]:
    """For routes that open their own short sessions (on threads, or around a long wait) instead of
    holding the request's transaction."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    return factory


SessionmakerDep = Annotated[sessionmaker[Session], Depends(get_sessionmaker)]


def get_db(request: Request, factory: SessionmakerDep) -> Iterator[Session]:
    """The request's session: one transaction, committed when the handler returns. A request that
    may write takes SQLite's write lock up front (see ``app.db.transaction``); reads stay concurrent."""
    with transaction(factory, write_lock=may_write(request)) as session:
        yield session


async def get_clock(request: Request) -> Callable[[], dt.datetime]:
    clock: Callable[[], dt.datetime] = request.app.state.clock
    return clock


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
ClockDep = Annotated[Callable[[], dt.datetime], Depends(get_clock)]

# The hand-offs ``create_app`` wires (workers in production, stand-ins in tests), each typed.
Enqueue = Callable[[int], object]  # a committed, queued submission id to the scoring workers
DeliverEmail = Callable[[int], object]  # a committed outbox row id to the mail worker


EnqueueDep = Annotated[Enqueue, Depends(app_state("enqueue"))]
DeliverEmailDep = Annotated[DeliverEmail, Depends(app_state("deliver_email"))]
StartPreflightDep = Annotated[StartPreflight, Depends(app_state("start_preflight"))]
ScoringQueueDep = Annotated[QueueWatch, Depends(app_state("scoring_queue"))]
TestSetImporterDep = Annotated[TestSetImporter, Depends(app_state("testset_importer"))]


@dataclass(frozen=True)
class Viewer:
    """Who is looking, as plain values for page templates: error pages render after the request's
    session has closed (or rolled back), when ORM objects can no longer load attributes."""

    id: int
    name: str
    role: Role
    leaderboard_cohort_id: int | None = None  # a trainee's cohort, when it shows them its leaderboard


def viewer_of(db: Session, user: User) -> Viewer:
    cohort = active_cohort(db, user.id) if user.role == Role.TRAINEE else None
    visible = cohort.id if cohort is not None and cohort.leaderboard_visible else None
    return Viewer(user.id, user.name, user.role, visible)


def get_optional_user(request: Request, db: SessionDep, settings: SettingsDep) -> User | None:
    user = session_user(db, request.cookies.get(SESSION_COOKIE), settings)
    request.state.user = viewer_of(db, user) if user is not None else None
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


async def get_current_user(user: OptionalUser) -> User:
    if user is None:
        raise LoginRequired
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin(user: CurrentUser) -> User:
    if user.role != Role.ADMIN:
        raise NotFound
    return user


AdminUser = Annotated[User, Depends(get_admin)]


@dataclass(frozen=True)
class Uploader:
    """The signed-in user of a streamed upload, read with a session that is closed at once.

    An upload can take minutes; holding a pooled connection for all of it would let 20 slow
    uploads exhaust the pool and starve everyone else (and deadlock the upload's own queries).
    """

    id: int
    role: Role
    lang: Lang


def get_uploader(request: Request, settings: SettingsDep, factory: SessionmakerDep) -> Uploader:
    with factory() as db:
        user = session_user(db, request.cookies.get(SESSION_COOKIE), settings)
        if user is None:
            raise LoginRequired
        request.state.user = viewer_of(db, user)
        request.state.lang = normalize_lang(user.language.value)
        return Uploader(user.id, user.role, request.state.lang)


UploaderDep = Annotated[Uploader, Depends(get_uploader)]


async def get_lang(request: Request, user: OptionalUser) -> Lang:
    """The signed-in user's choice, else the language cookie, else Japanese."""
    lang = normalize_lang(user.language.value if user is not None else request.cookies.get(LANG_COOKIE))
    request.state.lang = lang
    return lang


LangDep = Annotated[Lang, Depends(get_lang)]


async def get_translator(lang: LangDep) -> Translator:
    return Translator(lang)


TranslatorDep = Annotated[Translator, Depends(get_translator)]


def wants_json(request: Request) -> bool:
    """Scripts (our upload XHR, API clients) get JSON; browsers navigating get pages."""
    if request.url.path.startswith("/api/"):
        return True  # whatever it accepts, an API client cannot use an HTML page
    accept = request.headers.get("accept", "")
    return "application/json" in accept or request.headers.get("x-requested-with") == "XMLHttpRequest"
