"""Each role's main path in a real browser (Debian Chromium via Playwright), at desktop (1366×768)
and phone (390×844) size, against a live uvicorn on a real database.

Every page on the way is screenshotted (the folder is printed at the end of the run; see
tests/fixtures/browser.py), must be no wider than the screen, and must pass axe-core's WCAG 2.1 AA
rules. The worker's part — storing a result — is done here by writing the row as the worker does,
so the page's live update is what is being watched (the worker itself is tested in tests/worker
and, with this page, in tests/e2e).
"""

from __future__ import annotations

import datetime as dt
import email.message
import email.utils
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Submission, SubmissionStatus, UploadGrant
from app.services.quota import quota_day
from scorer.classes import KATAKANA
from tests.app.conftest import PASSWORD, People, make_zip
from tests.app.web.test_live_server import LiveServer, live_server  # noqa: F401 - a fixture
from tests.fixtures.browser import VIEWPORTS, check_page, log_in_page, new_context

pytestmark = [pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
LONG_DETAIL = (
    "submit_katakana.py（12 行目）に文法エラーがあります: invalid syntax "
    "(/submission/my_very_long_folder_name_without_any_spaces/submit_katakana_final_version_2.py, "
    "line 12: def predict(test_data)->np.ndarray:::::::::::::::::::::::::::::::::::::::::::::::::)。"
    "手元で実行してエラーが出ないことを確かめてから提出してください。"
)


@pytest.fixture(params=sorted(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> str:
    """Every test here runs once per screen size (desktop 1366×768, phone 390×844)."""
    return str(request.param)


SignedIn = Callable[[str], Page]


@pytest.fixture
def signed_in(
    browser: Browser,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    viewport: str,
) -> Iterator[SignedIn]:
    """``signed_in(email)``: a page at this test's screen size, logged in as that person through the
    real form; its browser context is closed after the test, passed or failed."""
    contexts: list[BrowserContext] = []

    def open_page(email: str) -> Page:
        context = new_context(browser, viewport)
        contexts.append(context)
        page = context.new_page()
        log_in_page(page, live_server.url, email, PASSWORD)
        return page

    yield open_page
    for context in contexts:
        context.close()


def store_result(db: Session, sid: int, accuracy: float, *, started: dt.datetime) -> None:
    """What the worker writes when a run succeeds."""
    db.commit()  # a fresh transaction: see what the server wrote since
    row = db.get(Submission, sid)
    assert row is not None
    per_class = [round(accuracy - 0.06 + (i % 5) * 0.025, 4) for i in range(15)]
    row.status = SubmissionStatus.SUCCEEDED
    row.accuracy, row.correct, row.total, row.loss = accuracy, int(accuracy * 14500), 14500, 0.2345
    row.started_at, row.finished_at, row.duration_s = started, started + dt.timedelta(seconds=41), 40.2
    row.per_class = [{"label": k, "accuracy": v} for k, v in zip(KATAKANA, per_class, strict=True)]
    count = [1300] * 5 + [800] * 10
    right = [round(n * p) for n, p in zip(count, per_class, strict=True)]
    row.confusion = [
        [right[r] if r == c else (count[r] - right[r] if c == (r + 3) % 15 else 0) for c in range(15)]
        for r in range(15)
    ]
    row.log = "loaded katakana_model.pickle\n"
    db.commit()


def set_status(db: Session, sid: int, status: SubmissionStatus) -> None:
    db.commit()  # a fresh transaction: see what the server wrote since
    row = db.get(Submission, sid)
    assert row is not None
    row.status = status
    row.started_at = dt.datetime.now(dt.UTC)
    db.commit()


def test_trainee_main_path(
    signed_in: SignedIn,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    people: People,
    db: Session,
    tmp_path: Path,
    artefacts: Path,
) -> None:
    people.cohort.daily_limit = 3
    people.cohort.pass_threshold = 0.9
    today = quota_day(dt.datetime.now(dt.UTC), "Asia/Tokyo")
    db.add(UploadGrant(user_id=people.trainee.id, day=today, extra=3, reason="サーバー障害の補填"))
    db.commit()
    # Two earlier scored uploads, so the history has a course to show.
    client = live_server.client(people.trainee.email)
    for n, accuracy in ((1, 0.81), (2, 0.88)):
        sent = client.post(
            "/upload",
            files={"file": (f"v{n}.zip", make_zip(), "application/zip")},
            data={"csrf_token": client.cookies["katakana_csrf"]},
            headers={"Accept": "application/json"},
        )
        assert sent.status_code == 201, sent.text
        store_result(db, sent.json()["id"], accuracy, started=dt.datetime.now(dt.UTC))
    client.close()
    page = signed_in(people.trainee.email)
    page.goto(f"{live_server.url}/upload")
    expect(page).to_have_title("提出する · カタカナ識別 提出・自動採点")
    # The contract is on the page, with the runtime's real versions and what is not there.
    expect(page.get_by_test_id("contract-signature")).to_have_text("predict(test_data)")
    expect(page.get_by_test_id("runtime-versions")).to_contain_text("NumPy")
    expect(page.get_by_test_id("contract-unavailable")).to_contain_text("PyTorch")
    expect(page.get_by_test_id("contract-check")).to_contain_text("python -m scorer check")
    expect(page.get_by_test_id("template-1")).to_be_in_viewport()  # templates at the top
    # Standing: the limit of 6 is explained by the grant.
    expect(page.get_by_test_id("quota-remaining")).to_contain_text("4 / 6")
    expect(page.get_by_test_id("quota-grant")).to_contain_text("サーバー障害の補填")
    check_page(page, artefacts, "1-upload")

    # Submitting with no file says so, focused and in view.
    page.get_by_test_id("upload-submit").click()
    error = page.get_by_test_id("upload-error")
    expect(error).to_contain_text("ファイルが選ばれていません")
    expect(error).to_be_focused()
    archive = tmp_path / "katakana.zip"
    archive.write_bytes(make_zip())

    # A dropped connection is reported as one, not as a too-large file.
    def drop(route: Route) -> None:
        route.abort("connectionreset") if route.request.method == "POST" else route.continue_()

    page.route("**/upload", drop)
    page.get_by_test_id("file-input").set_input_files(archive)
    page.get_by_test_id("upload-submit").click()
    expect(error).to_contain_text("接続が切れました")
    expect(error).not_to_contain_text("大きすぎ")
    page.unroute("**/upload")

    # A long pre-flight refusal wraps: the sentence that says what to do is on the screen.
    def refuse(route: Route) -> None:
        message = "提出物の確認で問題が見つかりました。今日の提出回数は減っていません。"
        log = "Traceback (most recent call last):\n" + "x" * 300
        body = {"error": {"code": "preflight", "message": message, "detail": LONG_DETAIL, "preflight": {"log": log}}}
        if route.request.method == "POST":
            route.fulfill(status=422, content_type="application/json", body=json.dumps(body, ensure_ascii=False))
        else:
            route.continue_()

    page.route("**/upload", refuse)
    # Playwright asks the browser to intercept file pickers only once someone listens, and without
    # waiting for the browser to agree: listen well before the key press, or a busy machine lets the
    # picker open natively (and vanish, headless) ahead of the interception.
    page.on("filechooser", lambda _chooser: None)
    page.get_by_test_id("upload-submit").click()
    expect(error).to_be_focused()
    what_to_do = page.get_by_text("手元で実行してエラーが出ないことを確かめてから提出してください", exact=False)
    expect(what_to_do).to_be_in_viewport()
    expect(page.get_by_test_id("preflight-log")).to_be_hidden()  # the log is folded away, not the message
    check_page(page, artefacts, "2-refusal")
    page.unroute("**/upload")

    # Keyboard only: Enter on the drop zone opens the file chooser; Enter on the button sends.
    page.get_by_test_id("dropzone").focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(archive)
    expect(page.get_by_test_id("selected-file")).to_contain_text("katakana.zip")
    page.get_by_test_id("file-input").focus()
    expect(page.get_by_test_id("file-input")).to_be_focused()  # a real control in the tab order
    page.get_by_test_id("upload-submit").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/submissions/*")
    sid = int(page.url.rsplit("/", 1)[1])
    db.commit()  # a fresh transaction: see what the server wrote since
    assert sid in db.scalars(select(Submission.id)).all(), (page.url, db.scalars(select(Submission.id)).all())

    # Waiting: position, elapsed time and the estimate, the state in the title; then the result
    # appears in place (the marker set on this very document survives: no reload).
    expect(page).to_have_title(f"採点待ち: 提出 #{sid} · カタカナ識別 提出・自動採点")
    expect(page.get_by_test_id("queue-position")).to_be_visible()
    expect(page.get_by_test_id("elapsed")).to_contain_text("経過")
    check_page(page, artefacts, "3-queued")
    page.evaluate("window.__sameDocument = true")
    set_status(db, sid, SubmissionStatus.RUNNING)
    expect(page).to_have_title(f"採点中: 提出 #{sid} · カタカナ識別 提出・自動採点")
    expect(page.get_by_test_id("running")).to_be_visible()
    store_result(db, sid, 0.9376, started=dt.datetime.now(dt.UTC))
    expect(page.get_by_test_id("accuracy")).to_be_visible()
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded instead of updating in place"
    expect(page).to_have_title(f"採点済み: 提出 #{sid} · カタカナ識別 提出・自動採点")
    # Charts print their values and the pass line, and have tables behind them.
    expect(page.get_by_test_id("bar-value")).to_have_count(15)
    expect(page.get_by_test_id("pass-line").first).to_be_attached()
    for summary in page.locator(".chart-table summary").all():
        summary.click()
    expect(page.get_by_test_id("table-per-class")).to_be_visible()
    expect(page.get_by_test_id("table-history")).to_contain_text("katakana.zip")
    check_page(page, artefacts, "4-result")

    page.goto(f"{live_server.url}/submissions")
    expect(page.get_by_test_id("best-score")).to_contain_text("93.76%")
    expect(page.get_by_test_id("standing-pass")).to_contain_text("合格")
    check_page(page, artefacts, "5-submissions")


def test_instructor_main_path(
    browser: Browser,
    signed_in: SignedIn,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    people: People,
    db: Session,
    artefacts: Path,
) -> None:
    trainee_page = browser.new_page()
    log_in_page(trainee_page, live_server.url, people.trainee.email, PASSWORD)
    trainee_page.goto(f"{live_server.url}/upload")
    trainee_page.get_by_test_id("file-input").set_input_files(
        files=[{"name": "v1.zip", "mimeType": "application/zip", "buffer": make_zip()}]
    )
    trainee_page.get_by_test_id("upload-submit").click()
    trainee_page.wait_for_url("**/submissions/*")
    trainee_page.close()
    (sid,) = db.scalars(select(Submission.id)).all()
    store_result(db, sid, 0.9412, started=dt.datetime.now(dt.UTC))

    page = signed_in(people.instructor.email)
    page.goto(f"{live_server.url}/cohorts")
    check_page(page, artefacts, "1-cohorts")
    page.goto(f"{live_server.url}/cohorts/{people.cohort.id}/leaderboard")
    expect(page).to_have_title(re.compile(f"リーダーボード.*{people.cohort.title}"))
    check_page(page, artefacts, "2-leaderboard")
    page.goto(f"{live_server.url}/cohorts/{people.cohort.id}/overview")
    check_page(page, artefacts, "3-overview")
    page.goto(f"{live_server.url}/cohorts/{people.cohort.id}/trainees/{people.trainee.id}")
    expect(page.get_by_test_id("chart-history")).to_be_visible()
    check_page(page, artefacts, "4-trainee-history")
    page.goto(f"{live_server.url}/submissions/{sid}")
    expect(page.get_by_test_id("accuracy")).to_be_visible()
    check_page(page, artefacts, "5-result")


def test_admin_main_path(
    signed_in: SignedIn,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    people: People,
    artefacts: Path,
) -> None:
    mail_dir = live_server.settings.mail_dir
    assert mail_dir is not None
    mail_dir.mkdir(parents=True, exist_ok=True)
    message = email.message.EmailMessage()
    message["To"], message["Subject"] = people.trainee.email, "【採点結果】DL Tokyo 2: v1.zip の正解率 94.12%"
    message["Date"] = email.utils.format_datetime(dt.datetime(2026, 11, 24, 3, 5, tzinfo=dt.UTC))
    message.set_content("山田 花子 さん\n\n提出された zip の採点が終わりました。\n")
    (mail_dir / "0001.eml").write_bytes(bytes(message))

    page = signed_in(people.admin.email)
    page.goto(f"{live_server.url}/admin/mail")
    expect(page).to_have_title("送信メール · カタカナ識別 提出・自動採点")
    # Japanese headings, and the date on the site's clock with its zone (12:05 JST = 03:05 UTC).
    expect(page.get_by_test_id("mail-table")).to_contain_text("送信日時")
    expect(page.get_by_test_id("mail-row")).to_contain_text("2026-11-24 12:05 JST")
    check_page(page, artefacts, "1-mail")
    page.get_by_test_id("mail-row").get_by_role("link").click()
    expect(page.get_by_test_id("mail-date")).to_have_text("2026-11-24 12:05 JST")
    check_page(page, artefacts, "2-mail-message")
    page.goto(f"{live_server.url}/cohorts")
    check_page(page, artefacts, "3-cohorts")
