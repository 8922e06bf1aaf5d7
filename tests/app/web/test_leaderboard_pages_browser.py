"""The paged leaderboard in a real browser (Chromium via Playwright) at desktop and phone size: the
page links are there, large enough to tap, keep the sort, and lead to the next hundred rows; the
search finds one trainee; nothing makes the page wider than the screen (screenshots in
``.cache/artefacts/screenshots/``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from app.models import Cohort
from tests.app.conftest import PASSWORD, People
from tests.app.web.test_leaderboard_pages import big  # noqa: F401 - 207 trainees, a fixture
from tests.app.web.test_live_server import LiveServer, live_server  # noqa: F401 - a fixture
from tests.fixtures.browser import check_page, new_context

pytestmark = [pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_instructor_pages_through_and_searches_the_board(
    browser: Browser,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    big: Cohort,  # noqa: F811
    people: People,
    artefacts: Path,
    viewport: str,
) -> None:
    context = new_context(browser, viewport)
    page = context.new_page()
    page.goto(f"{live_server.url}/login")
    page.get_by_test_id("login-email").fill(people.instructor.email)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto(f"{live_server.url}/cohorts/{big.id}/leaderboard?sort=best&order=desc")
    rows = page.get_by_test_id("leaderboard-row")
    expect(rows).to_have_count(100)
    first_page = rows.first.get_attribute("data-user-id")
    pager = page.get_by_test_id("pager")
    expect(pager).to_contain_text("1 / 3 ページ（207 人）")
    for link in pager.locator("a").all():  # tappable: 44 px targets (WCAG 2.5.5)
        box = link.bounding_box()
        assert box is not None and box["height"] >= 44 and box["width"] >= 44, link.inner_text()
    check_page(page, artefacts, "1-page-1")

    page.get_by_test_id("page-next").click()
    page.wait_for_url("**page=2**")
    assert "sort=best" in page.url and "order=desc" in page.url
    expect(pager).to_contain_text("2 / 3 ページ")
    expect(rows).to_have_count(100)
    assert rows.first.get_attribute("data-user-id") != first_page
    check_page(page, artefacts, "2-page-2")

    page.get_by_label("名前・フリガナ・メールで探す").fill("many107")
    page.get_by_role("button", name="検索").click()
    page.wait_for_url("**q=many107**")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_test_id("cell-name")).to_have_text("many 107")
    check_page(page, artefacts, "3-search")
    context.close()
