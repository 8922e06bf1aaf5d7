"""People: create and invite, bulk-enrol from CSV, enrol and assign instructors, move, deactivate, grants."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Cohort, EmailOutbox, Enrollment, PasswordToken, Role, TokenPurpose, User, UserSession
from app.services.quota import quota_status
from app.settings import Settings
from tests.app.api.conftest import World, assert_error, call
from tests.app.conftest import Clock, login

CSV = "\ufeffname,email,role\n山田 花子,Yamada@Example.com,trainee\n鈴木 先生,suzuki@example.com,instructor\n"


def test_create_user_sends_the_sites_invitation(
    client: TestClient, world: World, db: Session, delivered: list[int]
) -> None:
    body = {"email": "New@Example.com", "name": "新人 太郎", "role": "trainee", "language": "en"}
    response = call(client, "POST", "/users", world.admin_token, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["email"] == "new@example.com" and created["has_password"] is False
    mail = db.scalars(select(EmailOutbox).where(EmailOutbox.to_address == "new@example.com")).one()
    assert "/password/set?token=" in mail.body_text and mail.subject == "[Katakana recognition] Your account"
    assert delivered == [mail.id]
    token = db.scalars(select(PasswordToken).where(PasswordToken.user_id == created["id"])).one()
    assert token.purpose == TokenPurpose.INVITE
    again = call(client, "POST", "/users", world.admin_token, json=body)
    assert_error(again, 409, "api_email_taken")
    bad = call(client, "POST", "/users", world.admin_token, json={**body, "email": "not-an-email"})
    assert_error(bad, 422, "api_invalid_request")


def test_list_and_read_users(client: TestClient, world: World) -> None:
    listed = call(client, "GET", f"/users?cohort_id={world.other_cohort.id}", world.admin_token).json()
    assert {u["email"] for u in listed["items"]} == {"osaka-sensei@example.com", "jiro@example.com"}
    instructors = call(client, "GET", "/users?role=instructor&q=SENSEI", world.admin_token).json()
    assert {u["email"] for u in instructors["items"]} == {"sensei@example.com", "osaka-sensei@example.com"}
    one = call(client, "GET", f"/users/{world.other_trainee.id}", world.admin_token).json()
    assert one["name"] == "jiro"
    assert_error(call(client, "GET", "/users/9999", world.admin_token), 404, "api_not_found")


def test_bulk_enrol_from_csv(
    client: TestClient, world: World, db: Session, delivered: list[int], settings: Settings
) -> None:
    cohort_id = world.people.cohort.id
    body = {"csv": CSV + "hanako,hanako@example.com,\n"}
    response = call(client, "POST", f"/cohorts/{cohort_id}/enrollments/import", world.admin_token, json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["enrolled"], result["unchanged"], result["invited"]) == (2, 2, 1, 2)
    yamada = db.scalars(select(User).where(User.email == "yamada@example.com")).one()
    suzuki = db.scalars(select(User).where(User.email == "suzuki@example.com")).one()
    assert yamada.name == "山田 花子" and suzuki.role == Role.INSTRUCTOR
    assert db.get(Enrollment, (suzuki.id, cohort_id)).role == Role.INSTRUCTOR  # type: ignore[union-attr]
    mails = db.scalars(select(EmailOutbox).where(EmailOutbox.idempotency_key.like("invite:%"))).all()
    assert sorted(m.to_address for m in mails) == ["suzuki@example.com", "yamada@example.com"]
    yamada_mail = next(m.body_text for m in mails if m.to_address == "yamada@example.com")
    assert "山田 花子 さん" in yamada_mail
    # The invitation names the cohort, says where to log in, and lives long enough (default 7 days).
    cohort = db.get(Cohort, cohort_id)
    assert cohort is not None and f"「{cohort.title or cohort.name}」" in yamada_mail
    assert f"{settings.base_url}/login から" in yamada_mail
    assert "7 日間有効" in yamada_mail
    token = db.scalars(select(PasswordToken).where(PasswordToken.user_id == yamada.id)).one()
    assert token.expires_at - token.created_at == dt.timedelta(days=7)
    assert sorted(delivered) == sorted(m.id for m in mails)


def test_bad_csv_line_changes_nothing(client: TestClient, world: World, db: Session) -> None:
    body = {"csv": CSV + "Bad,bad@example.com,admin\n,not-an-email,trainee\nAgain,yamada@example.com,\nshort\n"}
    response = call(
        client, "POST", f"/cohorts/{world.people.cohort.id}/enrollments/import", world.admin_token, json=body
    )
    error = assert_error(response, 422, "api_csv_invalid")
    # Every bad line is reported at once, with its number, in both languages.
    details = error["details"]
    assert isinstance(details, list)
    assert [(d["line"], d["code"]) for d in details] == [
        (4, "role"), (5, "name"), (5, "email"), (6, "duplicate"), (7, "columns")
    ]  # fmt: skip
    assert "line 4" in str(error["message_en"]) and "admin" in str(error["message_en"])
    assert "line 7" in str(error["message_en"]) and "5 problem(s)" in str(error["message_en"])
    assert "6 行目" in str(error["message_ja"]) and "2 行目と重複" in str(error["message_ja"])
    assert "line" not in str(error["message_ja"])  # Japanese only, no English fragments
    assert db.scalar(select(User).where(User.email == "yamada@example.com")) is None
    header = call(client, "POST", f"/cohorts/{world.people.cohort.id}/enrollments/import", world.admin_token,
                  json={"csv": "email,name\nx@example.com,X\n"})  # fmt: skip
    assert_error(header, 422, "api_csv_invalid")


def test_the_csv_may_give_each_persons_reading(client: TestClient, world: World, db: Session) -> None:
    path = f"/cohorts/{world.people.cohort.id}/enrollments/import"
    body = {"csv": "name,email,reading,role\n山田 花子,yamada@example.com,やまだ はなこ,\n"
            "jiro,jiro@example.com,ジロウ,trainee\n"}  # fmt: skip
    response = call(client, "POST", path, world.admin_token, json=body)
    assert response.status_code == 200, response.text
    db.rollback()  # a fresh transaction sees what the app committed
    yamada = db.scalars(select(User).where(User.email == "yamada@example.com")).one()
    assert yamada.reading == "ヤマダ ハナコ"  # stored in katakana
    jiro = db.scalar(select(User.reading).where(User.id == world.other_trainee.id))
    assert jiro == "ジロウ"  # already there: the line gives the reading
    bad = call(client, "POST", path, world.admin_token, json={"csv": "name,email,reading\n山田,y2@example.com,山田\n"})
    error = assert_error(bad, 422, "api_csv_invalid")
    assert [(d["line"], d["code"]) for d in error["details"]] == [(2, "reading")]  # type: ignore[index]
    assert "かなで書いて" in str(error["message_ja"]) and "in kana" in str(error["message_en"])
    header = call(client, "POST", path, world.admin_token, json={"csv": "name,email,furigana\nA,a@example.com,ア\n"})
    assert_error(header, 422, "api_csv_invalid")


def test_the_api_reads_and_writes_the_reading(client: TestClient, world: World) -> None:
    body = {"email": "kana@example.com", "name": "仮名 太郎", "reading": "かな たろう", "send_invite": False}
    created = call(client, "POST", "/users", world.admin_token, json=body).json()
    assert created["reading"] == "カナ タロウ"
    assert call(client, "GET", "/users?q=かな", world.admin_token).json()["items"][0]["id"] == created["id"]
    changed = call(client, "PATCH", f"/users/{created['id']}", world.admin_token, json={"reading": "カナ"}).json()
    assert changed["reading"] == "カナ"
    wrong = call(client, "PATCH", f"/users/{created['id']}", world.admin_token, json={"reading": "kana"})
    assert_error(wrong, 422, "api_invalid_request")


def test_enrolments_list_and_instructor_boundaries(client: TestClient, world: World) -> None:
    cohort_id = world.people.cohort.id
    listed = call(client, "GET", f"/cohorts/{cohort_id}/enrollments?role=trainee", world.instructor_token).json()
    assert {e["email"] for e in listed["items"]} == {"hanako@example.com", "taro@example.com"}
    other = call(client, "GET", f"/cohorts/{world.other_cohort.id}/enrollments", world.instructor_token)
    assert_error(other, 404, "api_not_found")
    enrol = call(client, "POST", f"/cohorts/{cohort_id}/enrollments", world.instructor_token,
                 json={"user_id": world.other_trainee.id})  # fmt: skip
    assert_error(enrol, 403, "api_admin_only")


def test_assign_instructor_and_remove(client: TestClient, world: World, db: Session) -> None:
    cohort_id = world.other_cohort.id
    response = call(client, "POST", f"/cohorts/{cohort_id}/enrollments", world.admin_token,
                    json={"user_id": world.people.instructor.id, "role": "instructor"})  # fmt: skip
    assert response.status_code == 200 and response.json()["role"] == "instructor"
    # Now the first instructor teaches Osaka too.
    assert call(client, "GET", f"/cohorts/{cohort_id}", world.instructor_token).status_code == 200
    removed = call(
        client, "DELETE", f"/cohorts/{cohort_id}/enrollments/{world.people.instructor.id}", world.admin_token
    )
    assert removed.status_code == 204
    assert_error(call(client, "GET", f"/cohorts/{cohort_id}", world.instructor_token), 404, "api_not_found")
    admin_role = call(client, "POST", f"/cohorts/{cohort_id}/enrollments", world.admin_token,
                      json={"user_id": world.people.instructor.id, "role": "admin"})  # fmt: skip
    assert_error(admin_role, 422, "api_invalid_request")


def test_move_trainee_between_cohorts(client: TestClient, world: World, db: Session) -> None:
    trainee = world.people.trainee
    body = {"to_cohort_id": world.other_cohort.id, "from_cohort_id": world.people.cohort.id}
    assert call(client, "POST", f"/users/{trainee.id}/move", world.admin_token, json=body).status_code == 200
    roles = {e.cohort_id for e in db.scalars(select(Enrollment).where(Enrollment.user_id == trainee.id))}
    assert roles == {world.other_cohort.id}
    not_trainee = call(client, "POST", f"/users/{world.people.instructor.id}/move", world.admin_token, json=body)
    assert_error(not_trainee, 409, "api_not_trainee")


def test_deactivate_ends_sessions(client: TestClient, world: World, db: Session) -> None:
    login(client, world.people.trainee.email)
    assert db.scalar(select(UserSession).where(UserSession.user_id == world.people.trainee.id)) is not None
    client.cookies.clear()
    response = call(client, "POST", f"/users/{world.people.trainee.id}/deactivate", world.admin_token)
    assert response.status_code == 200 and response.json()["is_active"] is False
    db.rollback()  # a fresh snapshot: the API committed in its own session
    assert db.scalar(select(UserSession).where(UserSession.user_id == world.people.trainee.id)) is None
    self_off = call(client, "POST", f"/users/{world.people.admin.id}/deactivate", world.admin_token)
    assert_error(self_off, 409, "api_cannot_demote_self")
    patch = call(
        client, "PATCH", f"/users/{world.other_trainee.id}", world.admin_token, json={"name": "次郎", "language": "en"}
    )
    assert patch.json()["name"] == "次郎" and patch.json()["language"] == "en"


def test_grant_adds_to_that_days_limit(client: TestClient, world: World, db: Session, clock: Clock) -> None:
    trainee = world.people.trainee
    response = call(client, "POST", f"/users/{trainee.id}/grants", world.instructor_token,
                    json={"extra": 2, "reason": "採点サーバーの不具合"})  # fmt: skip
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["limit"] == 5 and result["used"] == 0
    cohort = db.get(Cohort, world.people.cohort.id)
    assert cohort is not None
    assert quota_status(db, trainee.id, cohort, clock()).limit == 5
    tomorrow = clock() + dt.timedelta(days=1)
    assert quota_status(db, trainee.id, cohort, tomorrow).limit == 3
    listed = call(client, "GET", f"/users/{trainee.id}/grants", world.admin_token).json()
    assert [g["extra"] for g in listed["items"]] == [2]


def test_instructor_cannot_grant_outside_their_cohorts(client: TestClient, world: World) -> None:
    other = call(client, "POST", f"/users/{world.other_trainee.id}/grants", world.instructor_token, json={"extra": 1})
    assert_error(other, 404, "api_not_found")
    explicit = call(client, "POST", f"/users/{world.other_trainee.id}/grants", world.instructor_token,
                    json={"extra": 1, "cohort_id": world.people.cohort.id})  # fmt: skip
    assert_error(explicit, 404, "api_not_found")
    too_many = call(client, "POST", f"/users/{world.people.trainee.id}/grants", world.admin_token, json={"extra": 51})
    assert_error(too_many, 422, "api_invalid_request")
