"""「識別精度の変遷」 to take away: a trainee's history as CSV and as a PNG chart, with the validation
accuracy they measured, the pass line and what they wrote they changed at upload; their own for a
trainee, any of the cohort's trainees for its instructors and admins, nobody else's."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Cohort, Enrollment, Role, Submission, SubmissionStatus
from app.web.history_png import PASS_COLOUR, TEST_COLOUR, VALIDATION_COLOUR
from tests.app.conftest import People, add_user, csrf, login, make_zip


def _upload(client: TestClient, n: int, validation: str, note: str) -> int:
    response = client.post(
        "/upload",
        files={"file": (f"v{n}.zip", make_zip(body=f"# {n}\n".encode()), "application/zip")},
        data={"csrf_token": csrf(client), "validation_accuracy": validation, "change_note": note},
        headers={"Accept": "application/json"},
        follow_redirects=False,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _score(db: Session, sid: int, accuracy: float | None) -> None:
    db.rollback()  # a fresh transaction sees what the app committed
    row = db.get(Submission, sid)
    assert row is not None
    row.status = SubmissionStatus.SUCCEEDED if accuracy is not None else SubmissionStatus.FAILED
    row.accuracy = accuracy
    row.error_code = None if accuracy is not None else "predict_exception"
    db.commit()


def _three(client: TestClient, people: People, db: Session) -> list[int]:
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    cohort.pass_threshold = 0.9
    db.commit()
    login(client, people.trainee.email)
    ids = [
        _upload(client, 1, "0.90", ""),
        _upload(client, 2, "", "=predict の中で / 255 を忘れていた"),  # a note that looks like a formula
        _upload(client, 3, "97.5", "学習率を  0.01 に下げた "),
    ]
    for sid, accuracy in zip(ids, (0.8812, None, 0.9531), strict=True):
        _score(db, sid, accuracy)
    return ids


def _colours(png: bytes) -> set[tuple[int, int, int]]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return {colour for _, colour in image.getcolors(maxcolors=1 << 20) or []}


def test_a_trainee_downloads_their_history_as_csv_and_chart(client: TestClient, people: People, db: Session) -> None:
    ids = _three(client, people, db)
    page = client.get("/submissions").text
    assert 'href="/submissions/history.csv"' in page and 'href="/submissions/history.png"' in page
    assert 'href="/submissions/history.png"' in client.get(f"/submissions/{ids[0]}").text
    result = client.get(f"/submissions/{ids[2]}").text  # the note, on the page and in the chart's table
    assert 'data-testid="result-change-note">学習率を 0.01 に下げた</dd>' in result
    assert "<td>学習率を 0.01 に下げた</td>" in result

    response = client.get("/submissions/history.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert not response.content.startswith(b"\xef\xbb\xbf")  # pandas.read_csv would keep a BOM in a name
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    assert [int(r["submission_id"]) for r in rows] == ids  # oldest first, failures too
    first, failed, last = rows
    assert (first["test_accuracy_percent"], first["validation_accuracy_percent"]) == ("88.12", "90.00")
    assert (failed["status"], failed["test_accuracy_percent"]) == ("failed", "")
    assert failed["change_note"] == "'=predict の中で / 255 を忘れていた"  # stays text in a spreadsheet
    assert (last["test_accuracy_percent"], last["validation_accuracy_percent"]) == ("95.31", "97.50")
    assert last["change_note"] == "学習率を 0.01 に下げた"  # one line, as written
    assert {r["pass_line_percent"] for r in rows} == {"90.00"}
    assert first["submitted_at"].endswith("+09:00")  # the cohort's clock, with its offset

    chart = client.get("/submissions/history.png")
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(chart.content))
    assert image.format == "PNG" and image.width == 1280
    # The test accuracy, the trainee's validation accuracy and the pass line are all drawn.
    assert {TEST_COLOUR, VALIDATION_COLOUR, PASS_COLOUR} <= _colours(chart.content)


def test_the_notes_make_room_below_the_chart(client: TestClient, people: People, db: Session) -> None:
    _three(client, people, db)
    with_notes = Image.open(io.BytesIO(client.get("/submissions/history.png").content))
    db.execute(Submission.__table__.update().values(change_note=""))
    db.commit()
    without = Image.open(io.BytesIO(client.get("/submissions/history.png").content))
    assert with_notes.height > without.height


def test_staff_download_any_trainee_of_their_cohort_and_nobody_else_does(
    client: TestClient, people: People, db: Session
) -> None:
    _three(client, people, db)
    path = f"/cohorts/{people.cohort.id}/trainees/{people.trainee.id}/history"
    client.cookies.clear()
    login(client, people.instructor.email)
    assert f'href="{path}.csv"' in client.get(f"/cohorts/{people.cohort.id}/trainees/{people.trainee.id}").text
    csv_text = client.get(f"{path}.csv").content.decode("utf-8")
    assert csv_text.count("\n") == 4 and "学習率を 0.01 に下げた" in csv_text
    assert client.get(f"{path}.png").headers["content-type"] == "image/png"
    assert client.get("/submissions/history.csv").status_code == 404  # staff have no history of their own
    client.cookies.clear()
    login(client, people.admin.email)
    assert client.get(f"{path}.csv").status_code == 200
    # Another cohort's instructor, and another trainee: "not found", like every page they may not see.
    osaka = Cohort(name="dl_osaka_1", timezone="Asia/Tokyo")
    db.add(osaka)
    other = add_user(db, "osaka-sensei@example.com", Role.INSTRUCTOR)
    db.flush()
    db.add(Enrollment(user_id=other.id, cohort_id=osaka.id, role=Role.INSTRUCTOR))
    db.commit()
    for email in (other.email, people.other_trainee.email):
        client.cookies.clear()
        login(client, email)
        assert client.get(f"{path}.csv").status_code == 404
        assert client.get(f"{path}.png").status_code == 404
    # The instructor's own id is no trainee's history.
    client.cookies.clear()
    login(client, people.instructor.email)
    staff = f"/cohorts/{people.cohort.id}/trainees/{people.instructor.id}/history.csv"
    assert client.get(staff).status_code == 404


def test_a_change_note_longer_than_a_line_is_refused_before_anything_is_spent(
    client: TestClient, people: People, db: Session
) -> None:
    login(client, people.trainee.email)
    response = client.post(
        "/upload",
        files={"file": ("v.zip", make_zip(), "application/zip")},
        data={"csrf_token": csrf(client), "change_note": "長" * 201},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert "200 字まで" in error["message_ja"] and "200 characters" in error["message_en"]
    assert db.scalars(select(Submission)).all() == []
