"""Log in, log out, the language switch, and setting a password through an emailed one-time link."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from app.db import transaction
from app.i18n import LANG_COOKIE, Translator, normalize_lang
from app.models import Language, Role, TokenPurpose, User
from app.security import password_links, throttle
from app.security.passwords import MIN_PASSWORD_LENGTH, hash_password, needs_rehash, verify_password
from app.security.sessions import SESSION_COOKIE, end_session, forget_session, start_session
from app.security.tokens import token_hash
from app.services.outbox import queue_email
from app.web.csrf import rotate_csrf, verify_csrf
from app.web.deps import (
    ClockDep,
    DeliverEmailDep,
    LangDep,
    OptionalUser,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    TranslatorDep,
)
from app.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(verify_csrf)])
# The address whose password was just set, for the login form that follows: a cookie for that one
# page, not the URL (addresses stay out of access logs and the browser's history).
LOGIN_EMAIL_COOKIE = "katakana_login_email"
LOGIN_EMAIL_MAX_AGE_S = 15 * 60


def safe_next(target: str | None, default: str = "/upload") -> str:
    """Only paths on this site: ``//evil.example`` and ``https://…`` become the default."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def landing_page(role: Role) -> str:
    """Where someone lands after signing in: trainees upload; instructors and admins follow cohorts
    (they cannot submit, so the upload page would only tell them so)."""
    return "/upload" if role == Role.TRAINEE else "/cohorts"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login", name="login_form")
def login_form(request: Request, lang: LangDep, user: OptionalUser, next: str | None = None) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next, landing_page(user.role)), status_code=303)
    email = request.cookies.get(LOGIN_EMAIL_COOKIE) if request.query_params.get("password_set") else None
    response = render(request, "login.html", {"next": safe_next(next, ""), "email": email})
    response.delete_cookie(LOGIN_EMAIL_COOKIE, path="/login")
    return response


@router.post("/login", name="login")
def login(
    request: Request,
    settings: SettingsDep,
    clock: ClockDep,
    factory: SessionmakerDep,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "",
) -> Response:
    """Claim the attempt, check the password outside any transaction, then start the session.

    The attempt is recorded (as a failure) before the password is checked, in one serialised
    transaction with the throttle's decision (see ``app.security.throttle``): simultaneous guesses
    cannot all slip under the limit. Hashing is slow on purpose (argon2: a few hundred ms of CPU)
    and runs with no transaction open. Done inside the request's write transaction, it held
    SQLite's write lock, so a class logging in at once before a deadline was checked one by one;
    now only the short writes take turns. Hence no ``SessionDep`` here (nor ``LangDep``, which
    reads the signed-in user through it): the language comes from the cookie.
    """
    request.state.lang = lang = normalize_lang(request.cookies.get(LANG_COOKIE))
    t = Translator(lang)
    email = email.strip().lower()
    ip = client_ip(request)
    now = clock()
    user_id: int | None = None
    stored_hash: str | None = None
    with transaction(factory, write_lock=True) as db:
        claim = throttle.claim_attempt(db, email, ip, settings, now)
        if claim.attempt_id is not None:
            user = db.scalar(select(User).where(User.email == email))
            if user is not None and user.is_active:
                user_id, stored_hash = user.id, user.password_hash
    if claim.attempt_id is None:
        key = "login_throttled_address" if claim.by_address else "login_throttled"
        error = t(key, minutes=max(1, (claim.retry_after_s + 59) // 60))
        refused = render(request, "login.html", {"next": safe_next(next, ""), "error": error, "email": email}, 429)
        refused.headers["Retry-After"] = str(claim.retry_after_s)
        return refused
    # Verified even for an unknown or inactive account (against no hash), so timing tells nothing.
    ok = verify_password(stored_hash, password)  # False without a hash, i.e. without an active account
    failed = {"next": safe_next(next, ""), "error": t("login_failed"), "email": email}
    if not ok or user_id is None:
        with transaction(factory, write_lock=True) as db:
            throttle.record_failure(db, claim.attempt_id)
        return render(request, "login.html", failed, 400)
    with transaction(factory, write_lock=True) as db:
        account = db.get(User, user_id)
        if account is None or not account.is_active:  # deactivated while we were hashing
            throttle.record_failure(db, claim.attempt_id)
            return render(request, "login.html", failed, 400)
        throttle.record_success(db, email, ip, now)
        if account.password_hash and needs_rehash(account.password_hash):
            account.password_hash = hash_password(password)
        response = RedirectResponse(safe_next(next, landing_page(account.role)), status_code=303)
        # A session cookie the browser already had (someone else's on a shared machine, or one
        # planted before login) is ended, not kept beside the new one.
        forget_session(db, request.cookies.get(SESSION_COOKIE), settings)
        session_cookie = start_session(db, account, response, settings)
        rotate_csrf(response, settings, session_cookie)
        response.set_cookie(LANG_COOKIE, account.language.value, max_age=365 * 24 * 3600, samesite="lax")
        return response


@router.post("/logout", name="logout")
def logout(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    response = RedirectResponse("/login?logged_out=1", status_code=303)
    end_session(db, request.cookies.get(SESSION_COOKIE), response, settings)
    rotate_csrf(response, settings, None)  # the signed-out browser gets a token of its own
    return response


@router.post("/language", name="set_language")
def set_language(
    request: Request, user: OptionalUser, lang: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
) -> Response:
    chosen = normalize_lang(lang)
    if user is not None:
        user.language = Language(chosen)
    response = RedirectResponse(safe_next(next, "/"), status_code=303)
    response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 24 * 3600, samesite="lax")
    return response


@router.get("/password/forgot", name="forgot_form")
def forgot_form(request: Request, lang: LangDep) -> Response:
    return render(request, "password_forgot.html")


@router.post("/password/forgot", name="forgot")
def forgot(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    lang: LangDep,
    background: BackgroundTasks,
    deliver_email: DeliverEmailDep,
    email: Annotated[str, Form()],
) -> Response:
    """Always answers the same way, so the form does not reveal which addresses are registered."""
    user = db.scalar(select(User).where(User.email == email.strip().lower()))
    if user is not None and user.is_active and not password_links.too_many_recent(db, user, settings):
        purpose = TokenPurpose.RESET if user.password_hash else TokenPurpose.INVITE
        token = password_links.issue(db, user, purpose, settings)
        mail_t = Translator(normalize_lang(user.language.value))
        body = mail_t(
            "reset_mail_body",
            name=user.name,
            link=password_links.link(token, settings),
            hours=settings.password_token_ttl_s // 3600,
        )
        row = queue_email(
            db,
            key=f"password:{token_hash(token)[:16]}",  # never the token: keys name mail files
            to=user.email,
            subject=mail_t("reset_mail_subject"),
            body_text=body,
        )
        # Runs after the response, i.e. after the session dependency committed the row.
        background.add_task(_deliver, deliver_email, row.id)
    return render(request, "password_forgot.html", {"sent": True})


def _deliver(deliver: object, outbox_id: int) -> None:
    try:
        deliver(outbox_id)  # type: ignore[operator]
    except Exception:  # the worker's sweeper sends pending mail later
        log.exception("could not hand mail %s to the worker; it stays pending", outbox_id)


@router.get("/password/set", name="set_password_form")
def set_password_form(request: Request, db: SessionDep, lang: LangDep, token: str = "") -> Response:
    usable = password_links.find_usable(db, token) is not None if token else False
    return render(
        request,
        "password_set.html",
        {"token": token, "usable": usable, "min": MIN_PASSWORD_LENGTH},
        200 if usable else 400,
    )


@router.post("/password/set", name="set_password")
def set_password(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    lang: LangDep,
    t: TranslatorDep,
    token: Annotated[str, Form()],
    password: Annotated[str, Form()],
    confirm: Annotated[str, Form()],
) -> Response:
    context: dict[str, object] = {"token": token, "usable": True, "min": MIN_PASSWORD_LENGTH}
    if len(password) < MIN_PASSWORD_LENGTH:
        return render(
            request,
            "password_set.html",
            {**context, "error": t("password_too_short", min=MIN_PASSWORD_LENGTH)},
            400,
        )
    if password != confirm:
        return render(request, "password_set.html", {**context, "error": t("password_mismatch")}, 400)
    user = password_links.consume(db, token, password)
    if user is None:
        return render(request, "password_set.html", {**context, "usable": False}, 400)
    response = RedirectResponse("/login?password_set=1", status_code=303)
    response.set_cookie(
        LOGIN_EMAIL_COOKIE, user.email, max_age=LOGIN_EMAIL_MAX_AGE_S, path="/login", httponly=True,
        samesite="strict", secure=settings.is_production,
    )  # fmt: skip
    return response
