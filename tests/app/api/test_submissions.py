"""Submissions: list and filter, read a result, rescore one or a cohort without touching daily counts."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Cohort, Submission, SubmissionRescore, SubmissionStatus
from app.services.quota import quota_status
from tests.app.api.conftest import T0, World, add_submission, assert_error, call


def _seed(db: Session, world: World) -> dict[str, int]:
    p = world.people
    ids = {
        "hanako_ok": add_submission(db, p.trainee, p.cohort, accuracy=0.91).id,
        "hanako_failed": add_submission(
            db, p.trainee, p.cohort, status=SubmissionStatus.FAILED, at=T0 + dt.timedelta(hours=1)
        ).id,
        "hanako_queued": add_submission(
            db, p.trainee, p.cohort, status=SubmissionStatus.QUEUED, at=T0 + dt.timedelta(hours=2)
        ).id,
        "jiro_ok": add_submission(db, world.other_trainee, world.other_cohort, accuracy=0.97).id,
    }
    db.commit()
    return ids


def test_list_filters_and_instructor_scope(client: TestClient, world: World, db: Session) -> None:
    ids = _seed(db, world)
    everything = call(client, "GET", "/submissions", world.admin_token).json()
    assert everything["total"] == 4
    assert everything["items"][0]["id"] == ids["hanako_queued"]  # newest first
    failed = call(client, "GET", "/submissions?status=failed", world.admin_token).json()
    assert [s["id"] for s in failed["items"]] == [ids["hanako_failed"]]
    since = (T0 + dt.timedelta(minutes=30)).isoformat()
    recent = call(client, "GET", "/submissions", world.admin_token, params={"since": since}).json()
    assert recent["total"] == 2
    mine = call(client, "GET", "/submissions", world.instructor_token).json()
    assert {s["cohort_id"] for s in mine["items"]} == {world.people.cohort.id}
    other = call(client, "GET", f"/submissions?cohort_id={world.other_cohort.id}", world.instructor_token).json()
    assert other["total"] == 0


def test_read_result_and_instructor_boundary(client: TestClient, world: World, db: Session) -> None:
    ids = _seed(db, world)
    body = call(client, "GET", f"/submissions/{ids['hanako_ok']}", world.instructor_token).json()
    assert body["accuracy"] == 0.91 and body["log"] == "scored" and body["rescores"] == []
    assert body["queue_position"] is None and body["wait_s"] is None  # scored: not in the queue
    waiting = call(client, "GET", f"/submissions/{ids['hanako_queued']}", world.instructor_token).json()
    assert waiting["queue_position"] == 1
    foreign = call(client, "GET", f"/submissions/{ids['jiro_ok']}", world.instructor_token)
    assert_error(foreign, 404, "api_not_found")


def test_rescore_one_keeps_history_and_daily_count(
    client: TestClient, world: World, db: Session, enqueued: list[int]
) -> None:
    ids = _seed(db, world)
    cohort = db.get(Cohort, world.people.cohort.id)
    assert cohort is not None
    at = T0 + dt.timedelta(hours=3)
    used_before = quota_status(db, world.people.trainee.id, cohort, at).used
    db.rollback()
    response = call(client, "POST", f"/submissions/{ids['hanako_ok']}/rescore", world.admin_token)
    assert response.status_code == 200, response.text
    assert response.json()["queued"] == [ids["hanako_ok"]]
    assert enqueued == [ids["hanako_ok"]]
    row = db.get(Submission, ids["hanako_ok"])
    assert row is not None
    assert row.status == SubmissionStatus.QUEUED and row.accuracy is None and row.log is None
    assert row.counts_toward_limit is True and row.attempts == 0
    assert quota_status(db, world.people.trainee.id, cohort, at).used == used_before
    again = call(client, "GET", f"/submissions/{ids['hanako_ok']}", world.admin_token).json()
    history = again["rescores"]
    assert len(history) == 1 and history[0]["previous_accuracy"] == 0.91
    # Back in the queue, behind the upload that was already waiting (it waits from its rescoring).
    assert again["queue_position"] == 2
    assert history[0]["previous"]["log"] == "scored" and history[0]["previous_status"] == "succeeded"


def test_rescore_refuses_unfinished_and_instructors(client: TestClient, world: World, db: Session) -> None:
    ids = _seed(db, world)
    queued = call(client, "POST", f"/submissions/{ids['hanako_queued']}/rescore", world.admin_token)
    assert_error(queued, 409, "api_rescore_not_finished")
    by_instructor = call(client, "POST", f"/submissions/{ids['hanako_ok']}/rescore", world.instructor_token)
    assert_error(by_instructor, 403, "api_admin_only")
    assert_error(call(client, "POST", "/submissions/99999/rescore", world.admin_token), 404, "api_not_found")


def test_rescore_a_whole_cohort(client: TestClient, world: World, db: Session, enqueued: list[int]) -> None:
    ids = _seed(db, world)
    response = call(client, "POST", f"/cohorts/{world.people.cohort.id}/rescore", world.admin_token)
    assert response.status_code == 200, response.text
    assert sorted(response.json()["queued"]) == sorted([ids["hanako_ok"], ids["hanako_failed"]])
    assert sorted(enqueued) == sorted(response.json()["queued"])
    assert len(db.scalars(select(SubmissionRescore)).all()) == 2
    jiro = db.get(Submission, ids["jiro_ok"])
    assert jiro is not None and jiro.status == SubmissionStatus.SUCCEEDED


def test_leaderboard_json_sorted_filtered_and_scoped(client: TestClient, world: World, db: Session) -> None:
    _seed(db, world)
    path = f"/cohorts/{world.people.cohort.id}/leaderboard"
    board = call(client, "GET", path, world.instructor_token).json()
    assert [(e["name"], e["rank"]) for e in board["items"]] == [("hanako", 1), ("taro", None)]
    assert board["items"][0]["submissions"] == 3 and board["items"][0]["best_accuracy"] == 0.91
    never = call(client, "GET", path + "?standing=never", world.instructor_token).json()
    assert [e["name"] for e in never["items"]] == ["taro"]
    by_name = call(client, "GET", path + "?sort=name&descending=true&per_page=1", world.admin_token).json()
    assert (by_name["total"], by_name["pages"], by_name["items"][0]["name"]) == (2, 2, "taro")
    other = call(client, "GET", f"/cohorts/{world.other_cohort.id}/leaderboard", world.instructor_token)
    assert_error(other, 404, "api_not_found")
    assert_error(call(client, "GET", path + "?sort=nonsense", world.admin_token), 422, "api_invalid_request")
