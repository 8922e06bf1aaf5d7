"""A person's own account page: their name as the course has it, and the reading (フリガナ) they
may give or correct themselves, by which lists of people sort (see :mod:`app.folding`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.folding import normalize_reading
from app.web.csrf import verify_csrf
from app.web.deps import CurrentUser, LangDep, TranslatorDep
from app.web.templating import render

router = APIRouter(dependencies=[Depends(verify_csrf)])


@router.get("/profile", name="profile")
def profile_page(request: Request, user: CurrentUser, lang: LangDep) -> Response:
    saved = request.query_params.get("saved") == "1"
    return render(request, "profile.html", {"account": user, "reading": user.reading, "saved": saved})


@router.post("/profile", name="profile_save")
def profile_save(
    request: Request, user: CurrentUser, t: TranslatorDep, reading: Annotated[str, Form(max_length=400)] = ""
) -> Response:
    try:
        user.reading = normalize_reading(reading)
    except ValueError:
        context = {"account": user, "reading": reading, "error": t("profile_reading_invalid")}
        return render(request, "profile.html", context, 422)
    return RedirectResponse("/profile?saved=1", status_code=303)
