"""The upload page's JavaScript in a real browser (Chromium via Playwright) against a live uvicorn:
choose a zip, watch the progress bar, land on the live result page; and the language switch."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Submission
from app.services.quota import quota_day
from tests.app.conftest import PASSWORD, People, make_zip
from tests.app.web.test_live_server import LiveServer, live_server  # noqa: F401 - a fixture
from tests.fixtures.browser import log_in_page


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_upload_through_the_page_lands_on_the_result(
    browser: Browser,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    people: People,
    tmp_path: Path,
    db: Session,
) -> None:
    page = browser.new_page()
    log_in_page(page, live_server.url, people.trainee.email, PASSWORD)
    page.wait_for_url("**/upload")  # a trainee lands on the upload page
    expect(page.get_by_test_id("quota-remaining")).to_contain_text("3 / 3")
    archive = tmp_path / "提出.zip"
    archive.write_bytes(make_zip())
    page.get_by_test_id("file-input").set_input_files(archive)
    expect(page.get_by_test_id("selected-file")).to_contain_text("提出.zip")
    page.get_by_test_id("validation-accuracy").fill("0.97")
    page.get_by_test_id("upload-submit").click()
    page.wait_for_url(re.compile(r".*/submissions/\d+$"))
    expect(page.get_by_test_id("result")).to_have_attribute("data-status", "queued")
    expect(page.get_by_test_id("result-filename")).to_have_text("提出.zip")
    page.goto(f"{live_server.url}/upload")
    uploaded_on = db.scalars(select(Submission.quota_day)).one()
    left = 2 if uploaded_on == quota_day(dt.datetime.now(dt.UTC), "Asia/Tokyo") else 3  # 00:00 JST passed?
    expect(page.get_by_test_id("quota-remaining")).to_contain_text(f"{left} / 3")
    # The switch to English and back.
    page.get_by_test_id("switch-language").click()
    expect(page.get_by_test_id("quota-remaining")).to_have_text(f"Uploads left today: {left} of 3")
    page.get_by_test_id("switch-language").click()
    expect(page.get_by_test_id("quota-remaining")).to_contain_text("今日の残り提出回数")
