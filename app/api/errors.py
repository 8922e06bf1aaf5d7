"""API errors: JSON ``{"error": {"code", "message", "message_ja", "message_en", "details"}}``.

The shape is the site's own JSON error shape (see ``app.main``), so a script handles one format.
``code`` is stable (scripts branch on it); the messages come from the i18n tables and say what was
wrong and what to do. ``message`` follows ``Accept-Language`` (Japanese unless it asks for English).

The API's routes use :class:`ApiRoute`, which turns request validation errors and
:class:`ApiError` into that JSON inside the route itself: the site's app-wide handlers (HTML pages,
upload errors) are left exactly as they are for every other path.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.i18n import Translator


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        /,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        per_lang: dict[str, dict[str, Any]] | None = None,
        **params: Any,
    ) -> None:
        """``per_lang`` holds parameters that are themselves translated text (``{"ja": {...}, "en": {...}}``)."""
        super().__init__(code)
        self.status = status
        self.code = code
        self.params = params
        self.per_lang = per_lang or {}
        self.details = details
        self.headers = headers


class ErrorBody(BaseModel):
    code: str
    message: str
    message_ja: str
    message_en: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def request_lang(request: Request) -> str:
    return "en" if request.headers.get("accept-language", "").lower().startswith("en") else "ja"


def error_response(request: Request, exc: ApiError) -> JSONResponse:
    ja = Translator("ja")(exc.code, **exc.params, **exc.per_lang.get("ja", {}))
    en = Translator("en")(exc.code, **exc.params, **exc.per_lang.get("en", {}))
    body = ErrorBody(
        code=exc.code,
        message=en if request_lang(request) == "en" else ja,
        message_ja=ja,
        message_en=en,
        details=exc.details,
    )
    return JSONResponse({"error": body.model_dump()}, exc.status, headers=exc.headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(part) for part in error.get("loc", ())), "problem": str(error.get("msg", ""))}
        for error in exc.errors()
    ]


class ApiRoute(APIRoute):
    """A route whose failures are always the API's JSON errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(request, exc)
            except RequestValidationError as exc:
                if any(tuple(e.get("loc", ()))[:1] == ("path",) for e in exc.errors()):
                    return error_response(request, not_found())  # an id that cannot exist: as one that does not
                details = _field_errors(exc)
                fields = ", ".join(sorted({d["field"] for d in details})) or "body"
                return error_response(request, ApiError(422, "api_invalid_request", details=details, fields=fields))

        return route_handler


def not_found() -> ApiError:
    return ApiError(404, "api_not_found")


# For the OpenAPI document: every route may answer these.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No valid API token"},
    403: {"model": ErrorResponse, "description": "The token's scope does not allow this"},
    404: {"model": ErrorResponse, "description": "Not found, or not visible to this token"},
    422: {"model": ErrorResponse, "description": "The request is invalid; details lists the fields"},
}
