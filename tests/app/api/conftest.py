"""Fixtures for the API tests: a second cohort with its own people, tokens per role, submissions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Cohort, Enrollment, Role, Submission, SubmissionStatus, TokenScope, User
from app.services.api_tokens import create_token
from tests.app.conftest import People, add_user

T0 = dt.datetime(2026, 11, 20, 1, 0, tzinfo=dt.UTC)


@dataclass
class World:
    """``people`` (cohort dl_tokyo_2) plus a second cohort the first instructor does not teach."""

    people: People
    other_cohort: Cohort
    other_instructor: User
    other_trainee: User
    admin_token: str
    instructor_token: str
    other_instructor_token: str


@pytest.fixture
def world(db: Session, people: People) -> World:
    other = Cohort(name="dl_osaka_1", title="DL Osaka 1", daily_limit=3, timezone="Asia/Tokyo", pass_threshold=0.9)
    db.add(other)
    db.flush()
    other_instructor = add_user(db, "osaka-sensei@example.com", Role.INSTRUCTOR)
    other_trainee = add_user(db, "jiro@example.com")
    db.add_all(
        [
            Enrollment(user_id=other_instructor.id, cohort_id=other.id, role=Role.INSTRUCTOR),
            Enrollment(user_id=other_trainee.id, cohort_id=other.id, role=Role.TRAINEE),
        ]
    )
    admin_token = create_token(db, people.admin, TokenScope.ADMIN, "admin").secret
    instructor_token = create_token(db, people.instructor, TokenScope.INSTRUCTOR, "sensei").secret
    other_token = create_token(db, other_instructor, TokenScope.INSTRUCTOR, "osaka").secret
    db.commit()
    return World(people, other, other_instructor, other_trainee, admin_token, instructor_token, other_token)


def add_submission(
    db: Session,
    user: User,
    cohort: Cohort,
    *,
    accuracy: float | None = None,
    status: SubmissionStatus = SubmissionStatus.SUCCEEDED,
    at: dt.datetime = T0,
    log: str | None = "scored",
) -> Submission:
    submission = Submission(
        user_id=user.id,
        cohort_id=cohort.id,
        status=status,
        created_at=at,
        quota_day=at.date(),
        counts_toward_limit=True,
        original_filename="提出.zip",
        zip_sha256="0" * 64,
        zip_size=123,
        storage_key="zips/00/" + "0" * 64 + ".zip",
        accuracy=accuracy if status == SubmissionStatus.SUCCEEDED else None,
        correct=None,
        total=None,
        error_code="predict_missing" if status == SubmissionStatus.FAILED else None,
        log=log,
        result={"status": status.value, "accuracy": accuracy},
        finished_at=at + dt.timedelta(minutes=1)
        if status in (SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED)
        else None,
        attempts=1,
    )
    db.add(submission)
    db.flush()
    return submission


def call(client: TestClient, method: str, path: str, token: str | None, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, "/api/v1" + path, headers=headers, **kwargs)  # type: ignore[arg-type]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message_ja"] and error["message_en"] and error["message_ja"] != error["message_en"]
    return dict(error)
