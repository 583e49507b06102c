"""The /usage page and the form's estimate in a real browser, with no request off 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import LiveServer, screenshot
from tests.test_browser import watch
from tests.test_spending import spent

pytestmark = pytest.mark.browser


def outside_requests(page) -> list[str]:
    seen = []
    page.on("request", lambda request: seen.append(request.url)
            if not request.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
    return seen


def test_usage_page_charts_the_last_30_days_by_provider(make_app, page):
    app = make_app(DAILY_BUDGET="5.065", PRICES="offline/abstract=0.5")
    now = datetime.now(UTC)
    rows = [("stability", "sd3.5-large", "alice", 0.065, 1, 0),
            ("stability", "sd3.5-large", "alice", 0.13, 2, 3),
            ("replicate", "black-forest-labs/flux-schnell", "bob", 0.009, 3, 3),
            ("stability", "ultra", "alice", 0.08, 1, 40)]  # older than 30 days: not charted
    for provider, model, by, amount, images, days_ago in rows:
        spent(app, now - timedelta(days=days_ago), provider, model, by, amount, images)
    with LiveServer(app) as server:
        problems, outside = watch(page), outside_requests(page)
        page.goto(server.url + "/")
        page.click("nav >> text=Usage")
        page.wait_for_url("**/usage")
        assert page.locator("#usage-chart rect.bar").count() == 3
        assert page.locator("#usage-chart").get_attribute("data-metric") == "cost"
        legend = page.locator("#chart-legend").inner_text()
        assert "stability: $0.195" in legend and "replicate: $0.009" in legend
        titles = page.locator("#usage-chart rect.bar title").all_text_contents()
        assert f"{now.date().isoformat()} · stability: $0.065" in titles
        assert page.locator("#by-model tfoot").inner_text().split() == ["Total", "6", "$0.204"]
        assert page.locator("#by-token tbody tr").all_inner_texts()[0].split() == [
            "alice", "3", "$0.195"]
        assert "$5.00 left today" in page.locator("#budget-today").inner_text()
        box = page.locator("#usage-chart").bounding_box()
        assert box["width"] > 600 and box["height"] > 150
        screenshot(page, "usage")
        assert problems == [] and outside == []


def test_the_form_estimates_count_times_price_as_choices_change(make_app, page, fake_stability):
    fake_stability.credits = 77
    app = make_app(STABILITY_API_KEY=fake_stability.api_key,
                   STABILITY_BASE_URL=fake_stability.url)
    with LiveServer(app) as server:
        problems, outside = watch(page), outside_requests(page)
        page.goto(server.url + "/")
        page.select_option("#provider", "stability")
        page.select_option("#model", "sd3.5-large")
        assert page.inner_text("#cost-value") == "$0.065"
        assert page.is_visible("#balance-stability")
        assert "77 credits" in page.inner_text("#balance-stability")
        page.select_option("#model", "sdxl-1.0")
        page.fill("#steps", "50")
        assert page.inner_text("#cost-value") == "$0.015"  # 0.9 credits × 50/30 steps
        page.select_option("#provider", "offline")
        assert page.inner_text("#cost-value") == "$0.00"
        assert not page.is_visible("#balance-stability")
        assert problems == [] and outside == []
