"""A real browser against a live server: the form, the image page, the gallery."""

import pytest

from tests.conftest import screenshot

pytestmark = pytest.mark.browser


def test_generate_from_the_form_and_see_the_image(live_server, page):
    page.goto(live_server.url + "/")
    page.fill("#prompt", "a neon city at night")
    page.fill("#negative_prompt", "daylight")
    page.fill("#width", "768")
    page.fill("#height", "512")
    page.fill("#seed", "2024")
    screenshot(page, "generate")
    page.click("#generate-button")
    page.wait_for_url("**/images/*")
    image = page.locator("#full-image")
    image.wait_for()
    page.wait_for_function("document.getElementById('full-image').complete")
    assert page.evaluate("document.getElementById('full-image').naturalWidth") == 768
    assert "a neon city at night" in page.locator("h1").inner_text()
    assert "Seed: 2024, Size: 768x512" in page.locator(".parameters").inner_text()
    screenshot(page, "image")
    page.click("text=Gallery")
    page.wait_for_url("**/images")
    assert page.locator(".grid img").count() == 1
    screenshot(page, "gallery")
