"""``/api/v1/submissions``: list and filter, read a result with its history, rescore."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query
from sqlalchemy import Select, select

from app.api.auth import AdminPrincipal, ApiPrincipal, Principal
from app.api.delivery import enqueue_later
from app.api.errors import COMMON_RESPONSES, ApiError, ApiRoute, not_found
from app.api.ids import PathId, QueryId
from app.api.pagination import Page, PageDep, make_page, paginate
from app.api.schemas import RescoreOut, RescoreResult, SubmissionDetail, SubmissionOut
from app.models import Submission, SubmissionRescore, SubmissionStatus, TestSet
from app.services.cohort_access import taught_cohort_ids
from app.services.progress import progress
from app.services.rescoring import RescoreRefused, reset_for_rescore
from app.web.deps import ClockDep, EnqueueDep, ScoringQueueDep, SessionDep

router = APIRouter(prefix="/submissions", tags=["submissions"], route_class=ApiRoute, responses=COMMON_RESPONSES)


def visible(principal: Principal) -> Select[Submission]:
    query = select(Submission)
    if principal.is_admin:
        return query
    return query.where(Submission.cohort_id.in_(taught_cohort_ids(principal.user.id)))


@router.get("", summary="List submissions", response_model=Page[SubmissionOut])
def list_submissions(
    db: SessionDep,
    principal: ApiPrincipal,
    page: PageDep,
    cohort_id: QueryId = None,
    user_id: QueryId = None,
    status: SubmissionStatus | None = None,
    since: Annotated[dt.datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[dt.datetime | None, Query(description="created before (ISO 8601)")] = None,
) -> Page[SubmissionOut]:
    """Newest first. Instructors see the submissions of the cohorts they teach."""
    query = visible(principal)
    if cohort_id is not None:
        query = query.where(Submission.cohort_id == cohort_id)
    if user_id is not None:
        query = query.where(Submission.user_id == user_id)
    if status is not None:
        query = query.where(Submission.status == status)
    for bound, is_lower in ((since, True), (until, False)):
        if bound is None:
            continue
        aware = bound if bound.tzinfo is not None else bound.replace(tzinfo=dt.UTC)
        query = query.where(Submission.created_at >= aware if is_lower else Submission.created_at < aware)
    rows, total = paginate(db, query.order_by(Submission.created_at.desc(), Submission.id.desc()), page)
    return make_page([SubmissionOut.model_validate(s) for s in rows], total, page)


@router.get("/{submission_id}", summary="Read a submission's result", response_model=SubmissionDetail)
def read_submission(
    submission_id: PathId, db: SessionDep, principal: ApiPrincipal, queue: ScoringQueueDep, clock: ClockDep
) -> SubmissionDetail:
    """Everything the scorer reported, the log included, and every earlier result (``rescores``);
    while it waits, its place in the fair order and when its result is expected."""
    submission = db.scalar(visible(principal).where(Submission.id == submission_id))
    if submission is None:
        raise not_found()
    state = progress(db, submission, queue, clock())
    history = db.scalars(
        select(SubmissionRescore).where(SubmissionRescore.submission_id == submission.id).order_by(SubmissionRescore.id)
    ).all()
    summary = SubmissionOut.model_validate(submission).model_dump()
    return SubmissionDetail(
        **summary,
        zip_sha256=submission.zip_sha256,
        correct=submission.correct,
        total=submission.total,
        macro_accuracy=submission.macro_accuracy,
        loss=submission.loss,
        per_class=submission.per_class,
        confusion=submission.confusion,
        log=submission.log,
        duration_s=submission.duration_s,
        peak_memory_mb=submission.peak_memory_mb,
        notices=submission.notices,
        result=submission.result,
        rescores=[RescoreOut.model_validate(h) for h in history],
        queue_position=state.queue_position,
        wait_s=state.wait_s,
    )


@router.post("/{submission_id}/rescore", summary="Rescore one submission", response_model=RescoreResult)
def rescore_submission(
    submission_id: PathId,
    background: BackgroundTasks,
    db: SessionDep,
    principal: AdminPrincipal,
    clock: ClockDep,
    enqueue: EnqueueDep,
) -> RescoreResult:
    """Against the active test set; the previous result is kept in ``rescores``, the daily count is untouched."""
    query = select(Submission).where(Submission.id == submission_id)
    if db.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    submission = db.scalar(query)
    if submission is None:
        raise not_found()
    try:
        reset_for_rescore(db, submission, requested_by_id=principal.user.id, now=clock())
    except RescoreRefused as exc:
        raise ApiError(409, "api_rescore_not_finished", status=str(exc)) from None
    enqueue_later(enqueue, background, [submission.id])
    active = db.scalar(select(TestSet.version).where(TestSet.is_active).order_by(TestSet.id.desc()).limit(1))
    return RescoreResult(queued=[submission.id], testset_version=active)
