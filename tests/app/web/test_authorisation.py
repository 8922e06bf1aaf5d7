"""A trainee sees only their own submissions: everyone else's answer 404, exactly like missing ones."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Cohort, Enrollment, Role
from tests.app.conftest import People, add_user, login, make_zip, upload

PAGES = ["/submissions/{id}", "/submissions/{id}/status", "/submissions/{id}/log", "/submissions/{id}/file"]


@pytest.fixture
def hanako_submission(client: TestClient, people: People) -> int:
    login(client, people.trainee.email)
    response = upload(client, make_zip())
    assert response.status_code == 201
    client.cookies.clear()
    return int(response.json()["id"])


@pytest.mark.parametrize("page", PAGES)
def test_another_trainee_gets_404(client: TestClient, people: People, hanako_submission: int, page: str) -> None:
    login(client, people.other_trainee.email)
    theirs = client.get(page.format(id=hanako_submission))
    missing = client.get(page.format(id=999_999))
    assert theirs.status_code == missing.status_code == 404
    # Same page either way (apart from the path echoed in the language switch).
    assert theirs.text.replace(f"/{hanako_submission}", "/N") == missing.text.replace("/999999", "/N")


@pytest.mark.parametrize("page", PAGES)
def test_the_owner_sees_it(client: TestClient, people: People, hanako_submission: int, page: str) -> None:
    login(client, people.trainee.email)
    assert client.get(page.format(id=hanako_submission)).status_code == 200


def test_the_zip_download_is_the_uploaded_file_with_its_name(client: TestClient, people: People) -> None:
    login(client, people.trainee.email)
    data = make_zip()
    sid = upload(client, data, filename="カタカナ提出.zip").json()["id"]
    response = client.get(f"/submissions/{sid}/file")
    assert response.content == data
    assert "filename*=utf-8''%E3%82%AB" in response.headers["content-disposition"]


def test_instructors_see_their_cohorts_only_and_admins_everything(
    client: TestClient, people: People, db: Session, hanako_submission: int
) -> None:
    other_cohort = Cohort(name="dl_osaka_1", title="Osaka")
    db.add(other_cohort)
    outsider = add_user(db, "outsider@example.com", Role.INSTRUCTOR)
    db.add(Enrollment(user_id=outsider.id, cohort_id=other_cohort.id, role=Role.INSTRUCTOR))
    db.commit()
    url = f"/submissions/{hanako_submission}"
    login(client, people.instructor.email)
    assert client.get(url).status_code == 200
    client.cookies.clear()
    login(client, outsider.email)
    assert client.get(url).status_code == 404
    client.cookies.clear()
    login(client, people.admin.email)
    assert client.get(url).status_code == 200


def test_the_list_shows_only_own_submissions(client: TestClient, people: People, hanako_submission: int) -> None:
    login(client, people.other_trainee.email)
    page = client.get("/submissions")
    assert 'data-testid="no-submissions"' in page.text


def test_admin_mail_folder_is_for_admins_only(client: TestClient, people: People) -> None:
    login(client, people.trainee.email)
    assert client.get("/admin/mail").status_code == 404
