"""A trainee in a real browser (headless Debian Chromium driven by Playwright) against the live service."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from app.services.quota import quota_day
from tests.fixtures.artifacts import Examples
from tests.fixtures.browser import csp_violations, log_in_page, watch_csp
from tests.fixtures.live_service import PASSWORD, TRAINEE_EMAIL, Service, ServiceFactory


def log_in(page: Page, service: Service) -> None:
    log_in_page(page, service.url, TRAINEE_EMAIL, PASSWORD)


def test_trainee_uploads_through_the_page_and_sees_the_result(
    service: Service, browser: Browser, example_zips: Examples, tmp_path: Path
) -> None:
    page = browser.new_page(locale="ja-JP")
    violations = watch_csp(page)
    log_in(page, service)
    page.goto(f"{service.url}/upload")
    assert "frame-ancestors 'none'" in (page.request.get(f"{service.url}/upload").headers["content-security-policy"])
    quota = page.get_by_test_id("quota")
    expect(quota).to_have_attribute("data-remaining", "3")
    expect(page.get_by_test_id("runtime-versions")).to_contain_text("NumPy")

    # A broken zip is refused on the page with its reason, and no slot is spent.
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("folder/submit_katakana.py", "def func_predict(test_data, test_label):\n    return 0, 1\n")
    page.get_by_test_id("file-input").set_input_files(str(broken))
    page.get_by_test_id("upload-submit").click()
    error = page.get_by_test_id("upload-error")
    expect(error).to_be_visible(timeout=120_000)
    expect(error).to_contain_text("func_predict")
    page.goto(f"{service.url}/upload")
    expect(page.get_by_test_id("quota")).to_have_attribute("data-remaining", "3")

    # The example is accepted, queued, scored by the worker, and the result appears by itself.
    page.get_by_test_id("file-input").set_input_files(str(example_zips.mlp_zip))
    page.get_by_test_id("validation-accuracy").fill("95")
    page.get_by_test_id("upload-submit").click()
    page.wait_for_url("**/submissions/*", timeout=120_000)
    expect(page.get_by_test_id("accuracy")).to_be_visible(timeout=300_000)
    accuracy = float(page.get_by_test_id("accuracy").get_attribute("data-value") or "nan")
    assert 0.2 < accuracy <= 1.0
    expect(page.get_by_test_id("result-status")).to_contain_text("採点済み")
    assert page.locator("svg").count() >= 2  # per-class bars and the confusion heat map
    expect(page.get_by_test_id("validation-vs-test")).to_be_visible()
    assert csp_violations(page, violations) == []  # the live status script and the charts ran under the policy

    page.goto(f"{service.url}/upload")
    (row,) = service.submissions()
    today = quota_day(dt.datetime.now(dt.UTC), "Asia/Tokyo")  # 00:00 JST may have passed meanwhile
    expect(page.get_by_test_id("quota")).to_have_attribute("data-remaining", "2" if row.quota_day == today else "3")
    assert csp_violations(page, violations) == []
    page.close()


def test_an_upload_answered_before_its_verdict_is_followed_live_to_the_refusal_and_the_result(
    service_factory: ServiceFactory, browser: Browser, example_zips: Examples, tmp_path: Path
) -> None:
    """The upload request waits for no verdict (budget 0): the check's page follows it (check.js,
    under the CSP) and shows the refusal on the upload page, or moves on to the submission."""
    service = service_factory({"KATAKANA_PREFLIGHT_INLINE_WAIT_S": "0"})
    page = browser.new_page(locale="ja-JP")
    violations = watch_csp(page)
    log_in(page, service)
    page.goto(f"{service.url}/upload")

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("folder/submit_katakana.py", "def func_predict(test_data, test_label):\n    return 0, 1\n")
    page.get_by_test_id("file-input").set_input_files(str(broken))
    page.get_by_test_id("upload-submit").click()
    error = page.get_by_test_id("upload-error")
    expect(error).to_be_visible(timeout=120_000)  # the same page and message as a refusal in the request
    expect(error).to_contain_text("func_predict")
    expect(error).to_be_focused()
    expect(page.get_by_test_id("quota")).to_have_attribute("data-remaining", "3")

    page.goto(f"{service.url}/upload")
    page.get_by_test_id("file-input").set_input_files(str(example_zips.mlp_zip))
    page.get_by_test_id("upload-submit").click()
    page.wait_for_url("**/submissions/*", timeout=120_000)  # through the check's page
    expect(page.get_by_test_id("result")).to_be_visible()
    assert len(service.submissions()) == 1
    assert "POST /upload 202" in service.log() and "GET /uploads/preflights/" in service.log()
    assert csp_violations(page, violations) == []
    page.close()
