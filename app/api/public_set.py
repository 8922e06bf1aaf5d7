"""``/api/v1/public-set``: the course's public training set the pre-flight runs submissions on (admin).

The same checks and copy as ``python -m app.cli import-public`` (``app/services/public_set.py``).
With it imported, the pre-flight scores a few of these images outside the sandbox and asks a
trainee to confirm an upload whose model gets them about as right as guessing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel

from app.api.auth import AdminPrincipal
from app.api.errors import COMMON_RESPONSES, ApiError, ApiRoute
from app.api.npy_pair import PUBLIC_SET_FILES, received_pair
from app.services.public_set import PublicSet, PublicSetRejected, import_public_set, public_set
from app.web.deps import SettingsDep

router = APIRouter(prefix="/public-set", tags=["test sets"], route_class=ApiRoute, responses=COMMON_RESPONSES)


class PublicSetOut(BaseModel):
    imported: bool
    n_images: int = 0
    class_counts: list[int] = []


def _out(found: PublicSet | None) -> PublicSetOut:
    if found is None:
        return PublicSetOut(imported=False)
    return PublicSetOut(imported=True, n_images=found.n_images, class_counts=found.class_counts)


@router.get("", summary="The public training set the pre-flight uses", response_model=PublicSetOut)
def get_public_set(settings: SettingsDep, principal: AdminPrincipal) -> PublicSetOut:
    return _out(public_set(settings))


@router.put("", summary="Import (or replace) the public training set", response_model=PublicSetOut)
def put_public_set(
    settings: SettingsDep,
    principal: AdminPrincipal,
    data: Annotated[UploadFile, File(description="train_data.npy, shaped (N, 1, 28, 28)")],
    labels: Annotated[UploadFile, File(description="train_label.npy: one-hot (N, 15)")],
) -> PublicSetOut:
    try:
        with received_pair(settings, PUBLIC_SET_FILES, data, labels) as paths:
            imported = import_public_set(settings, *paths)
    except PublicSetRejected as exc:
        raise ApiError(422, "api_public_set_rejected", problem=str(exc)) from None
    return _out(imported)
