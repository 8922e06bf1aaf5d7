"""Submissions: spending a daily slot, who may see which submission, and history.

:func:`create_queued` is the one place a slot is spent. It counts today's slots and inserts the
``queued`` row in one transaction that holds a lock for the user — ``BEGIN IMMEDIATE`` on SQLite,
``SELECT … FOR UPDATE`` on the user's row on PostgreSQL — so simultaneous uploads are decided one
after another and exactly ``daily_limit`` of them are queued.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import write_lock
from app.models import Cohort, Enrollment, Role, Submission, SubmissionStatus, User
from app.services.quota import QuotaStatus, quota_status
from app.services.storage import ReceivedUpload


class SubmissionRefused(Exception):
    """No slot was spent; ``reason`` is an i18n key (``quota``, ``no_cohort``, ``deadline``)."""

    def __init__(self, reason: str, quota: QuotaStatus | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.quota = quota


def active_cohort(db: Session, user_id: int) -> Cohort | None:
    """The cohort a trainee uploads to: their enrollment in a cohort that is not archived."""
    return db.scalar(
        select(Cohort)
        .join(Enrollment, Enrollment.cohort_id == Cohort.id)
        .where(Enrollment.user_id == user_id, Cohort.archived.is_(False))
        .order_by(Cohort.start_date.desc().nulls_last(), Cohort.id.desc())
        .limit(1)
    )


def check_can_submit(db: Session, user_id: int, cohort: Cohort | None, now: dt.datetime) -> QuotaStatus:
    """Raise :class:`SubmissionRefused` unless the user may spend a slot in ``cohort`` now.

    The site also calls this before receiving an upload, so a trainee with no uploads left is told
    at once instead of after sending 100 MiB; only the call inside :func:`create_queued`, under the
    lock, decides.
    """
    if cohort is None or cohort.archived:
        raise SubmissionRefused("no_cohort")
    if cohort.upload_deadline is not None and now > cohort.upload_deadline:
        raise SubmissionRefused("deadline")
    quota = quota_status(db, user_id, cohort, now)
    if quota.remaining <= 0:
        raise SubmissionRefused("quota", quota)
    return quota


def create_queued(
    factory: sessionmaker[Session],
    *,
    user_id: int,
    cohort_id: int,
    upload: ReceivedUpload,
    validation_accuracy: float | None,
    now: dt.datetime,
    change_note: str = "",
) -> Submission:
    """Spend a slot and insert the ``queued`` submission, or raise :class:`SubmissionRefused`.

    The received zip enters the store in the same transaction (refused: it never does). Commits
    before returning: the caller enqueues the scoring task only after this.
    """
    with write_lock(factory) as db:
        submission = spend_slot(
            db, user_id=user_id, cohort_id=cohort_id, upload=upload, validation_accuracy=validation_accuracy, now=now,
            change_note=change_note,
        )  # fmt: skip
        upload.keep()
    return submission


def spend_slot(
    db: Session,
    *,
    user_id: int,
    cohort_id: int,
    upload: ReceivedUpload,
    validation_accuracy: float | None,
    now: dt.datetime,
    change_note: str = "",
) -> Submission:
    """:func:`create_queued`'s work inside the caller's write-locked transaction (``write_lock``), for
    a caller that must record something else atomically with the slot (a pre-flight's outcome)."""
    if db.get_bind().dialect.name != "sqlite":
        db.execute(select(User.id).where(User.id == user_id).with_for_update())
    quota = check_can_submit(db, user_id, db.get(Cohort, cohort_id), now)
    submission = Submission(
        user_id=user_id,
        cohort_id=cohort_id,
        status=SubmissionStatus.QUEUED,
        created_at=now,
        quota_day=quota.day,
        counts_toward_limit=True,
        original_filename=upload.original_filename,
        zip_sha256=upload.sha256,
        zip_size=upload.size,
        storage_key=upload.storage_key,
        validation_accuracy=validation_accuracy,
        change_note=change_note,
    )
    db.add(submission)
    db.flush()
    return submission


def visible_submissions(user: User) -> Select[Submission]:
    """Submissions ``user`` may see: own ones; an instructor's cohorts'; an admin's all."""
    query = select(Submission)
    if user.role == Role.ADMIN:
        return query
    if user.role == Role.INSTRUCTOR:
        taught = select(Enrollment.cohort_id).where(Enrollment.user_id == user.id, Enrollment.role == Role.INSTRUCTOR)
        return query.where(or_(Submission.user_id == user.id, Submission.cohort_id.in_(taught)))
    return query.where(Submission.user_id == user.id)


def get_visible(db: Session, user: User, submission_id: int) -> Submission | None:
    """The submission if ``user`` may see it; None otherwise — callers answer 404 either way,
    so nobody learns which ids exist."""
    return db.scalar(visible_submissions(user).where(Submission.id == submission_id))


def own_submissions(db: Session, user: User, limit: int = 200) -> list[Submission]:
    return list(
        db.scalars(
            select(Submission)
            .where(Submission.user_id == user.id)
            .order_by(Submission.created_at.desc(), Submission.id.desc())
            .limit(limit)
        )
    )


def accuracy_history(db: Session, user_id: int, cohort_id: int) -> list[Submission]:
    """The trainee's scored submissions in a cohort, oldest first (「識別精度の変遷」)."""
    return list(
        db.scalars(
            select(Submission)
            .where(
                Submission.user_id == user_id,
                Submission.cohort_id == cohort_id,
                Submission.status == SubmissionStatus.SUCCEEDED,
                Submission.accuracy.is_not(None),
            )
            .order_by(Submission.created_at, Submission.id)
        )
    )
