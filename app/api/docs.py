"""The API's OpenAPI document (``/openapi.json``) and a readable reference at ``/docs``.

The reference is rendered on the server from the same document, with no scripts or fonts from a
CDN: the site runs on networks without internet access, where a Swagger UI loaded from a CDN would
be a blank page. Only the ``/api/v1`` routes are described; the site's pages are not an API.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

API_TITLE = "katakana-scorer admin API"
API_VERSION = "1"
DESCRIPTION = (
    "Run the course: cohorts, people, submissions, rescoring, upload grants, test sets.\n\n"
    "Authenticate with `Authorization: Bearer kt_…` (an admin issues tokens: `POST /api/v1/tokens` or "
    '`python -m app.cli create-token`). Errors are `{"error": {"code", "message", "message_ja", '
    '"message_en", "details"}}` with a stable `code`; lists take `page` and `per_page`.'
)


def build_openapi(routes: list[Any], prefix: str) -> dict[str, Any]:
    """The document for the routes under ``prefix`` only (the site's pages are not an API)."""
    doc = get_openapi(title=API_TITLE, version=API_VERSION, description=DESCRIPTION, routes=routes)
    doc["paths"] = {path: ops for path, ops in doc.get("paths", {}).items() if path.startswith(prefix)}
    return doc


def docs_router(prefix: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    cache: dict[int, dict[str, Any]] = {}

    def schema(request: Request) -> dict[str, Any]:
        # Built from the app's routes on first use (FastAPI resolves included routers lazily).
        key = id(request.app)
        if key not in cache:
            cache[key] = build_openapi(request.app.routes, prefix)
        return cache[key]

    @router.get("/openapi.json")
    def openapi(request: Request) -> JSONResponse:
        return JSONResponse(schema(request))

    @router.get("/docs")
    def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(render_reference(schema(request)))

    return router


def _ref_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    return str(schema.get("type", ""))


def _first_schema(part: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of the first media type of a request body or a response."""
    content: dict[str, dict[str, Any]] = part.get("content") or {}
    for media in content.values():
        schema: dict[str, Any] | None = media.get("schema")
        return schema
    return None


def render_reference(doc: dict[str, Any]) -> str:
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(API_TITLE)}</title><link rel='stylesheet' href='/static/site.css'></head>",
        f"<body><main><h1>{html.escape(API_TITLE)}</h1><p>{html.escape(DESCRIPTION)}</p>",
        "<p><a href='/openapi.json'>openapi.json</a></p>",
    ]
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            body_schema = _first_schema(op.get("requestBody", {}))
            ok: dict[str, Any] = next((r for code, r in op.get("responses", {}).items() if code.startswith("2")), {})
            ok_schema = _first_schema(ok)
            parts.append(
                f"<section class='card'><h2 class='mono'>{method.upper()} {html.escape(path)}</h2>"
                f"<p><strong>{html.escape(op.get('summary', ''))}</strong></p>"
                f"<p>{html.escape(op.get('description', ''))}</p>"
                f"<p class='hint'>parameters: {html.escape(params) or '—'}; body: "
                f"{html.escape(_ref_name(body_schema)) or '—'}; returns: {html.escape(_ref_name(ok_schema)) or '—'}</p>"
                "</section>"
            )
    schemas = doc.get("components", {}).get("schemas", {})
    parts.append("<h2>Schemas</h2>")
    for name, schema in schemas.items():
        parts.append(
            f"<details><summary class='mono'>{html.escape(name)}</summary>"
            f"<pre class='log'>{html.escape(json.dumps(schema, indent=2, ensure_ascii=False))}</pre></details>"
        )
    parts.append("</main></body></html>")
    return "".join(parts)
