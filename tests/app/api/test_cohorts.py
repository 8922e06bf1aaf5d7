"""``/api/v1/cohorts``: create, list, read, update, archive, and who may do which."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Cohort
from tests.app.api.conftest import World, assert_error, call

NEW = {
    "name": "dl_tokyo_3",
    "title": "深層学習 東京 3 期",
    "start_date": "2027-01-10",
    "end_date": "2027-03-31",
    "daily_limit": 5,
    "timezone": "Asia/Tokyo",
    "pass_threshold": 0.95,
    "upload_deadline": "2027-03-31T15:00:00Z",
    "leaderboard_visible": True,
}


def test_admin_creates_and_reads_a_cohort(client: TestClient, world: World, db: Session) -> None:
    response = call(client, "POST", "/cohorts", world.admin_token, json=NEW)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "dl_tokyo_3" and body["daily_limit"] == 5 and body["archived"] is False
    stored = db.get(Cohort, body["id"])
    assert stored is not None and stored.pass_threshold == 0.95 and stored.upload_deadline is not None
    assert stored.upload_deadline.hour == 15
    assert call(client, "GET", f"/cohorts/{body['id']}", world.admin_token).json()["title"] == NEW["title"]


def test_create_refuses_bad_values_with_field_details(client: TestClient, world: World) -> None:
    bad = {**NEW, "name": "dl tokyo", "timezone": "Mars/Olympus", "pass_threshold": 1.5, "daily_limit": -1}
    error = assert_error(call(client, "POST", "/cohorts", world.admin_token, json=bad), 422, "api_invalid_request")
    fields = {d["field"] for d in error["details"]}  # type: ignore[union-attr]
    assert {"body.name", "body.timezone", "body.pass_threshold", "body.daily_limit"} <= fields
    reversed_dates = {**NEW, "start_date": "2027-04-01"}
    assert_error(call(client, "POST", "/cohorts", world.admin_token, json=reversed_dates), 422, "api_invalid_request")
    naive = {**NEW, "upload_deadline": "2027-03-31T15:00:00"}
    assert_error(call(client, "POST", "/cohorts", world.admin_token, json=naive), 422, "api_invalid_request")


def test_duplicate_name_is_409(client: TestClient, world: World) -> None:
    error = assert_error(
        call(client, "POST", "/cohorts", world.admin_token, json={"name": "DL_TOKYO_2"}), 409, "api_cohort_name_taken"
    )
    assert "DL_TOKYO_2" in str(error["message_en"])


def test_list_is_paginated_and_instructors_see_only_their_cohorts(client: TestClient, world: World) -> None:
    for i in range(3):
        call(client, "POST", "/cohorts", world.admin_token, json={"name": f"extra_{i}"})
    page = call(client, "GET", "/cohorts?per_page=2&page=2", world.admin_token).json()
    assert page["total"] == 5 and page["pages"] == 3 and page["page"] == 2 and len(page["items"]) == 2
    mine = call(client, "GET", "/cohorts", world.instructor_token).json()
    assert [c["name"] for c in mine["items"]] == ["dl_tokyo_2"]
    assert_error(call(client, "GET", "/cohorts?per_page=1000", world.admin_token), 422, "api_invalid_request")


def test_instructor_cannot_read_another_cohort(client: TestClient, world: World) -> None:
    assert_error(call(client, "GET", f"/cohorts/{world.other_cohort.id}", world.instructor_token), 404, "api_not_found")
    ok = call(client, "GET", f"/cohorts/{world.people.cohort.id}", world.instructor_token)
    assert ok.status_code == 200


def test_update_changes_only_sent_fields(client: TestClient, world: World) -> None:
    cohort_id = world.people.cohort.id
    response = call(
        client, "PATCH", f"/cohorts/{cohort_id}", world.admin_token, json={"daily_limit": 7, "pass_threshold": None}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["daily_limit"] == 7 and body["pass_threshold"] is None and body["name"] == "dl_tokyo_2"
    null_name = call(client, "PATCH", f"/cohorts/{cohort_id}", world.admin_token, json={"name": None})
    assert_error(null_name, 422, "api_invalid_request")
    taken = call(client, "PATCH", f"/cohorts/{cohort_id}", world.admin_token, json={"name": "dl_osaka_1"})
    assert_error(taken, 409, "api_cohort_name_taken")
    reversed_dates = {"start_date": "2027-02-01", "end_date": "2027-01-01"}
    assert_error(
        call(client, "PATCH", f"/cohorts/{cohort_id}", world.admin_token, json=reversed_dates),
        422,
        "api_invalid_request",
    )


def test_instructor_cannot_change_cohorts(client: TestClient, world: World) -> None:
    own = call(client, "PATCH", f"/cohorts/{world.people.cohort.id}", world.instructor_token, json={"daily_limit": 9})
    assert_error(own, 403, "api_admin_only")
    other = call(client, "POST", f"/cohorts/{world.other_cohort.id}/archive", world.instructor_token)
    assert_error(other, 403, "api_admin_only")


def test_archive_and_filter(client: TestClient, world: World) -> None:
    response = call(client, "POST", f"/cohorts/{world.other_cohort.id}/archive", world.admin_token)
    assert response.json()["archived"] is True
    current = call(client, "GET", "/cohorts?archived=false", world.admin_token).json()
    assert [c["name"] for c in current["items"]] == ["dl_tokyo_2"]
    assert_error(call(client, "POST", "/cohorts/999/archive", world.admin_token), 404, "api_not_found")


def test_a_new_cohort_allows_both_runtimes_and_an_admin_limits_it_to_numpy(
    client: TestClient, world: World, db: Session
) -> None:
    created = call(client, "POST", "/cohorts", world.admin_token, json={"name": "dl_keras_1"}).json()
    assert created["runtimes"] == ["numpy", "tensorflow"]
    cohort_id = created["id"]
    limited = call(client, "PATCH", f"/cohorts/{cohort_id}", world.admin_token, json={"runtimes": ["numpy"]})
    assert limited.status_code == 200, limited.text
    assert limited.json()["runtimes"] == ["numpy"]
    stored = db.get(Cohort, cohort_id)
    assert stored is not None
    db.refresh(stored)
    assert stored.runtimes == ["numpy"]
    # Order and repeats do not matter; the list is stored in one order.
    both = call(client, "PATCH", f"/cohorts/{cohort_id}", world.admin_token, json={"runtimes": ["tensorflow", "numpy"]})
    assert both.json()["runtimes"] == ["numpy", "tensorflow"]


def test_runtimes_must_name_known_runtimes_and_keep_numpy(client: TestClient, world: World) -> None:
    cohort_id = world.people.cohort.id
    for bad in (["tensorflow"], ["numpy", "pytorch"], [], None):
        response = call(client, "PATCH", f"/cohorts/{cohort_id}", world.admin_token, json={"runtimes": bad})
        assert_error(response, 422, "api_invalid_request")
    error = assert_error(
        call(client, "POST", "/cohorts", world.admin_token, json={"name": "x1", "runtimes": ["tensorflow"]}),
        422,
        "api_invalid_request",
    )
    assert "numpy" in str(error["details"])
    instructor = call(client, "PATCH", f"/cohorts/{cohort_id}", world.instructor_token, json={"runtimes": ["numpy"]})
    assert_error(instructor, 403, "api_admin_only")
