"""The API's OpenAPI document (``/openapi.json``) and a readable reference at ``/docs``.

The reference is a page of the site (its layout, language switch and navigation), rendered on the
server from the same document, with no scripts or fonts from a CDN: the site runs on networks
without internet access, where a Swagger UI loaded from a CDN would be a blank page. It opens with
worked examples (Japanese data, and the error body in both languages as the API really returns
it) before the operation list. Only the ``/api/v1`` routes are described; the site's pages are not
an API.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup

from app.i18n import Translator
from app.web.deps import LangDep
from app.web.templating import render

API_TITLE = "katakana-scorer admin API"
API_VERSION = "1"
DESCRIPTION = (
    "Run the course: cohorts, people, submissions, rescoring, upload grants, test sets.\n\n"
    "Authenticate with `Authorization: Bearer kt_…` (an admin issues tokens: `POST /api/v1/tokens` or "
    '`python -m app.cli create-token`). Errors are `{"error": {"code", "message", "message_ja", '
    '"message_en", "details"}}` with a stable `code`; lists take `page` and `per_page`.'
)


def build_openapi(routes: list[Any], prefix: str) -> dict[str, Any]:
    """The document for the routes under ``prefix`` only (the site's pages are not an API): their
    paths, and the schemas those reach (not the site's login or profile forms), under names a
    reader would give them (:func:`_readable_names`)."""
    doc = get_openapi(title=API_TITLE, version=API_VERSION, description=DESCRIPTION, routes=routes)
    doc["paths"] = {path: ops for path, ops in doc.get("paths", {}).items() if path.startswith(prefix)}
    doc = _readable_names(doc)
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    if schemas:
        doc["components"]["schemas"] = {name: schemas[name] for name in sorted(_reached(doc["paths"], schemas))}
    return doc


_REF = re.compile(r'"#/components/schemas/([^"]+)"')


def _reached(start: Any, schemas: dict[str, Any]) -> set[str]:
    """The schemas ``start`` refers to, and those they refer to, and so on."""
    seen: set[str] = set()
    todo = set(_REF.findall(json.dumps(start)))
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        todo |= set(_REF.findall(json.dumps(schemas[name])))
    return seen


def _readable_names(doc: dict[str, Any]) -> dict[str, Any]:
    """The schema names FastAPI and pydantic generate, as a reader would name them:
    ``Body_import_testset_version_api_v1_testsets_post`` → ``ImportTestsetVersionForm`` (the
    operation id is the function's name, then the path and the method) and ``Page_CohortOut_`` →
    ``CohortOutPage``."""
    names: dict[str, str] = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            suffix = re.sub(r"\W", "_", path) + "_" + method
            operation = op.get("operationId", "")
            if operation.endswith(suffix):
                words = operation.removesuffix(suffix).split("_")
                names["Body_" + operation] = "".join(word.capitalize() for word in words) + "Form"
    for name in doc.get("components", {}).get("schemas", {}):
        if page := re.fullmatch(r"Page_(\w+)_", name):
            names[name] = page.group(1) + "Page"
    text = json.dumps(doc, ensure_ascii=False)
    for old, new in names.items():
        # The name as a key or title ("Body_…") and in references ("#/components/schemas/Body_…").
        text = re.sub(rf'"(#/components/schemas/)?{re.escape(old)}"', rf'"\g<1>{new}"', text)
    renamed: dict[str, Any] = json.loads(text)
    return renamed


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

    @router.get("/docs", name="api_docs")
    def docs(request: Request, lang: LangDep) -> Response:
        doc = schema(request)
        context = {
            "operations": operations(doc),
            "schemas": {name: json.dumps(s, indent=2, ensure_ascii=False) for name, s in schemas(doc).items()},
            "error_example": error_example(),
            "prefix": prefix,
        }
        return render(request, "api_docs.html", context)

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


_CODE = re.compile(r"``?([^`]+)``?")


def inline_code(text: str) -> Markup:
    """The docstrings' `backticks` as <code>, everything else escaped."""
    return Markup(_CODE.sub(r"<code>\1</code>", html.escape(text)))  # noqa: S704 (escaped just before)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    description: Markup
    parameters: str
    body: str
    returns: str
    tag: str


def operations(doc: dict[str, Any]) -> list[Operation]:
    out = []
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            ok: dict[str, Any] = next((r for code, r in op.get("responses", {}).items() if code.startswith("2")), {})
            out.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=op.get("summary", ""),
                    description=inline_code(op.get("description", "")),
                    parameters=", ".join(p["name"] for p in op.get("parameters", [])),
                    body=_ref_name(_first_schema(op.get("requestBody", {}))),
                    returns=_ref_name(_first_schema(ok)),
                    tag=(op.get("tags") or [""])[0],
                )
            )
    return out


def schemas(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    return found


def error_example() -> str:
    """A real error body (the CSV import's), from the same tables the API answers with."""
    from app.services.people import CsvProblem

    problems = [CsvProblem(4, "role", {"role": "admin"}), CsvProblem(6, "email", {"email": "hanako@"})]
    ja, en = Translator("ja"), Translator("en")
    per_lang = {lang: "\n".join(p.text(t) for p in problems) for lang, t in (("ja", ja), ("en", en))}
    body = {
        "error": {
            "code": "api_csv_invalid",
            "message": ja("api_csv_invalid", count=2, problems=per_lang["ja"]),
            "message_ja": ja("api_csv_invalid", count=2, problems=per_lang["ja"]),
            "message_en": en("api_csv_invalid", count=2, problems=per_lang["en"]),
            "details": [
                {"line": p.line, "code": p.code, "problem_ja": p.text(ja), "problem_en": p.text(en)} for p in problems
            ],
        }
    }
    return json.dumps(body, indent=2, ensure_ascii=False)
