"""Instructor pages: where staff land, the cohort list's figures, 未提出 as its own state, the log
download of a quiet successful run, and the bulk zip of a cohort's submissions (who may take it,
what it holds, and that it is streamed)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Cohort, Enrollment, Role, Submission, SubmissionStatus, User
from app.services import bulk_zip
from app.services.storage import path_for
from app.settings import Settings
from tests.app.api.conftest import T0, add_submission
from tests.app.conftest import PASSWORD, People, add_user, login

H = dt.timedelta(hours=1)


def _store(settings: Settings, submission: Submission, content: bytes) -> None:
    """Give a submission its own stored zip (the fixture rows share one storage key)."""
    submission.storage_key = f"zips/{submission.id:02d}/{submission.id}.zip"
    assert settings.storage_dir is not None
    path = path_for(settings.storage_dir, submission.storage_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.fixture
def cohort(db: Session, people: People, settings: Settings) -> Cohort:
    """hanako: 0.90, then best 0.96, then latest 0.93; taro: one failure; 未提出: nothing."""
    found = db.get(Cohort, people.cohort.id)
    assert found is not None
    found.pass_threshold = 0.95
    found.upload_deadline = dt.datetime(2026, 12, 24, 14, 59, tzinfo=dt.UTC)
    never = add_user(db, "never@example.com")
    never.name = "未提出 花子"
    db.add(Enrollment(user_id=never.id, cohort_id=found.id, role=Role.TRAINEE))
    rows = [
        add_submission(db, people.trainee, found, accuracy=0.90, at=T0),
        add_submission(db, people.trainee, found, accuracy=0.96, at=T0 + H),
        add_submission(db, people.trainee, found, accuracy=0.93, at=T0 + 2 * H),
        add_submission(db, people.other_trainee, found, status=SubmissionStatus.FAILED, at=T0),
    ]
    for row in rows:
        _store(settings, row, f"zip of submission {row.id}".encode())
    db.commit()
    return found


def _sign_in(client: TestClient, email: str, **extra: str) -> str:
    client.cookies.clear()
    client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": client.cookies["katakana_csrf"], **extra},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


def test_staff_land_on_their_cohorts_and_trainees_on_the_upload_page(client: TestClient, people: People) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"  # no destination fixed
    for email, landing in (
        (people.instructor.email, "/cohorts"),
        (people.admin.email, "/cohorts"),
        (people.trainee.email, "/upload"),
    ):
        assert _sign_in(client, email) == landing, email
        assert client.get("/", follow_redirects=False).headers["location"] == landing, email
        assert client.get("/login", follow_redirects=False).headers["location"] == landing, email
    # An explicit destination (a link followed before signing in) still wins.
    assert _sign_in(client, people.instructor.email, next="/submissions") == "/submissions"


def test_cohort_list_shows_the_figures(client: TestClient, people: People, cohort: Cohort) -> None:
    login(client, people.instructor.email)
    page = client.get("/cohorts").text
    row = page[page.index(f'data-cohort-id="{cohort.id}"') :]
    assert '<td class="num" data-testid="cohort-trainees">3</td>' in row
    assert '<td class="num" data-testid="cohort-submitted">2</td>' in row
    assert '<td class="num" data-testid="cohort-passed">1</td>' in row
    assert "96.00% / 96.00%" in row  # best / median of the trainees' best scores
    assert "2026-12-24 23:59 JST" in row  # the deadline, on the cohort's clock with its zone as pages write it


def test_never_submitted_is_a_neutral_state_of_its_own(client: TestClient, people: People, cohort: Cohort) -> None:
    login(client, people.instructor.email)
    page = client.get(f"/cohorts/{cohort.id}/leaderboard").text
    never = page[page.index("未提出 花子") :]
    never = never[: never.index("</tr>")]
    assert '<span class="standing-never">未提出</span>' in never and "未達" not in never and "fail" not in never
    taro = page[page.index(">taro<") :]
    assert '<span class="fail">未達</span>' in taro[: taro.index("</tr>")]  # submitted, not passed


def test_log_download_of_a_quiet_success_states_the_facts(
    client: TestClient, people: People, cohort: Cohort, db: Session
) -> None:
    quiet = add_submission(db, people.trainee, cohort, accuracy=0.9615, at=T0 + 3 * H, log=None)
    quiet.correct, quiet.total, quiet.duration_s = 13942, 14500, 4.2
    quiet.result = {"status": "succeeded", "testset": {"id": 1, "version": "2026-11", "sha256": "x"}}
    db.commit()
    login(client, people.trainee.email)
    response = client.get(f"/submissions/{quiet.id}/log")
    text = response.text
    # Durations in the page's words (秒, not "s"), times with the zone as pages write it (JST).
    assert text.strip() and "96.15% (13942 / 14500)" in text and "2026-11" in text and "4.2 秒" in text
    assert "何も出力しませんでした" in text and " JST" in text and "(Asia/Tokyo)" not in text
    # Whose log it is, in the file and in its name.
    trainee = f"{people.trainee.name} <{people.trainee.email}>"
    assert f"受講生: {trainee}" in text
    disposition = response.headers["content-disposition"]
    assert f"filename*=UTF-8''submission-{quiet.id}-{people.trainee.name}.log" in disposition
    loud = add_submission(db, people.trainee, cohort, accuracy=0.5, at=T0 + 4 * H, log="epoch 1 done\n")
    db.commit()
    assert "epoch 1 done" in client.get(f"/submissions/{loud.id}/log").text


def _zip(client: TestClient, cohort_id: int, which: str = "best") -> zipfile.ZipFile:
    response = client.get(f"/cohorts/{cohort_id}/submissions.zip?which={which}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    assert "content-length" not in response.headers  # streamed, not assembled first
    return zipfile.ZipFile(io.BytesIO(response.content))


def test_bulk_zip_holds_each_trainees_best_or_latest(
    client: TestClient, people: People, cohort: Cohort, db: Session
) -> None:
    login(client, people.instructor.email)
    ids = sorted(s.id for s in db.query(Submission).filter(Submission.user_id == people.trainee.id))
    first, best, latest = ids
    archive = _zip(client, cohort.id)
    names = archive.namelist()
    assert names[0] == "index.csv" and len(names) == 2  # taro only failed; 未提出 has nothing
    [member] = names[1:]
    assert member.startswith(f"hanako_{people.trainee.id}/{best}_")
    assert archive.read(member) == f"zip of submission {best}".encode()
    index = list(csv.reader(io.StringIO(archive.read("index.csv").decode("utf-8-sig"))))
    assert index[0][:6] == ["user_id", "name", "reading", "email", "submission_id", "accuracy"]
    by_name = {row[1]: row for row in index[1:]}
    assert by_name["hanako"][5] == "96.00%" and by_name["hanako"][7] == member
    assert by_name["未提出 花子"][4] == "" and by_name["taro"][4] == ""
    # The member is dated on the cohort's clock, as index.csv writes the time (a zip has no zone).
    stored = archive.getinfo(member).date_time
    assert f"{stored[0]:04d}-{stored[1]:02d}-{stored[2]:02d} {stored[3]:02d}:{stored[4]:02d}" == by_name["hanako"][6]
    archive = _zip(client, cohort.id, "latest")
    assert archive.read(archive.namelist()[1]) == f"zip of submission {latest}".encode()
    assert first not in (best, latest)


def test_bulk_zip_is_for_the_cohorts_instructors_and_admins_only(
    client: TestClient, people: People, cohort: Cohort, db: Session
) -> None:
    other = add_user(db, "osaka-sensei@example.com", Role.INSTRUCTOR)
    osaka = Cohort(name="dl_osaka_1", timezone="Asia/Tokyo")
    db.add(osaka)
    db.flush()
    db.add(Enrollment(user_id=other.id, cohort_id=osaka.id, role=Role.INSTRUCTOR))
    db.commit()
    path = f"/cohorts/{cohort.id}/submissions.zip"
    login(client, other.email)  # teaches another cohort
    assert client.get(path).status_code == 404
    client.cookies.clear()
    login(client, people.trainee.email)
    assert client.get(path).status_code == 404
    client.cookies.clear()
    assert client.get(path, follow_redirects=False).status_code in (302, 303)  # signed out: to the login
    login(client, people.admin.email)
    assert client.get(path).status_code == 200
    client.cookies.clear()
    login(client, people.instructor.email)
    assert client.get(path).status_code == 200
    assert client.get(path + "?which=everything").status_code == 422


def test_the_zip_is_written_in_chunks_never_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.zip"
    big.write_bytes(bytes(range(256)) * (4 * bulk_zip.CHUNK // 256))  # 4 MiB
    members = [bulk_zip.Member(i, "花子", "h@example.com", None, big, f"花子_{i}/1_big.zip") for i in (1, 2)]
    chunks = list(bulk_zip.stream_zip(members, b"index"))
    assert max(len(c) for c in chunks) <= bulk_zip.CHUNK + 4096  # one block and a header at most
    data = b"".join(chunks)
    assert len(data) > 8 * bulk_zip.CHUNK
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.read("index.csv") == b"index" and len(archive.namelist()) == 3


def test_user_names_cannot_escape_the_zip_folder(
    db: Session, people: People, cohort: Cohort, settings: Settings
) -> None:
    user = db.get(User, people.trainee.id)
    assert user is not None
    user.name = "../../etc/passwd"
    db.commit()
    assert settings.storage_dir is not None
    [member] = [m for m in bulk_zip.members(db, cohort, bulk_zip.Which.BEST, settings.storage_dir) if m.path]
    folder, _name = member.arcname.split("/")
    assert folder == f"_.._etc_passwd_{user.id}"


def test_the_index_keeps_a_formula_name_as_text(
    client: TestClient, people: People, cohort: Cohort, db: Session
) -> None:
    user = db.get(User, people.trainee.id)
    assert user is not None
    user.name = '=HYPERLINK("http://evil.example","open")'
    db.commit()
    login(client, people.instructor.email)
    index = list(csv.reader(io.StringIO(_zip(client, cohort.id).read("index.csv").decode("utf-8-sig"))))
    [row] = [row for row in index if row[0] == str(user.id)]
    assert row[1] == "'" + user.name  # a spreadsheet shows it as text
    assert row[7].startswith("'=HYPERLINK") and row[7].endswith(".zip")  # the file's folder starts with the name
    assert all(not cell.startswith(("=", "+", "-", "@")) for line in index for cell in line)
