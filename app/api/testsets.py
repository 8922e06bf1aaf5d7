"""``/api/v1/testsets``: list versions, import a new one (admin), choose the active one.

Importing runs the checks and copy of ``app/services/testset_import.py``, the same code the
``import-testset`` command runs, on a scoring worker (the ``testsets`` queue): the hidden test
set's folder is mounted there, not in the web container. The uploaded files wait in a scratch
folder under the shared data folder meanwhile.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from sqlalchemy import select, update

from app.api.auth import AdminPrincipal
from app.api.errors import COMMON_RESPONSES, ApiError, ApiRoute, not_found
from app.api.ids import PathId
from app.api.npy_pair import TESTSET_FILES, received_pair
from app.api.pagination import Page, PageDep, make_page, paginate
from app.api.schemas import TestSetOut
from app.models import TestSet
from app.web.deps import ClockDep, SessionDep, SettingsDep, TestSetImporterDep

router = APIRouter(prefix="/testsets", tags=["test sets"], route_class=ApiRoute, responses=COMMON_RESPONSES)


@router.get("", summary="List test-set versions", response_model=Page[TestSetOut])
def list_testsets(db: SessionDep, principal: AdminPrincipal, page: PageDep) -> Page[TestSetOut]:
    rows, total = paginate(db, select(TestSet).order_by(TestSet.id.desc()), page)
    return make_page([TestSetOut.model_validate(t) for t in rows], total, page)


@router.post("", summary="Import a test set", status_code=201, response_model=TestSetOut)
def import_testset_version(
    db: SessionDep,
    settings: SettingsDep,
    principal: AdminPrincipal,
    clock: ClockDep,
    importer: TestSetImporterDep,
    data: Annotated[UploadFile, File(description="test_data.npy, shaped (N, 1, 28, 28)")],
    labels: Annotated[UploadFile, File(description="test_label.npy: one-hot (N, 15) or class ids (N,)")],
    version: Annotated[str | None, Form(max_length=100, description="default: the time, e.g. v20261124-153000")] = None,
    activate: Annotated[bool, Form(description="make it the active set at once")] = True,
) -> TestSetOut:
    from app.queue import NoWorkerAnswered
    from app.services.testset_import import TestSetRejected, default_version

    try:
        # Under the data folder, which the scoring workers share: the import runs there (see Importing).
        with received_pair(settings, TESTSET_FILES, data, labels) as paths:
            # The importer writes in its own transaction: end this request's first, so it holds no
            # lock the importer would wait on, and so the new row is visible to it afterwards.
            db.commit()
            row_id = importer(*paths, version or default_version(clock()), activate)
    except TestSetRejected as exc:
        raise ApiError(422, "api_testset_rejected", problem=str(exc)) from None
    except NoWorkerAnswered as exc:
        raise ApiError(503, "api_testset_unanswered", details=str(exc)) from None
    row = db.get(TestSet, row_id)
    if row is None:
        raise not_found()
    return TestSetOut.model_validate(row)


@router.post("/{testset_id}/activate", summary="Choose the active test set", response_model=TestSetOut)
def activate_testset(testset_id: PathId, db: SessionDep, principal: AdminPrincipal) -> TestSetOut:
    """New submissions (and rescores) are scored against it from now on; results already stored keep theirs."""
    row = db.get(TestSet, testset_id)
    if row is None:
        raise not_found()
    db.execute(update(TestSet).where(TestSet.id != row.id, TestSet.is_active).values(is_active=False))
    row.is_active = True
    db.flush()
    return TestSetOut.model_validate(row)
