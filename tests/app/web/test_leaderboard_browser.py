"""In a real browser (Chromium via Playwright) against a live uvicorn: an instructor logs in, opens
the leaderboard, sorts and filters it, and downloads the CSV (BOM and a Japanese name checked)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page

from tests.app.conftest import PASSWORD, People
from tests.app.web.test_leaderboard import board  # noqa: F401 - the seeded cohort, a fixture
from tests.app.web.test_live_server import LiveServer, live_server  # noqa: F401 - a fixture


def _names(page: Page) -> list[str]:
    return page.locator('[data-testid="leaderboard-row"] [data-testid="cell-name"]').all_inner_texts()


def test_instructor_sorts_filters_and_downloads(
    browser: Browser,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    board: People,  # noqa: F811
    tmp_path: Path,
) -> None:
    context = browser.new_context(accept_downloads=True, locale="ja-JP")
    page = context.new_page()
    target = f"/cohorts/{board.cohort.id}/leaderboard"
    page.goto(f"{live_server.url}/login?next={target}")
    page.fill('input[name="email"]', board.instructor.email)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"**{target}")
    assert _names(page) == ["taro", "hanako", "山田 花子", "未提出 太郎"]

    page.click('[data-testid="sort-name"]')
    page.wait_for_url("**sort=name**")
    ascending = _names(page)
    page.click('[data-testid="sort-name"]')
    page.wait_for_url("**order=desc**")
    assert _names(page) == list(reversed(ascending))

    page.click('[data-testid="filter-not_yet"]')
    page.wait_for_url("**standing=not_yet**")
    assert _names(page) == ["山田 花子"]
    page.click('[data-testid="filter-passed"]')
    page.wait_for_url("**standing=passed**")
    assert sorted(_names(page)) == ["hanako", "taro"]

    page.click('[data-testid="filter-all"]')
    page.wait_for_selector('[data-testid="filter-all"][aria-current="page"]')  # the new page, not the old
    with page.expect_download() as download_info:
        page.click('[data-testid="download-csv"]')
    download = download_info.value
    assert download.suggested_filename == "leaderboard-dl_tokyo_2.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    content = saved.read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")
    assert "山田 花子" in content.decode("utf-8-sig")
    context.close()


def test_instructor_on_a_phone_lands_on_cohorts_and_reads_the_leaderboard(
    browser: Browser,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    board: People,  # noqa: F811
) -> None:
    """390 × 844: the sign-in leads to the cohort list; the leaderboard's table scrolls sideways
    inside its own frame instead of squeezing columns to one character per line."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP")
    page = context.new_page()
    page.goto(f"{live_server.url}/login")
    page.fill('input[name="email"]', board.instructor.email)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url("**/cohorts")
    page.click('[data-testid="cohort-leaderboard"]')
    page.wait_for_selector('[data-testid="leaderboard"]')
    # The page itself never gets wider than the phone; only the table's frame scrolls.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    line = page.evaluate("parseFloat(getComputedStyle(document.body).lineHeight)")
    cells = page.locator('[data-testid="leaderboard"] th, [data-testid="leaderboard"] td')
    for i in range(cells.count()):
        box = cells.nth(i).bounding_box()
        assert box is not None and box["height"] < 2 * line + 16, cells.nth(i).inner_text()
    never = page.locator('[data-testid="leaderboard-row"][data-standing="never"] [data-testid="cell-standing"]')
    assert never.inner_text() == "未提出"
    colour = never.locator("span").evaluate("e => getComputedStyle(e).color")
    assert colour != page.locator("span.fail").first.evaluate("e => getComputedStyle(e).color")  # not the red
    context.close()
