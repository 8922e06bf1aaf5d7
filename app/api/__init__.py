"""The admin JSON API under ``/api/v1`` (token auth, JSON errors, paginated lists) and its docs.

``app.main.create_app`` includes :data:`router`; everything else about the API lives here.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.api import cohorts, public_set, submissions, testsets, tokens, users
from app.api.docs import docs_router

PREFIX = "/api/v1"
api_v1 = APIRouter(prefix=PREFIX)
for module in (cohorts, users, submissions, testsets, tokens, public_set):
    api_v1.include_router(module.router)

router = APIRouter()
router.include_router(api_v1)
router.include_router(docs_router(PREFIX))
