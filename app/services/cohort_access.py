"""Who may look at which cohort: admins all of them, instructors the ones they teach.

One definition shared by the pages and the API, so the two can never disagree. Callers answer a
cohort outside the list exactly like a missing one (404), so ids reveal nothing.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.models import Cohort, Enrollment, Role, User


def taught_cohort_ids(user_id: int) -> Select[int]:
    return select(Enrollment.cohort_id).where(Enrollment.user_id == user_id, Enrollment.role == Role.INSTRUCTOR)


def viewable_cohorts(user: User, *, as_admin: bool | None = None) -> Select[Cohort]:
    """Cohorts ``user`` follows; ``as_admin=False`` limits an admin to taught cohorts (an instructor-scoped token)."""
    admin = user.role == Role.ADMIN if as_admin is None else as_admin and user.role == Role.ADMIN
    query = select(Cohort)
    if admin:
        return query
    if user.role in (Role.INSTRUCTOR, Role.ADMIN):
        return query.where(Cohort.id.in_(taught_cohort_ids(user.id)))
    return query.where(Cohort.id.is_(None))  # trainees follow no cohort this way


def viewable_cohort(db: Session, user: User, cohort_id: int, *, as_admin: bool | None = None) -> Cohort | None:
    return db.scalar(viewable_cohorts(user, as_admin=as_admin).where(Cohort.id == cohort_id))


def trainee_cohort(db: Session, user: User, cohort_id: int) -> Cohort | None:
    """The cohort if ``user`` is enrolled in it as a trainee (for the anonymised leaderboard)."""
    return db.scalar(
        select(Cohort)
        .join(Enrollment, Enrollment.cohort_id == Cohort.id)
        .where(Cohort.id == cohort_id, Enrollment.user_id == user.id, Enrollment.role == Role.TRAINEE)
    )
