"""The result page: live status while waiting, then the scores and charts, or the error in the
user's language with the log tail."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Language, Submission, SubmissionStatus, User
from app.services.rescoring import reset_for_rescore
from scorer.disclosure import RESERVED_BYTES
from tests.app.conftest import People, login, make_zip, upload
from tests.fixtures.html import off_site_references


def _submit(client: TestClient, people: People, validation: str = "") -> int:
    login(client, people.trainee.email)
    return int(upload(client, make_zip(body=validation.encode() + b"\n"), validation=validation).json()["id"])


def test_waiting_submission_shows_its_queue_position(client: TestClient, people: People) -> None:
    first = _submit(client, people, "0.9")
    second = _submit(client, people, "0.8")
    status = client.get(f"/submissions/{second}/status").json()
    assert {k: status[k] for k in ("id", "status", "queue_position", "final", "accuracy", "fingerprint")} == {
        "id": second, "status": "queued", "queue_position": 2, "final": False, "accuracy": None,
        "fingerprint": "queued:2",
    }  # fmt: skip
    assert status["elapsed_s"] >= 0 and status["estimate_s"] is None  # no run has finished yet
    page = client.get(f"/submissions/{second}")
    assert 'data-testid="queue-position" data-position="2"' in page.text
    assert "/static/status.js" in page.text
    assert "<title>採点待ち: 提出 #" in page.text  # the state is in the tab's title
    assert 'data-testid="elapsed"' in page.text and 'data-testid="estimate"' in page.text
    assert client.get(f"/submissions/{first}/status").json()["queue_position"] == 1


def _succeed(db: Session, sid: int, accuracy: float) -> None:
    row = db.get(Submission, sid)
    assert row is not None
    row.status = SubmissionStatus.SUCCEEDED
    row.accuracy, row.correct, row.total, row.loss, row.duration_s = accuracy, 13775, 14500, 0.2345, 42.0
    row.per_class = [{"label": k, "accuracy": 0.9 + i * 0.005} for i, k in enumerate("アイウエオカキクケコサシスセソ")]
    row.confusion = [[90 if r == c else (1 if c == (r + 1) % 15 else 0) for c in range(15)] for r in range(15)]
    row.log = "loading model\nchunk 500\n"
    db.commit()


def test_scored_submission_shows_accuracy_charts_and_overfitting_hint(
    client: TestClient, people: People, db: Session
) -> None:
    first = _submit(client, people, "0.97")
    second = _submit(client, people, "0.99")
    _succeed(db, first, 0.93)
    _succeed(db, second, 0.95)
    page = client.get(f"/submissions/{second}").text
    assert 'data-testid="accuracy" data-value="0.95"' in page
    assert "95.00%" in page and "13775 / 14500" in page
    assert page.count('class="bar"') == 15
    assert 'data-testid="chart-confusion"' in page
    assert page.count('class="cell"') == 225
    assert 'data-testid="chart-history"' in page and page.count("<circle") == 2
    assert "識別精度の変遷" in page
    assert 'data-testid="overfit-hint"' in page and "4.0 ポイント" in page
    assert off_site_references(page) == []  # no CDN
    assert client.get(f"/submissions/{second}/status").json()["final"] is True


def test_failed_submission_shows_the_message_in_the_users_language_and_the_log_tail(
    client: TestClient, people: People, db: Session
) -> None:
    sid = _submit(client, people)
    row = db.get(Submission, sid)
    assert row is not None
    row.status = SubmissionStatus.FAILED
    row.error_code, row.error_blame = "predict_exception", "submission"
    row.result = {"error": {"params": {"reason": "ZeroDivisionError: division by zero"}}}
    row.log = "\n".join(f"line {i}" for i in range(100)) + "\nZeroDivisionError: division by zero"
    db.commit()
    page = client.get(f"/submissions/{sid}").text
    assert "predict の実行中にエラーが起きました（ZeroDivisionError: division by zero）" in page
    assert "line 99" in page and "line 5\n" not in page
    # The trainee's fault spends the upload, and the page says so (the email does too).
    assert 'data-testid="slot-spent"' in page and 'data-testid="slot-returned"' not in page
    assert "提出回数に数えています" in page
    user = db.get(User, people.trainee.id)
    assert user is not None
    user.language = Language.EN
    db.commit()
    page = client.get(f"/submissions/{sid}").text
    assert "An error occurred inside predict (ZeroDivisionError: division by zero)" in page


def test_a_code_example_in_a_message_is_a_monospace_block(client: TestClient, people: People, db: Session) -> None:
    sid = _submit(client, people)
    row = db.get(Submission, sid)
    assert row is not None
    row.status, row.error_code, row.error_blame = SubmissionStatus.FAILED, "legacy_func_predict", "submission"
    row.result = {"error": {"params": {"file": "submit_katakana.py"}}}
    db.commit()
    page = client.get(f"/submissions/{sid}").text
    prose = page.split('data-testid="result-error-message">', 1)[1].split("</p>", 1)[0]
    assert "func_predict" in prose and prose.rstrip().endswith("例:") and "return y.argmax" not in prose
    code = page.split('data-testid="result-error-code"><code>', 1)[1].split("</code>", 1)[0]
    assert code.startswith("def predict(test_data):\n    x = test_data / 255")


def test_server_fault_says_the_slot_was_given_back(client: TestClient, people: People, db: Session) -> None:
    sid = _submit(client, people)
    row = db.get(Submission, sid)
    assert row is not None
    row.status, row.error_code, row.error_blame, row.counts_toward_limit = (
        SubmissionStatus.FAILED,
        "internal_error",
        "server",
        False,
    )
    db.commit()
    page = client.get(f"/submissions/{sid}").text
    assert 'data-testid="slot-returned"' in page and 'data-testid="slot-spent"' not in page
    assert "今日の残り提出回数: 3 / 3 回" in client.get("/upload").text


def test_staff_see_whose_submission_it_is_and_the_way_back(client: TestClient, people: People, db: Session) -> None:
    sid = _submit(client, people)
    row = db.get(Submission, sid)
    assert row is not None
    row.status, row.error_code, row.error_blame = SubmissionStatus.FAILED, "predict_exception", "submission"
    db.commit()
    trainee_view = client.get(f"/submissions/{sid}").text
    assert 'data-testid="result-owner"' not in trainee_view and 'data-testid="error-shown-to"' not in trainee_view
    client.cookies.clear()
    login(client, people.instructor.email)
    page = client.get(f"/submissions/{sid}").text
    name = people.trainee.name
    assert f'data-testid="owner-name">{name}</strong>' in page and f"— {name} ·" in page  # page and tab title
    cohort = people.cohort.id
    assert f'href="/cohorts/{cohort}/trainees/{people.trainee.id}" data-testid="owner-history"' in page
    assert f'href="/cohorts/{cohort}/leaderboard" data-testid="owner-leaderboard"' in page
    # The message written to the trainee is introduced as theirs, not addressed to the instructor.
    assert f"{name} さんには次のメッセージが表示されています" in page


def test_a_rescored_submission_keeps_its_earlier_result_on_the_page(
    client: TestClient, people: People, db: Session
) -> None:
    sid = _submit(client, people)
    _succeed(db, sid, 0.93)
    assert 'data-testid="earlier-results"' not in client.get(f"/submissions/{sid}").text
    row = db.get(Submission, sid)
    assert row is not None
    reset_for_rescore(db, row, requested_by_id=people.admin.id)
    db.commit()
    waiting = client.get(f"/submissions/{sid}").text
    assert 'data-testid="queue-position"' in waiting and waiting.count('data-testid="earlier-result"') == 1
    _succeed(db, sid, 0.95)
    page = client.get(f"/submissions/{sid}").text
    assert 'data-testid="accuracy" data-value="0.95"' in page
    earlier = page[page.index('data-testid="earlier-results"') :]
    assert "93.00%" in earlier and "95.00%" not in earlier and "以前の採点結果" in page


def test_a_hidden_set_log_is_the_excerpt_for_the_trainee_and_the_staff_log_for_instructors(
    client: TestClient, people: People, db: Session
) -> None:
    """A row stored before the bound existed (MBs of log) is still cut for the trainee; the longer
    log kept for staff is served only to an instructor or admin, never to the trainee."""
    sid = _submit(client, people)
    row = db.get(Submission, sid)
    assert row is not None
    row.status = SubmissionStatus.FAILED
    row.error_code, row.error_blame = "predict_exception", "submission"
    row.log = "OLD-START " + "a" * 3_000_000 + " OLD-MIDDLE " + "b" * 3_000_000
    row.result = {"error": {"params": {"reason": "ValueError"}}, "staff_log": "STAFF-ONLY " + "c" * 50_000}
    db.commit()
    page = client.get(f"/submissions/{sid}").text
    download = client.get(f"/submissions/{sid}/log").text
    for text in (page, download):
        assert "OLD-MIDDLE" not in text and "STAFF-ONLY" not in text
    # The download opens with the run's facts (ours), then the output (the trainee's): only the latter is bounded.
    output = download.split("\n--- ", 1)[1].split("\n", 1)[1]
    assert len(output.encode()) <= 2048 + RESERVED_BYTES and "python -m scorer run" in output
    assert len(page.encode()) < 40_000
    client.cookies.clear()
    login(client, people.instructor.email)
    staff = client.get(f"/submissions/{sid}/log").text
    assert "\nSTAFF-ONLY" in staff and len(staff) > 50_000


def test_the_page_and_the_log_name_the_runtime_that_ran_it(client: TestClient, people: People, db: Session) -> None:
    sid = _submit(client, people)
    _succeed(db, sid, 0.93)
    row = db.get(Submission, sid)
    assert row is not None
    row.runtime = {
        "name": "tensorflow",
        "python": "3.11.2",
        "numpy": "2.3.5",
        "tensorflow": "2.21.0",
        "keras": "3.15.1",
    }
    db.commit()
    page = client.get(f"/submissions/{sid}").text
    named = "TensorFlow + Keras (Python 3.11.2, TensorFlow 2.21.0, Keras 3.15.1, NumPy 2.3.5)"
    assert f'<dt>採点環境</dt><dd data-testid="result-runtime">{named}</dd>' in page
    assert f"採点環境: {named}" in client.get(f"/submissions/{sid}/log").text
    row.runtime = {"python": "3.11.2", "numpy": "2.3.5", "scipy": "1.16.3"}  # scored before there were two
    db.commit()
    assert (
        '<dd data-testid="result-runtime">NumPy (Python 3.11.2, NumPy 2.3.5)</dd>'
        in client.get(f"/submissions/{sid}").text
    )
    assert "採点環境: NumPy (Python 3.11.2, NumPy 2.3.5, scipy 1.16.3)" in client.get(f"/submissions/{sid}/log").text


def test_long_poll_answers_at_once_when_the_page_is_behind_and_waits_when_it_is_not(
    client: TestClient, people: People, db: Session
) -> None:
    sid = _submit(client, people)
    # The page shows an older state: the answer comes back without waiting, with the new one.
    behind = client.get(f"/submissions/{sid}/status", params={"known": "running:", "wait": 25}).json()
    assert behind["fingerprint"] == "queued:1"
    # The page is up to date and nothing changes: it answers with the same state once ``wait`` ends.
    same = client.get(f"/submissions/{sid}/status", params={"known": "queued:1", "wait": 0.3}).json()
    assert same["fingerprint"] == "queued:1" and same["final"] is False


def test_long_poll_returns_the_result_stored_while_it_waits(client: TestClient, people: People, db: Session) -> None:
    """The worker stores the result while the page's request is held: the request answers with it."""
    import threading

    sid = _submit(client, people)
    done = threading.Event()
    answer: dict[str, object] = {}

    def wait_for_result() -> None:
        answer.update(client.get(f"/submissions/{sid}/status", params={"known": "queued:1", "wait": 25}).json())
        done.set()

    thread = threading.Thread(target=wait_for_result)
    thread.start()
    _succeed(db, sid, 0.91)
    thread.join(timeout=60)
    assert done.is_set()
    assert answer["status"] == "succeeded" and answer["final"] is True and answer["accuracy"] == 0.91


def test_estimate_is_the_median_of_recent_runs(client: TestClient, people: People, db: Session) -> None:
    import datetime as dt

    people.cohort.daily_limit = 10
    db.commit()
    first, second, third, waiting = (_submit(client, people) for _ in range(4))
    for sid, seconds in ((first, 10), (second, 30), (third, 400)):
        row = db.get(Submission, sid)
        assert row is not None
        row.status = SubmissionStatus.SUCCEEDED
        row.started_at = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
        row.finished_at = row.started_at + dt.timedelta(seconds=seconds)
    db.commit()
    status = client.get(f"/submissions/{waiting}/status").json()
    assert status["estimate_s"] == 30  # the median: one runaway run does not drag it
    assert "30秒" in client.get(f"/submissions/{waiting}").text


def test_the_wait_follows_the_fair_order_and_is_never_zero_seconds(
    client: TestClient, people: People, db: Session
) -> None:
    """Hanako uploads twice, Taro once: Taro's first upload is scored before Hanako's second, and
    the wait is the runs ahead × a run (a recent one took 0.3 s: "1 s", never "0 s")."""
    import datetime as dt

    first, second = _submit(client, people), _submit(client, people)
    client.cookies.clear()
    login(client, people.other_trainee.email)
    answer = upload(client, make_zip(body=b"# taro\n")).json()
    taro = int(answer["id"])
    # The upload's answer already says where it stands: before Hanako's second upload.
    assert (answer["status"], answer["queue_position"], answer["runs_ahead"]) == ("queued", 2, 1)
    assert answer["wait_s"] is None  # no run has finished yet: nothing to measure a run by
    quick = Submission(
        user_id=people.other_trainee.id, cohort_id=people.cohort.id, status=SubmissionStatus.FAILED,
        created_at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC), quota_day=dt.date(2026, 11, 20),
        original_filename="quick.zip", zip_sha256="0" * 64, zip_size=1, storage_key="k",
        started_at=dt.datetime(2026, 11, 20, 1, tzinfo=dt.UTC),
        finished_at=dt.datetime(2026, 11, 20, 1, 0, 0, 300_000, tzinfo=dt.UTC),
    )  # fmt: skip
    db.add(quick)
    db.commit()
    assert client.get(f"/submissions/{taro}/status").json()["queue_position"] == 2
    client.cookies.clear()
    login(client, people.trainee.email)
    assert client.get(f"/submissions/{first}/status").json()["queue_position"] == 1
    status = client.get(f"/submissions/{second}/status").json()
    # No worker can be asked here (no Redis): one is assumed for the wait, and not claimed as seen.
    assert {k: status[k] for k in ("queue_position", "runs_ahead", "estimate_s", "wait_s", "scoring_workers")} == {
        "queue_position": 3, "runs_ahead": 2, "estimate_s": 1.0, "wait_s": 3.0, "scoring_workers": None,
    }  # fmt: skip
    page = client.get(f"/submissions/{second}").text
    assert "採点待ちです（3 番目）" in page
    assert "結果はおよそ 3秒 後の見込みです（前に 2 件 × 1 件およそ 1秒 ÷ 採点ワーカー 1）" in page
    assert "0秒" not in page.replace("経過 0秒", "")  # only the elapsed time may start at 0
