"""Each role's main path in a real browser (Debian Chromium via Playwright), once per screen size
(desktop 1366×768, phone 390×844: the ``viewport`` parameter, one path for both), against a live
uvicorn on a real database.

Every page on the way is screenshotted (the folder is printed at the end of the run; see
tests/fixtures/browser.py) and must be no wider than the screen, carry the site's name in its
title, keep to the glossary's words and pass axe-core's WCAG 2.1 AA rules. Beyond that, each path
holds the site to what trainees and instructors tripped over: a confirmation checkbox shown before
any check (its computed visibility and the tab order), a used-up day whose button looked active,
staff navigation and whose submission a staff member views, the leaderboard and the similarity
table on a phone, a code example wrapping mid-line, the history downloads, the result email on a
phone. The near-chance confirmation is walked with a real pre-flight worker (sandbox, Redis,
Celery). Elsewhere the worker's part (storing a result) is done here by writing the row as the
worker does, so the page's live update is what is being watched (the worker itself is tested in
tests/worker and, with this page, in tests/e2e).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Route, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.embedded_redis import RedisServer
from app.i18n.glossary import replaced_words
from app.models import Cohort, EmailOutbox, Submission, SubmissionStatus, UploadGrant
from app.models import SimilarityPair as Pair
from app.services import people as people_service
from app.services.public_set import import_public_set
from app.services.quota import quota_day
from app.settings import Settings
from scorer.errors import ErrorCode
from scorer.errors import render as error_text
from tests.app.conftest import PASSWORD, People, make_zip
from tests.app.web.test_live_server import LiveServer, live_server, site_env  # noqa: F401 - a fixture
from tests.fixtures.artifacts import DataSet
from tests.fixtures.browser import VIEWPORTS, check_page, check_width, log_in_page, new_context
from tests.fixtures.results import per_class_and_confusion
from tests.fixtures.services import WorkerFactory, start_uvicorn
from worker.mail.compose import ResultFacts, compose_result
from worker.mail.transport import OutgoingMail, build_message, deliver, write_to_folder

pytestmark = [pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
SITE = "カタカナ識別 提出・自動採点"
LONG_PATH = "/submission/my_very_long_folder_name_without_any_spaces/submit_katakana_final_version_2.py"


@pytest.fixture(params=sorted(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> str:
    """Every test here runs once per screen size (desktop 1366×768, phone 390×844)."""
    return str(request.param)


SignedIn = Callable[[str, str], Page]


@pytest.fixture
def signed_in(browser: Browser, viewport: str) -> Iterator[SignedIn]:
    """``signed_in(base_url, email)``: a page at this test's screen size, logged in as that person
    through the real form; its browser context is closed after the test, passed or failed."""
    contexts: list[BrowserContext] = []

    def open_page(base_url: str, email: str) -> Page:
        context = new_context(browser, viewport)
        contexts.append(context)
        page = context.new_page()
        log_in_page(page, base_url, email, PASSWORD)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def named(people: People, db: Session) -> People:
    """The people with the names and readings of a Japanese class."""
    for user, name, reading in (
        (people.trainee, "山田 花子", "ヤマダ ハナコ"),
        (people.other_trainee, "佐藤 太郎", "サトウ タロウ"),
        (people.instructor, "鈴木 先生", ""),
    ):
        user.name, user.reading = name, reading
    people.cohort.title, people.cohort.pass_threshold = "DL 東京 2 期", 0.9
    db.commit()
    return people


# --- the worker's part, written as the worker writes it ---------------------------------------


def store_result(db: Session, sid: int, accuracy: float, *, started: dt.datetime) -> None:
    """What the worker writes when a run succeeds."""
    db.commit()  # a fresh transaction: see what the server wrote since
    row = db.get(Submission, sid)
    assert row is not None
    row.status = SubmissionStatus.SUCCEEDED
    row.accuracy, row.correct, row.total, row.loss = accuracy, int(accuracy * 14500), 14500, 0.2345
    row.started_at, row.finished_at, row.duration_s = started, started + dt.timedelta(seconds=41), 40.2
    row.per_class, row.confusion = per_class_and_confusion(accuracy - 0.06)
    row.log = "loaded katakana_model.pickle\n"
    db.commit()


def store_failure(db: Session, sid: int) -> None:
    """What the worker writes when the trainee's predict raised."""
    db.commit()
    row = db.get(Submission, sid)
    assert row is not None
    row.status, row.error_code, row.error_blame = SubmissionStatus.FAILED, "predict_exception", "submission"
    row.result = {"error": {"params": {"reason": "ZeroDivisionError: division by zero"}}}
    row.log = "Traceback (most recent call last):\nZeroDivisionError: division by zero\n"
    db.commit()


def set_status(db: Session, sid: int, status: SubmissionStatus) -> None:
    db.commit()  # a fresh transaction: see what the server wrote since
    row = db.get(Submission, sid)
    assert row is not None
    row.status = status
    row.started_at = dt.datetime.now(dt.UTC)
    db.commit()


def upload(server: LiveServer, email: str, n: int, *, note: str = "", validation: str = "") -> int:
    """An upload over HTTP, as the page's script sends it; the new submission's id."""
    client = server.client(email)
    try:
        sent = client.post(
            "/upload",
            files={"file": (f"v{n}.zip", make_zip(body=f"# {n}\n".encode()), "application/zip")},
            data={
                "csrf_token": client.cookies["katakana_csrf"],
                "change_note": note,
                "validation_accuracy": validation,
            },
            headers={"Accept": "application/json"},
        )
    finally:
        client.close()
    assert sent.status_code == 201, sent.text
    return int(sent.json()["id"])


# --- what a path looks at ----------------------------------------------------------------------


def computed(locator: Locator, prop: str) -> str:
    return str(locator.evaluate(f"e => getComputedStyle(e).getPropertyValue({json.dumps(prop)})"))


def assert_confirmation_hidden(page: Page) -> None:
    """The near-chance checkbox is nowhere to be seen or reached before a check asks for it: its
    computed display (a label { display: grid } rule once beat its hidden attribute), and the tab
    order from the validation field on."""
    confirm = page.get_by_test_id("near-chance-confirm")
    expect(confirm).to_be_hidden()
    assert computed(confirm, "display") == "none"
    if page.get_by_test_id("validation-accuracy").is_disabled():
        return  # the day's uploads are used up: the form's fields are off, nothing to tab through
    page.get_by_test_id("validation-accuracy").focus()
    order = []
    for _ in range(2):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.dataset.testid"))
    assert order == ["change-note", "upload-submit"]


def inside_screen(page: Page, locator: Locator) -> bool:
    """The element is whole on the screen, sideways (nothing to scroll to reach it)."""
    box = locator.bounding_box()
    viewport = page.viewport_size
    assert box is not None and viewport is not None
    return box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]


def download(page: Page, testid: str) -> bytes:
    with page.expect_download() as info:
        page.get_by_test_id(testid).click()
    return Path(info.value.path()).read_bytes()


# --- trainees ------------------------------------------------------------------------------------


def test_trainee_main_path(
    signed_in: SignedIn,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    named: People,
    db: Session,
    tmp_path: Path,
    artefacts: Path,
    viewport: str,
) -> None:
    people = named
    people.cohort.daily_limit = 3
    today = quota_day(dt.datetime.now(dt.UTC), "Asia/Tokyo")
    db.add(UploadGrant(user_id=people.trainee.id, day=today, extra=3, reason="サーバー障害の補填"))
    db.commit()
    # Two earlier scored uploads, so the history has a course to show.
    for n, accuracy, note in ((1, 0.81, ""), (2, 0.88, "学習率を 0.01 に下げた")):
        sid = upload(live_server, people.trainee.email, n, note=note, validation=f"{accuracy + 0.03:.2f}")
        store_result(db, sid, accuracy, started=dt.datetime.now(dt.UTC))
    page = signed_in(live_server.url, people.trainee.email)
    page.goto(f"{live_server.url}/upload")
    expect(page).to_have_title(f"提出する · {SITE}")
    # Trainee navigation, with the name linking to the account (the reading of the name).
    expect(page.get_by_test_id("nav-upload")).to_be_visible()
    expect(page.get_by_test_id("nav-cohorts")).to_have_count(0)
    # The contract is on the page, with the runtime's real versions and what is not there.
    expect(page.get_by_test_id("contract-signature")).to_have_text("predict(test_data)")
    expect(page.get_by_test_id("runtime-versions")).to_contain_text("NumPy")
    expect(page.get_by_test_id("contract-unavailable")).to_contain_text("PyTorch")
    expect(page.get_by_test_id("contract-check")).to_contain_text("python -m scorer check")
    expect(page.get_by_test_id("template-1")).to_be_in_viewport()  # templates at the top
    # Standing: the limit of 6 is explained by the grant.
    expect(page.get_by_test_id("quota-remaining")).to_contain_text("4 / 6")
    expect(page.get_by_test_id("quota-grant")).to_contain_text("サーバー障害の補填")
    # No check has run: the confirmation is neither shown nor in the tab order.
    assert_confirmation_hidden(page)
    expect(page.get_by_test_id("upload-submit")).to_be_enabled()
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

    # The func_predict refusal: its message wraps (a long path too), its code example does not.
    legacy = error_text(ErrorCode.LEGACY_FUNC_PREDICT, "ja", {"file": LONG_PATH})

    def refuse(route: Route) -> None:
        message = "提出物の確認で問題が見つかりました。今日の提出回数は減っていません。"
        log = "Traceback (most recent call last):\n" + "x" * 300
        body = {"error": {"code": "preflight", "message": message, "detail": legacy, "preflight": {"log": log}}}
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
    expect(page.get_by_text("次のように直してください", exact=False)).to_be_in_viewport()
    code = page.get_by_test_id("upload-error-code")
    expect(code).to_be_visible()
    expect(code).to_contain_text("def predict(test_data):")
    assert "monospace" in computed(code, "font-family") and computed(code, "white-space") == "pre"
    if viewport == "phone":  # lines kept whole: the block scrolls sideways inside itself
        assert code.evaluate("e => e.scrollWidth > e.clientWidth")
    expect(page.get_by_test_id("preflight-log")).to_be_hidden()  # the log is folded away, not the message
    assert_confirmation_hidden(page)  # a refusal is no near-chance question
    check_page(page, artefacts, "2-refusal")
    page.unroute("**/upload")

    # Keyboard only: Enter on the drop zone opens the file chooser; Enter on the button sends.
    page.get_by_test_id("dropzone").focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(archive)
    expect(page.get_by_test_id("selected-file")).to_contain_text("katakana.zip")
    page.get_by_test_id("change-note").fill("データ拡張（回転 ±10°）を追加")
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
    expect(page).to_have_title(f"採点待ち: 提出 #{sid} · {SITE}")
    expect(page.get_by_test_id("queue-position")).to_be_visible()
    expect(page.get_by_test_id("elapsed")).to_contain_text("経過")
    check_page(page, artefacts, "3-queued")
    page.evaluate("window.__sameDocument = true")
    set_status(db, sid, SubmissionStatus.RUNNING)
    expect(page).to_have_title(f"採点中: 提出 #{sid} · {SITE}")
    expect(page.get_by_test_id("running")).to_be_visible()
    store_result(db, sid, 0.9376, started=dt.datetime.now(dt.UTC))
    expect(page.get_by_test_id("accuracy")).to_be_visible()
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded instead of updating in place"
    expect(page).to_have_title(f"採点済み: 提出 #{sid} · {SITE}")
    # Charts print their values and the pass line, and have tables behind them; the bars start at 0.
    expect(page.get_by_test_id("bar-value")).to_have_count(15)
    expect(page.get_by_test_id("pass-line").first).to_be_attached()
    ticks = page.get_by_test_id("chart-per-class").get_by_test_id("axis-tick").all_text_contents()
    assert ticks[0] == "0%" and ticks[-1] == "100%"
    for summary in page.locator(".chart-table summary").all():
        summary.click()
    expect(page.get_by_test_id("table-per-class")).to_be_visible()
    expect(page.get_by_test_id("table-history")).to_contain_text("katakana.zip")
    expect(page.get_by_test_id("result-change-note")).to_have_text("データ拡張（回転 ±10°）を追加")
    check_page(page, artefacts, "4-result")

    page.goto(f"{live_server.url}/submissions")
    expect(page.get_by_test_id("best-score")).to_contain_text("93.76%")
    expect(page.get_by_test_id("standing-pass")).to_contain_text("合格")
    check_page(page, artefacts, "5-submissions")
    # 「識別精度の変遷」 to paste into the presentation's notebook: the table and the chart.
    rows = list(csv.DictReader(io.StringIO(download(page, "history-csv").decode("utf-8"))))
    assert [r["test_accuracy_percent"] for r in rows] == ["81.00", "88.00", "93.76"]
    assert rows[1]["validation_accuracy_percent"] == "91.00" and rows[1]["change_note"] == "学習率を 0.01 に下げた"
    chart = Image.open(io.BytesIO(download(page, "history-png")))
    assert chart.format == "PNG" and chart.width == 1280

    # The account page takes the reading of the name.
    page.get_by_test_id("current-user").click()
    expect(page.get_by_test_id("profile-reading")).to_have_value("ヤマダ ハナコ")
    check_page(page, artefacts, "6-account")


def test_a_trainee_whose_uploads_are_used_up_sees_the_form_off_and_why(
    signed_in: SignedIn,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    named: People,
    db: Session,
    artefacts: Path,
) -> None:
    """The button looked active and the click did nothing: now the button and the drop zone look
    and act off (the computed style, not only the attribute), the reason written beside them."""
    people = named
    people.cohort.daily_limit = 1
    db.commit()
    store_result(db, upload(live_server, people.trainee.email, 1), 0.9, started=dt.datetime.now(dt.UTC))
    page = signed_in(live_server.url, people.trainee.email)
    page.goto(f"{live_server.url}/upload")
    if db.scalar(select(Submission.quota_day)) != quota_day(dt.datetime.now(dt.UTC), "Asia/Tokyo"):
        pytest.skip("00:00 JST passed between the upload and the page: a new day's upload is open")
    button, zone = page.get_by_test_id("upload-submit"), page.get_by_test_id("dropzone")
    expect(button).to_be_disabled()
    expect(page.get_by_test_id("file-input")).to_be_disabled()
    assert computed(button, "cursor") == "not-allowed"
    assert computed(button, "background-color") != "rgb(37, 99, 235)"  # not the active button's blue
    expect(zone).to_have_attribute("aria-disabled", "true")
    assert computed(zone, "cursor") == "not-allowed" and zone.evaluate("e => e.tabIndex") == -1
    expect(zone).to_contain_text("今日はもう提出できません")
    reason = page.get_by_test_id("upload-blocked-reason")
    expect(reason).to_be_visible()
    expect(reason).to_contain_text("使い切った")
    gap = reason.bounding_box()["y"] - button.bounding_box()["y"]  # type: ignore[index]
    assert -5 < gap < 80, gap  # beside the button, or right under it on a narrow screen
    expect(button).to_have_attribute("aria-describedby", "upload-blocked-reason")
    assert_confirmation_hidden(page)
    check_page(page, artefacts, "1-used-up")


# Class 0 (ア) for every image: right on 2 of the 30 public images, as guessing would be.
ONLY_A = b"import numpy as np\n\n\ndef predict(test_data):\n    return np.zeros(len(test_data), dtype=np.int64)\n"


@dataclass
class CheckedSite:
    """The site with its pre-flight on and the course's public set stored, as ``scripts/run.sh``
    now has it; ``start_worker()`` starts the real pre-flight worker (Celery on Redis, the sandbox)."""

    server: LiveServer
    start_worker: Callable[[], object]


@pytest.fixture
def checked_site(
    settings: Settings,
    people: People,
    redis_server: RedisServer,
    celery_worker_factory: WorkerFactory,
    synthetic_set: DataSet,
) -> Iterator[CheckedSite]:
    import_public_set(settings, synthetic_set.train_data, synthetic_set.train_label)
    # The upload answers before the verdict (its check's page follows it), and a check waits for a
    # worker longer than one takes to start on a loaded machine.
    env = site_env(settings, KATAKANA_PREFLIGHT="true", KATAKANA_REDIS_URL=redis_server.url,
                   KATAKANA_PREFLIGHT_INLINE_WAIT_S="0", KATAKANA_PREFLIGHT_WAIT_S="900")  # fmt: skip
    site = start_uvicorn(env, settings.data_dir / "uvicorn.log")
    try:
        yield CheckedSite(
            LiveServer(site.url, site.process.pid, settings), lambda: celery_worker_factory(env, queues="preflight")
        )
    finally:
        site.stop()


def test_a_trainee_confirms_a_model_that_scores_near_chance(
    signed_in: SignedIn,
    checked_site: CheckedSite,
    people: People,
    db: Session,
    tmp_path: Path,
    artefacts: Path,
) -> None:
    """A model that predicts only ア (it scored 8.97 % and spent an upload, twice, on the demo): the
    pre-flight asks before the upload is spent, the page says why, the checkbox stays hidden (the
    question has its own button), and the answer queues the zip already received."""
    url = checked_site.server.url
    page = signed_in(url, people.trainee.email)
    page.goto(f"{url}/upload")
    archive = tmp_path / "only_a.zip"
    archive.write_bytes(make_zip(body=ONLY_A))
    page.get_by_test_id("file-input").set_input_files(archive)
    page.get_by_test_id("upload-submit").click()
    # No worker yet: the check waits in the queue, and its page says so while it follows it.
    page.wait_for_url("**/uploads/preflights/*")
    expect(page.get_by_test_id("checking")).to_be_visible()
    check_page(page, artefacts, "1-checking")
    checked_site.start_worker()
    ask = page.get_by_test_id("near-chance-confirm-button")
    expect(ask).to_be_visible()  # the worker ran it in the sandbox on 30 public images; the page followed
    error = page.get_by_test_id("upload-error")
    expect(error).to_contain_text("当てずっぽうでも約 7 %")
    expect(error).to_contain_text("まだ減っていません")
    expect(error).to_contain_text("「このまま提出する」ボタンを押してください")  # what is on the page, not a checkbox
    confirm = page.get_by_test_id("near-chance-confirm")
    expect(confirm).to_be_hidden()  # the button asks, not the checkbox
    assert computed(confirm, "display") == "none"
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Submission)) == 0  # nothing spent while asking
    check_page(page, artefacts, "2-confirm")
    ask.click()
    page.wait_for_url(re.compile(r".*/submissions/\d+$"))
    expect(page.get_by_test_id("result")).to_have_attribute("data-status", "queued")
    expect(page.get_by_test_id("result-filename")).to_have_text("only_a.zip")
    db.rollback()
    spent = db.scalars(select(Submission)).all()
    assert len(spent) == 1 and spent[0].counts_toward_limit
    check_page(page, artefacts, "3-queued")


# --- staff ----------------------------------------------------------------------------------------


def test_instructor_main_path(
    signed_in: SignedIn,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    named: People,
    db: Session,
    artefacts: Path,
    viewport: str,
) -> None:
    people = named
    scored = upload(live_server, people.trainee.email, 1, note="層を 1 つ増やした", validation="0.95")
    store_result(db, scored, 0.9412, started=dt.datetime.now(dt.UTC))
    failed = upload(live_server, people.trainee.email, 2)
    store_failure(db, failed)
    copied = upload(live_server, people.other_trainee.email, 3)
    store_result(db, copied, 0.9398, started=dt.datetime.now(dt.UTC))
    shared = [{"kind": "zip", "name_a": "v1.zip", "name_b": "v3.zip", "sha256": "ab" * 32,
               "submission_a_id": scored, "submission_b_id": copied}]  # fmt: skip
    db.add(Pair(cohort_id=people.cohort.id, user_a_id=people.trainee.id, user_b_id=people.other_trainee.id,
                submission_a_id=scored, submission_b_id=copied, both_wrong=812, same_wrong=790,
                error_agreement=790 / 812, agreement=0.991, shared_files=shared, shared_count=1))  # fmt: skip
    db.commit()

    page = signed_in(live_server.url, people.instructor.email)
    page.wait_for_url("**/cohorts")  # staff land on their cohorts
    # Staff navigation: the cohorts first; nothing of a trainee's (upload, history, standing).
    expect(page.get_by_test_id("nav-cohorts")).to_be_visible()
    for trainee_only in ("nav-upload", "nav-submissions", "standing", "quota-remaining"):
        expect(page.get_by_test_id(trainee_only)).to_have_count(0)
    check_page(page, artefacts, "1-cohorts")

    page.goto(f"{live_server.url}/cohorts/{people.cohort.id}/leaderboard")
    expect(page).to_have_title(f"リーダーボード: DL 東京 2 期 · {SITE}")
    first = page.get_by_test_id("leaderboard-row").first
    name, standing = first.get_by_test_id("cell-name"), first.get_by_test_id("cell-standing")
    # On a phone too: who and whether they passed, without scrolling sideways; the name is a link.
    assert inside_screen(page, name) and inside_screen(page, standing)
    expect(first.get_by_test_id("cell-reading")).to_be_visible()
    frame = page.locator(".table-scroll").first
    frame.evaluate("e => { e.scrollLeft = e.scrollWidth }")
    assert inside_screen(page, name), "the name scrolled off with the columns"
    frame.evaluate("e => { e.scrollLeft = 0 }")
    check_page(page, artefacts, "2-leaderboard")
    name.click()
    page.wait_for_url(f"**/cohorts/{people.cohort.id}/trainees/*")

    expect(page.get_by_test_id("chart-history")).to_be_visible()
    expect(page.get_by_test_id("history-change-note").first).to_be_visible()
    check_page(page, artefacts, "3-trainee-history")
    rows = list(csv.DictReader(io.StringIO(download(page, "history-csv").decode("utf-8"))))
    assert [r["status"] for r in rows] == ["succeeded", "failed"] and rows[0]["change_note"] == "層を 1 つ増やした"

    page.goto(f"{live_server.url}/cohorts/{people.cohort.id}/overview")
    check_page(page, artefacts, "4-overview")

    page.goto(f"{live_server.url}/cohorts/{people.cohort.id}/similarity")
    table = page.get_by_test_id("similarity-pairs")
    expect(table).to_be_visible()
    check_page(page, artefacts, "5-similarity")  # the page no wider than the screen: the table scrolls in its frame
    if viewport == "desktop":  # cells read in a few lines, and the table fits the content column
        lines = table.evaluate(
            """t => Math.max(...[...t.querySelectorAll("td")].map(
                 td => td.getBoundingClientRect().height / parseFloat(getComputedStyle(td).lineHeight)))"""
        )
        assert lines <= 5, f"a cell runs to {lines:.1f} lines"
        assert table.evaluate("t => t.getBoundingClientRect().right <= t.closest('main').getBoundingClientRect().right")
    page.get_by_test_id("pair-submission").first.click()

    # Whose submission this is, and the way back; the error introduced as the trainee's message.
    page.wait_for_url(f"**/submissions/{scored}")
    expect(page.get_by_test_id("owner-name")).to_have_text("山田 花子")
    expect(page).to_have_title(re.compile(f"— 山田 花子 · {SITE}$"))
    check_page(page, artefacts, "6-result")
    page.goto(f"{live_server.url}/submissions/{failed}")
    expect(page.get_by_test_id("owner-name")).to_have_text("山田 花子")
    expect(page.get_by_test_id("error-shown-to")).to_contain_text("山田 花子 さんには")
    expect(page.get_by_test_id("slot-spent")).to_be_visible()
    expect(page.get_by_test_id("owner-leaderboard")).to_be_visible()
    check_page(page, artefacts, "7-failed-result")
    page.get_by_test_id("owner-history").click()
    page.wait_for_url(f"**/cohorts/{people.cohort.id}/trainees/{people.trainee.id}")


def test_admin_main_path(
    signed_in: SignedIn,
    browser: Browser,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    named: People,
    db: Session,
    artefacts: Path,
    viewport: str,
) -> None:
    people = named
    settings = live_server.settings
    # The mails the site sends, written to the mail folder as the email worker does: a result
    # (scored), a failure, and an invitation from the real composers.
    results = {
        "result-ok": compose_result(_facts(people, succeeded=True)),
        "result-failed": compose_result(_facts(people, succeeded=False)),
    }
    for key, mail in results.items():
        message = build_message(OutgoingMail(key, people.trainee.email, mail.subject, mail.text, mail.html), settings)
        assert settings.mail_dir is not None
        write_to_folder(message, settings.mail_dir, key)
    newcomer = people_service.create_user(db, email="new@example.com", name="新人 一郎", role=people.trainee.role)
    cohort = db.get(Cohort, people.cohort.id)
    outbox = people_service.invite(db, newcomer, settings, cohort)
    db.commit()
    row = db.get(EmailOutbox, outbox.id)
    assert row is not None
    deliver(OutgoingMail(row.idempotency_key, row.to_address, row.subject, row.body_text, row.body_html),
            settings, timeout=5)  # fmt: skip
    for mail in results.values():
        for text in (mail.subject, mail.text):
            assert replaced_words(text, "ja") == [], text

    page = signed_in(live_server.url, people.admin.email)
    page.wait_for_url("**/cohorts")
    expect(page.get_by_test_id("nav-admin-mail")).to_be_visible()
    expect(page.get_by_test_id("nav-upload")).to_have_count(0)
    check_page(page, artefacts, "1-cohorts")
    page.goto(f"{live_server.url}/admin/mail")
    expect(page).to_have_title(f"送信メール · {SITE}")
    expect(page.get_by_test_id("mail-table")).to_contain_text("送信日時")
    expect(page.get_by_test_id("mail-row")).to_have_count(3)
    expect(page.get_by_test_id("mail-table")).to_contain_text("【カタカナ識別】")  # every subject names the site
    check_page(page, artefacts, "2-mail")  # glossary: every subject in the list
    for n, row_link in enumerate(page.get_by_test_id("mail-row").get_by_role("link").all(), start=3):
        href = row_link.get_attribute("href")
        page.goto(f"{live_server.url}{href}")
        expect(page.get_by_test_id("mail-date")).to_contain_text(" JST")  # the site's clock, with its zone
        check_page(page, artefacts, f"{n}-mail-message")  # glossary: the whole mail
        page.goto(f"{live_server.url}/admin/mail")
    # The HTML result email on this screen: a phone renders it at the phone's width (viewport meta).
    mail_context = new_context(browser, viewport)
    try:
        mail_page = mail_context.new_page()
        mail_page.set_content(results["result-failed"].html)
        mail_page.screenshot(path=str(artefacts / "6-mail-html.png"), full_page=True)
        check_width(mail_page, "the HTML result email")
        assert mail_page.evaluate("window.innerWidth") == VIEWPORTS[viewport]["width"]
    finally:
        mail_context.close()
    page.goto(f"{live_server.url}/docs")
    expect(page).to_have_title(f"管理 API リファレンス · {SITE}")
    expect(page.locator("body")).not_to_contain_text("Page_")
    expect(page.locator("body")).not_to_contain_text("Body_")
    check_page(page, artefacts, "7-api-docs")


def _facts(people: People, *, succeeded: bool) -> ResultFacts:
    return ResultFacts(
        submission_id=42, language="ja", recipient_name="山田 花子", cohort_title="DL 東京 2 期",
        filename="katakana_model_v3_final_really_final.zip", submitted_at=dt.datetime.now(dt.UTC),
        timezone="Asia/Tokyo", succeeded=succeeded, result_url="http://127.0.0.1/submissions/42",
        accuracy=0.9412 if succeeded else None, correct=13647 if succeeded else None, total=14500,
        pass_threshold=0.9, uploads_left=1, daily_limit=3,
        error_message=None if succeeded else "predict の実行中にエラーが起きました（ZeroDivisionError）。",
        log=None if succeeded else "Traceback (most recent call last):\n" + "  File " + LONG_PATH * 3 + "\n",
    )  # fmt: skip
