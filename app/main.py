"""The application factory. ``uvicorn --factory app.main:create_app`` serves the site.

The lifespan owns the database engine (created at start, disposed at stop). Collaborators that tests
replace — the clock, the pre-flight checker, the enqueue and mail hand-offs, the test-set importer —
live on ``app.state`` as plain callables, so a test passes a function that records its calls instead
of patching imports.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import api
from app.db import make_engine, make_sessionmaker
from app.i18n import LANG_COOKIE, Translator, normalize_lang
from app.models import utcnow
from app.observability import redaction
from app.observability.http import RequestContextMiddleware, metrics_router
from app.observability.structured_logs import configure_logging
from app.services.preflight import lifecycle
from app.services.preflight.lifecycle import StartPreflight, check_and_settle
from app.services.preflight.verdict import Checker
from app.services.scoring_queue import QueueWatch, live_scoring_slots
from app.services.testset_import import TestSetImporter, worker_importer
from app.settings import Settings, get_settings
from app.web import (
    admin,
    auth,
    health,
    history,
    leaderboard,
    profile,
    similarity,
    storage_full,
    submissions,
    uploads,
)
from app.web.auth import landing_page
from app.web.body_timeout import BodyTimeoutMiddleware
from app.web.csrf import CSRFCookieMiddleware, CSRFRejected
from app.web.deps import LoginRequired, NotFound, OptionalUser, path_error, wants_json
from app.web.long_poll import HeldPolls
from app.web.security_headers import SecurityHeadersMiddleware
from app.web.templating import render, templates
from app.web.upload_page import runtime_key, runtime_versions

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"


def worker_enqueue(settings: Settings) -> Callable[[int], None]:
    """Send the scoring task through the worker's queue (imported lazily: the site's own tests run
    without a broker and pass a recording function instead)."""

    def enqueue(submission_id: int) -> None:
        from app.queue import enqueue_scoring

        enqueue_scoring(submission_id, settings)

    return enqueue


def worker_deliver(settings: Settings) -> Callable[[int], None]:
    """Hand a committed EmailOutbox row to the worker's mail queue."""

    def deliver(outbox_id: int) -> None:
        from app.queue import enqueue_email

        enqueue_email(outbox_id, settings)

    return deliver


def worker_start_preflight(settings: Settings) -> StartPreflight:
    """Send a committed pre-flight to the pre-flight workers, which act on its verdict; the site
    follows the row to learn the outcome. Raises NoWorkerAnswered when the broker refused it."""

    def start(preflight_id: int) -> None:
        from app.queue import NoWorkerAnswered, enqueue_preflight

        if not enqueue_preflight(preflight_id, settings):
            raise NoWorkerAnswered("the broker did not take the pre-flight")

    return start


def in_process_preflights(app: FastAPI, checker: Checker) -> StartPreflight:
    """Run pre-flights with ``checker`` on a thread of this process (tests; trainee code never
    runs here in production), through the same steps as the worker. Like the worker's, it answers
    nothing: the upload request follows the row to learn the outcome, whoever runs the pre-flight."""

    def start(preflight_id: int) -> None:
        def run() -> None:
            lifecycle.claim(app.state.sessionmaker, preflight_id, app.state.clock())
            check_and_settle(
                app.state.sessionmaker, app.state.settings, preflight_id, checker, app.state.enqueue, app.state.clock
            )

        threading.Thread(target=run, name=f"preflight-{preflight_id}", daemon=True).start()

    return start


def _prepare_routes(app: FastAPI) -> None:
    """Have the router build what it otherwise builds on the first request: FastAPI prepares each
    included route (its parameters' validators) lazily, which cost the first request after every
    start well over half a second. Asking every route whether it matches a path none serves walks
    them all, here, before the first visitor."""
    scope: dict[str, Any] = {
        "type": "http", "method": "GET", "path": "/\x00", "root_path": "", "headers": [], "query_string": b"",
    }  # fmt: skip
    for route in app.router.routes:
        route.matches(scope)


_heap_frozen = threading.Event()


def _freeze_startup_heap() -> None:
    """Everything loaded at start (the framework, the models, the routes' validators) lives as long
    as the process: kept out of the collector's reach, a full collection no longer walks it in the
    middle of a request, which showed as a request now and then taking twice as long. Once per
    process: a second app in the same process (the tests start hundreds) would only freeze the
    garbage of the first."""
    if not _heap_frozen.is_set():
        _heap_frozen.set()
        gc.collect()
        gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], dt.datetime] = utcnow,
    preflight_checker: Checker | None = None,
    enqueue: Callable[[int], None] | None = None,
    deliver_email: Callable[[int], None] | None = None,
    testset_importer: TestSetImporter | None = None,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        # The live pages' long polls: one watcher per kind for the whole process (app.web.long_poll).
        app.state.held_polls = HeldPolls(settings.long_poll_per_user)
        app.state.submission_watcher = submissions.submission_watcher(app.state.sessionmaker, app.state.scoring_queue)
        app.state.preflight_watcher = uploads.preflight_watcher(app.state.sessionmaker)
        # Ask the scoring runtime for its versions now, not on the first upload page.
        threading.Thread(target=runtime_versions, args=(runtime_key(settings),), daemon=True).start()
        _prepare_routes(app)
        _freeze_startup_heap()
        try:
            async with anyio.create_task_group() as background:
                background.start_soon(app.state.submission_watcher.run)
                background.start_soon(app.state.preflight_watcher.run)
                yield
                background.cancel_scope.cancel()
        finally:
            engine.dispose()

    app = FastAPI(title="katakana-scorer", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.clock = clock
    # Outside development the templates do not change under a running process: no file checks per page.
    templates.env.auto_reload = settings.environment == "development"
    app.state.enqueue = enqueue or worker_enqueue(settings)
    app.state.start_preflight = (
        worker_start_preflight(settings) if preflight_checker is None else in_process_preflights(app, preflight_checker)
    )
    app.state.deliver_email = deliver_email or worker_deliver(settings)
    app.state.testset_importer = testset_importer or worker_importer(settings)
    # The scoring queue's fair order and live workers, for the pages that show a place and a wait.
    app.state.scoring_queue = QueueWatch(functools.partial(live_scoring_slots, settings))

    configure_logging("web", settings.log_format)
    redaction.install()  # uvicorn's access lines carry query strings: /password/set?token=…
    app.add_middleware(CSRFCookieMiddleware, settings=settings)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.add_middleware(
        BodyTimeoutMiddleware,
        idle_timeout_s=settings.body_idle_timeout_s,
        total_timeout_s=settings.body_total_timeout_s,
    )
    if settings.trusted_proxy_list:
        # The one place the client's address is decided (login throttling, logs): uvicorn itself
        # is started with --no-proxy-headers, so the two cannot disagree.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    app.add_middleware(RequestContextMiddleware)  # outermost: the access line sees every response
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(auth.router)
    app.include_router(profile.router)  # /profile: the reading (フリガナ) of one's name
    app.include_router(uploads.page_router)
    app.include_router(uploads.router)
    app.include_router(history.router)  # before /submissions/{id}: /submissions/history.csv
    app.include_router(submissions.router)
    app.include_router(admin.router)
    app.include_router(api.router)  # /api/v1, /openapi.json, /docs
    app.include_router(leaderboard.router)  # /cohorts/… instructor pages
    app.include_router(similarity.router)  # /cohorts/{id}/similarity: instructors and admins only
    app.include_router(health.router)  # /healthz, /readyz
    app.include_router(metrics_router)  # /metrics
    storage_full.install_handler(app)

    @app.get("/", include_in_schema=False)
    def home(request: Request, user: OptionalUser) -> Response:
        # Signed out: the login page without a destination, so that signing in leads each role to
        # its own landing page (trainees upload, staff follow their cohorts).
        return RedirectResponse(landing_page(user.role) if user is not None else "/login", status_code=303)

    _install_error_pages(app)
    return app


def _lang(request: Request) -> str:
    return getattr(request.state, "lang", None) or normalize_lang(request.cookies.get(LANG_COOKIE))


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if wants_json(request) or request.method != "GET":
            return _error(request, 401, "login_required", force_json=True)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, "not_found")

    @app.exception_handler(CSRFRejected)
    async def csrf_rejected(request: Request, exc: CSRFRejected) -> Response:
        return _error(request, 403, "csrf_failed")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _error(request, 404, "not_found")
        if exc.status_code == 405:
            return _error(request, 405, "method_not_allowed")
        return JSONResponse({"error": {"code": "http_error", "message": str(exc.detail)}}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if path_error(exc):  # /cohorts/99999999999999999999: no such page, not a bad form
            return _error(request, 404, "not_found")
        return _error(request, 422, "form_invalid")


def _error(request: Request, status: int, key: str, *, force_json: bool = False) -> Response:
    """A refusal in both languages: JSON for scripts, the error page (in the user's language) for browsers."""
    lang = normalize_lang(_lang(request))
    if force_json or wants_json(request):
        return JSONResponse(
            {
                "error": {
                    "code": key,
                    "message": Translator(lang)(key),
                    "message_ja": Translator("ja")(key),
                    "message_en": Translator("en")(key),
                }
            },
            status,
        )
    request.state.lang = lang
    return render(request, "error.html", {"message_key": key}, status)
