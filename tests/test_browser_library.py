"""A real browser on the library: select and bulk delete, add to a collection, drop an image on
the form, import by dropping files on the gallery (all under the app's strict CSP)."""

from __future__ import annotations

import base64
import re

import pytest

from tests import metadata_samples as samples
from tests.conftest import screenshot
from tests.test_browser import watch

pytestmark = pytest.mark.browser

DROP = """([selector, files]) => {
    const transfer = new DataTransfer();
    for (const [name, b64] of files) {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        transfer.items.add(new File([bytes], name, {type: "image/png"}));
    }
    const target = document.querySelector(selector);
    for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true,
                                                  cancelable: true}));
    }
}"""


def drop(page, selector, *files):
    page.evaluate(DROP, [selector, [[name, base64.b64encode(data).decode()]
                                    for name, data in files]])


@pytest.fixture
def guarded_server(make_app):
    """API tokens on: the page must do everything without one."""
    from tests.conftest import LiveServer

    app = make_app(API_TOKENS=["browser-token"])
    with LiveServer(app) as server:
        server.client = app.test_client()
        server.auth = {"Authorization": "Bearer browser-token"}
        yield server


def make(server, prompt):
    response = server.client.post("/api/generate", headers=server.auth, json={
        "prompt": prompt, "provider": "offline", "width": 512, "height": 512})
    assert response.status_code == 201
    return response.get_json()


def test_select_with_shift_click_and_bulk_delete(guarded_server, page):
    problems = watch(page)
    for index in range(5):
        make(guarded_server, f"tile {index}")
    page.goto(guarded_server.url + "/images")
    page.click("#select-toggle")
    cards = page.locator(".grid > li")
    cards.nth(0).locator("img").click()
    cards.nth(2).locator("img").click(modifiers=["Shift"])
    assert page.inner_text("#selection-count") == "3 selected"
    screenshot(page, "gallery-select")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click("[data-bulk=delete]")
    page.wait_for_function("() => document.querySelectorAll('.grid > li').length === 2")
    assert dialogs == ["Delete 3 images? This cannot be undone."]
    assert "2 images" in page.inner_text("#result-count")
    assert [a.get_attribute("alt") for a in page.locator(".grid img").all()] == ["tile 1",
                                                                                 "tile 0"]
    assert problems == []


def test_add_to_a_collection_from_the_image_page_and_the_gallery(guarded_server, page):
    problems = watch(page)
    first, second = make(guarded_server, "a castle"), make(guarded_server, "a moat")
    page.goto(guarded_server.url + f"/images/{first['id']}")
    page.fill("#new-collection", "Castles")
    page.click("#add-to-collection button")
    page.wait_for_selector("#image-collections a:has-text('Castles')")
    page.goto(guarded_server.url + "/images")
    page.click("#select-toggle")
    page.click("#select-page")
    page.select_option("#bulk-collection", label="Castles")
    with page.expect_navigation():  # the page reloads once the action is done
        page.click("[data-bulk=add_to_collection]")
    page.goto(guarded_server.url + "/collections")
    assert "2 images" in page.inner_text("#collection-list")
    page.click("#collection-list a")
    assert page.locator(".grid img").count() == 2
    # the star on a card, without a reload
    page.locator(f"li[data-image-id='{second['id']}'] .star").click()
    page.wait_for_selector(f"li[data-image-id='{second['id']}'] .star.on")
    assert guarded_server.client.get(f"/api/images/{second['id']}",
                                     headers=guarded_server.auth).get_json()["favorite"] is True
    assert problems == []


def test_drop_an_image_on_the_form_offers_before_applying(live_server, page):
    problems = watch(page)
    page.goto(live_server.url + "/")
    page.fill("#prompt", "my own prompt")
    drop(page, "#generate-form", ("a1111.png", samples.a1111_png()))
    page.wait_for_selector("#png-info-result:not([hidden]) dd[data-found=seed]")
    assert "AUTOMATIC1111" in page.inner_text("#png-info-title")
    assert page.input_value("#prompt") == "my own prompt"  # nothing changed yet
    page.click("[data-apply=seed]")
    assert page.input_value("#seed") == "1234567890" and not page.is_checked("#random_seed")
    assert page.input_value("#prompt") == "my own prompt"
    drop(page, "#generate-form", ("a1111.png", samples.a1111_png()))
    page.wait_for_selector("#png-info-result:not([hidden]) dd[data-found=seed]")
    page.click("[data-apply=prompt]")
    assert page.input_value("#prompt").startswith("a lighthouse in a storm")
    assert page.input_value("#steps") == "30"  # only the prompt
    drop(page, "#generate-form", ("a1111.png", samples.a1111_png()))
    page.wait_for_selector("#png-info-result:not([hidden]) dd[data-found=seed]")
    page.click("[data-apply=all]")
    assert page.input_value("#steps") == "28" and page.input_value("#cfg_scale") == "6.5"
    assert page.input_value("#negative_prompt") == "blurry, lowres"
    screenshot(page, "generate-png-info")
    drop(page, "#generate-form", ("notes.png", b"<script>alert(1)</script>"))
    page.wait_for_function(
        "() => document.getElementById('png-info-title').textContent.includes('Not an image')")
    assert page.is_disabled("[data-apply=all]")
    assert problems == []


def test_import_by_dropping_files_on_the_gallery(guarded_server, page):
    problems = watch(page)
    page.goto(guarded_server.url + "/images")
    drop(page, "body", ("a1111.png", samples.a1111_png()),
         ("comfy.png", samples.sample("comfyui_custom_advanced.png")))
    page.wait_for_function("() => document.querySelectorAll('.grid > li').length === 2")
    assert "2 images" in page.inner_text("#result-count")
    drop(page, "body", ("again.png", samples.a1111_png()), ("bad.png", b"nope"))
    page.wait_for_function(
        "() => document.getElementById('import-status').textContent.startsWith('Imported 0')")
    status = page.inner_text("#import-status")
    assert "skipped 1 already in the library, refused 1" in status and "bad.png" in status
    page.click(".grid img >> nth=0")
    page.wait_for_url(re.compile(r"/images/\d+$"))
    assert "parameters read from" in page.inner_text(".params")
    assert problems == []
