"""Charts as people see them, in a real browser (Chromium via Playwright) at desktop (1366×768) and
phone (390×844) size: the cohort overview's axes count in whole numbers (a peak of one trainee once
read "1, 0, 0"), every number drawn on a chart renders at 11 px or more on either screen, and the
confusion map keeps legible numbers on a phone by scrolling sideways, with a line pointing to the
table. Each page is screenshotted (``.cache/artefacts/screenshots/``) for a person to look at."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from app.models import Cohort, Submission
from tests.app.api.conftest import T0, add_submission
from tests.app.conftest import PASSWORD, People
from tests.app.web.test_live_server import LiveServer, live_server  # noqa: F401 - a fixture
from tests.fixtures.browser import check_page, new_context
from tests.fixtures.results import per_class_and_confusion

pytestmark = [pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
MIN_PX = 11.0

# Every <text> of every chart on the page, with its size as rendered: the CSS font size times the
# factor the SVG is scaled by to fit its box (a 420-unit chart on a 358 px phone column is 0.85).
RENDERED_TEXT = """() => [...document.querySelectorAll("svg.chart")].flatMap((svg) => {
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  return [...svg.querySelectorAll("text")]
    .filter((t) => t.getClientRects().length > 0)
    .map((t) => ({ chart: svg.dataset.testid, text: t.textContent,
                   px: parseFloat(getComputedStyle(t).fontSize) * scale }));
})"""


def _scored(db: Session, people: People, cohort: Cohort) -> Submission:
    """Two trainees in two ranges of the histogram (one trainee per bar: the case that read
    "1, 0, 0"); the trainee's own result with per-class figures and a confusion matrix of
    four-digit counts."""
    cohort.pass_threshold = 0.95
    add_submission(db, people.trainee, cohort, accuracy=0.9123, at=T0)
    add_submission(db, people.other_trainee, cohort, accuracy=0.9712, at=T0 + dt.timedelta(days=1))
    row = add_submission(db, people.trainee, cohort, accuracy=0.9376, at=T0 + dt.timedelta(days=2))
    row.per_class, row.confusion = per_class_and_confusion(0.88)
    db.commit()
    return row


def _log_in(page: Page, server: LiveServer, email: str) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(lambda url: "/login" not in url)


def _too_small(page: Page) -> list[dict[str, Any]]:
    texts: list[dict[str, Any]] = page.evaluate(RENDERED_TEXT)
    assert texts, "no chart text on the page"
    return [t for t in texts if t["px"] < MIN_PX]


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_overview_axes_count_and_every_chart_number_is_legible(
    browser: Browser,
    live_server: LiveServer,  # noqa: F811 - the fixture imported above
    people: People,
    db: Session,
    artefacts: Path,
    viewport: str,
) -> None:
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    result = _scored(db, people, cohort)
    context = new_context(browser, viewport)
    page = context.new_page()
    _log_in(page, live_server, people.instructor.email)

    page.goto(f"{live_server.url}/cohorts/{cohort.id}/overview")
    for chart in ("chart-histogram", "chart-per-day"):
        ticks = page.get_by_test_id(chart).get_by_test_id("axis-tick").all_text_contents()
        numbers = [int(t) for t in ticks]  # whole numbers, nothing else
        assert sorted(numbers) == numbers and len(set(numbers)) == len(numbers) >= 2, (chart, ticks)
        assert numbers[0] == 0, (chart, ticks)
    # The histogram prints each count on its bar and draws the pass line.
    histogram = page.get_by_test_id("chart-histogram")
    assert sorted(histogram.get_by_test_id("bar-value").all_text_contents(), reverse=True)[:2] == ["1", "1"]
    expect(histogram.get_by_test_id("pass-line")).to_be_attached()
    for summary in page.locator(".chart-table summary").all():
        summary.click()
    expect(page.get_by_test_id("chart-histogram-table")).to_contain_text("96–98%")
    expect(page.get_by_test_id("chart-per-day-table")).to_be_visible()
    assert _too_small(page) == []
    check_page(page, artefacts, "1-overview")

    page.goto(f"{live_server.url}/submissions/{result.id}")
    expect(page.get_by_test_id("chart-confusion")).to_be_attached()
    assert _too_small(page) == []
    frame = page.get_by_test_id("heat-scroll")
    hint = page.get_by_test_id("heat-hint")
    if viewport == "phone":
        # Wider than the phone: the frame scrolls (the page itself does not, check_page says).
        assert frame.evaluate("e => e.scrollWidth > e.clientWidth")
        expect(hint).to_be_visible()
        expect(hint).to_contain_text("表で見る")
    else:
        assert frame.evaluate("e => e.scrollWidth <= e.clientWidth")
        expect(hint).to_be_hidden()
    counts = page.get_by_test_id("chart-confusion").locator("text.count").all_text_contents()
    assert any(re.fullmatch(r"\d{4}", c) for c in counts)  # four-digit counts are drawn, not only in the table
    check_page(page, artefacts, "2-result")

    page.goto(f"{live_server.url}/cohorts/{cohort.id}/trainees/{people.trainee.id}")
    history = page.get_by_test_id("chart-history")
    expect(history.get_by_test_id("pass-line")).to_be_attached()
    page.locator(".chart-table summary").first.click()
    expect(page.get_by_test_id("table-history")).to_contain_text("提出.zip")  # the file, in the data table
    assert _too_small(page) == []
    check_page(page, artefacts, "3-trainee-history")
    context.close()
