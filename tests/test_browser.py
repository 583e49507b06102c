"""A real browser against a live server: the form, the image page, the gallery and the docs.

Every page runs under the app's Content-Security-Policy, so a blocked inline script or style
would show up here as a console error.
"""

import json
import re
from pathlib import Path

import pytest

from tests.conftest import LiveServer, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]  # its own live server


def watch(page) -> list[str]:
    """Problems the page reports: script errors and anything the CSP refused."""
    problems = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text or "Refused to" in message.text
            else None)
    return problems


def api_generate(client, prompt, **fields):
    body = {"prompt": prompt, "provider": "offline", "width": 512, "height": 512, **fields}
    response = client.post("/api/generate", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def test_generate_from_the_form_and_see_the_image(live_server, page):
    problems = watch(page)
    page.goto(live_server.url + "/")
    page.fill("#prompt", "a neon city at night")
    page.fill("#negative_prompt", "daylight")
    assert page.locator("[data-counter-for=prompt]").inner_text() == "20 / 2000"
    page.click("#size-presets button:has-text('Landscape')")
    assert page.input_value("#width") == "1216" and page.input_value("#height") == "832"
    page.fill("#width", "768")
    page.fill("#height", "512")
    assert page.is_checked("#random_seed")
    page.fill("#seed", "2024")
    assert not page.is_checked("#random_seed")  # typing a seed turns "random" off
    page.fill("#steps", "24")
    assert page.input_value("#steps-range") == "24"
    screenshot(page, "generate")
    page.click("#generate-button")
    page.wait_for_url(re.compile(r"/images/\d+$"))
    page.wait_for_function("() => document.getElementById('full-image').complete")
    assert page.evaluate("document.getElementById('full-image').naturalWidth") == 768
    assert "a neon city at night" in page.locator("h1").inner_text()
    assert "Seed: 2024, Size: 768x512" in page.locator(".parameters").inner_text()
    assert page.get_attribute("#full-image", "alt") == "a neon city at night"
    screenshot(page, "image")
    page.click("nav >> text=Gallery")
    page.wait_for_url("**/images")
    assert page.locator(".grid img").count() == 1
    screenshot(page, "gallery")
    assert problems == []


def test_model_choice_disables_what_it_ignores_and_shows_its_limits(make_app, page,
                                                                    fake_stability):
    app = make_app(STABILITY_API_KEY=fake_stability.api_key,
                   STABILITY_BASE_URL=fake_stability.url)
    with LiveServer(app) as server:
        page.goto(server.url + "/")
        providers = json.loads(page.text_content("#providers-data"))
        stability = next(p for p in providers if p["name"] == "stability")
        sd3 = next(m for m in stability["models"] if "cfg_scale" in m["limits"])
        page.select_option("#provider", "stability")
        page.select_option("#model", sd3["name"])
        limit = sd3["limits"]["cfg_scale"]
        assert page.get_attribute("#cfg_scale", "max") == f"{limit['maximum']:g}"
        assert f"{limit['minimum']:g}–{limit['maximum']:g} on {sd3['label']}" in page.inner_text(
            "[data-limits-for=cfg_scale]")
        assert page.is_disabled("#steps") and "Ignored by" in page.inner_text(
            "[data-limits-for=steps]")
        sizes = page.locator("#size-presets button").count()
        assert sizes >= len({tuple(s) for s in sd3["sizes"]})
        page.select_option("#provider", "offline")
        assert page.is_enabled("#steps")
        assert page.get_attribute("#cfg_scale", "max") == "20"


def test_slow_generation_shows_a_spinner_and_cannot_be_sent_twice(make_app, page,
                                                                  fake_stability):
    app = make_app(STABILITY_API_KEY=fake_stability.api_key,
                   STABILITY_BASE_URL=fake_stability.url)
    posts = []
    page.on("request", lambda request: posts.append(request.url)
            if request.method == "POST" else None)
    with LiveServer(app) as server:
        page.goto(server.url + "/")
        page.select_option("#provider", "stability")
        page.fill("#prompt", "a slow red fox [fault:hold]")  # answered once released
        # Observed from inside the page: Playwright's own calls would wait for the navigation.
        state = page.evaluate("""() => new Promise((resolve) => {
            const button = document.getElementById("generate-button");
            button.click();
            const at_once = {spinner: !!button.querySelector(".spinner"),
                             disabled: button.disabled, busy: button.getAttribute("aria-busy"),
                             elapsed: button.querySelector(".elapsed").textContent};
            document.getElementById("generate-form").requestSubmit();  // a second try
            const counted = setInterval(() => {  // until the counter has moved on, however late
                const elapsed = button.querySelector(".elapsed").textContent;
                if (elapsed === at_once.elapsed) return;
                clearInterval(counted);
                resolve({...at_once, later: elapsed, disabled_later: button.disabled,
                         status: document.getElementById("generate-status").textContent});
            }, 50);
        })""")
        assert state["spinner"] and state["disabled"] and state["busy"] == "true"
        assert state["elapsed"] == "0 s" and re.fullmatch(r"[1-9]\d* s", state["later"])
        assert state["disabled_later"] and "Generating" in state["status"]
        fake_stability.release()
        page.wait_for_url(re.compile(r"/images/\d+$"), timeout=60000)
    assert len([r for r in fake_stability.requests if r.method == "POST"]) == 1
    assert len(posts) == 1


def test_provider_error_shows_a_banner_and_keeps_the_values(make_app, page, fake_stability):
    app = make_app(STABILITY_API_KEY=fake_stability.api_key,
                   STABILITY_BASE_URL=fake_stability.url)
    with LiveServer(app) as server:
        problems = watch(page)
        page.goto(server.url + "/")
        page.select_option("#provider", "stability")
        page.fill("#prompt", "a broke cat [fault:402]")
        page.fill("#negative_prompt", "dogs")
        page.fill("#seed", "99")
        page.click("#generate-button")
        banner = page.locator("#banner[role=alert]")
        banner.wait_for()
        assert "out of credits" in banner.inner_text()
        assert page.input_value("#prompt") == "a broke cat [fault:402]"
        assert page.input_value("#negative_prompt") == "dogs"
        assert page.input_value("#seed") == "99"
        assert page.input_value("#provider") == "stability"
        assert page.is_enabled("#generate-button")
        screenshot(page, "provider-error")
        page.set_viewport_size({"width": 390, "height": 844})
        assert no_horizontal_scroll(page)
        assert problems == []


def test_field_errors_appear_next_to_their_fields(live_server, page):
    page.goto(live_server.url + "/")
    page.fill("#prompt", "a tiny boat")
    page.fill("#width", "1000")
    page.click("#generate-button")
    error = page.locator("[data-field=width] .field-error")
    error.wait_for()
    assert "multiple of 64" in error.inner_text()
    assert page.get_attribute("#width", "aria-invalid") == "true"
    assert page.input_value("#width") == "1000" and page.input_value("#prompt") == "a tiny boat"


def test_use_these_settings_and_same_seed_prefill_the_form(app, live_server, page):
    record = api_generate(app.test_client(), "a paper boat", seed=31337, steps=21,
                          negative_prompt="rain", width=640)
    page.goto(f"{live_server.url}/images/{record['id']}")
    page.click("text=Use these settings")
    page.wait_for_url(re.compile(r"/\?from="))
    assert page.input_value("#prompt") == "a paper boat"
    assert page.input_value("#negative_prompt") == "rain"
    assert page.input_value("#seed") == "31337" and not page.is_checked("#random_seed")
    assert page.input_value("#steps") == "21" and page.input_value("#steps-range") == "21"
    assert page.input_value("#width") == "640"
    page.go_back()
    page.click("text=Same seed, new prompt")
    page.wait_for_url(re.compile(r"keep=seed"))
    assert page.input_value("#prompt") == "" and page.input_value("#seed") == "31337"


def test_download_button_saves_the_image_file(app, live_server, page):
    record = api_generate(app.test_client(), "a lighthouse to keep", seed=4242)
    page.goto(f"{live_server.url}/images/{record['id']}")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == record["filename"]
    stored = Path(app.config["IMAGES_DIR"]) / record["filename"]
    assert Path(download.path()).read_bytes() == stored.read_bytes()


def test_copy_buttons_and_delete_with_confirmation(app, live_server, page):
    client = app.test_client()
    keep = api_generate(client, "a quiet harbour")
    doomed = api_generate(client, "a doomed sandcastle", seed=777)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"{live_server.url}/images/{doomed['id']}")
    page.click("[data-copy='#seed-value']")
    page.wait_for_function("() => document.getElementById('copy-status').textContent !== ''")
    assert page.evaluate("navigator.clipboard.readText()") == "777"
    page.click("[data-copy='#prompt-text']")
    page.wait_for_function("() => document.getElementById('copy-status').textContent === 'Prompt copied'")
    assert page.evaluate("navigator.clipboard.readText()") == "a doomed sandcastle"
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button:has-text('Delete')")
    assert page.url.endswith(f"/images/{doomed['id']}")  # dismissed: nothing happened
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Delete')")
    page.wait_for_url("**/images")
    assert "Image deleted." in page.inner_text(".notice")
    assert page.locator(".grid img").count() == 1
    assert page.get_attribute(".grid img", "alt") == keep["prompt"]


def test_gallery_search_and_pages_over_60_images(app, live_server, page):
    client = app.test_client()
    for i in range(60):
        api_generate(client, f"{'red fox' if i % 3 == 0 else 'blue whale'} number {i}",
                     seed=i + 1)
    page.goto(live_server.url + "/images")
    assert "60 images" in page.inner_text("#result-count")
    first = page.locator(".grid img")
    assert first.count() == 48
    assert first.first.get_attribute("alt") == "blue whale number 59"  # newest first
    assert first.first.get_attribute("loading") == "lazy"
    assert first.first.get_attribute("width") == "384"
    assert page.locator("a[rel=prev]").count() == 0
    page.click("a[rel=next]")
    assert page.locator(".grid img").count() == 12
    assert page.locator(".grid img").last.get_attribute("alt") == "red fox number 0"
    assert page.locator("a[rel=next]").count() == 0
    page.click("a[rel=prev]")
    assert page.locator(".grid img").count() == 48
    assert page.locator(".grid img").first.get_attribute("alt") == "blue whale number 59"
    page.fill("#q", "fox")
    page.click(".filters button[type=submit]")
    assert "20 images" in page.inner_text("#result-count")
    assert page.locator(".grid img").count() == 20
    page.fill("#q", "unicorn")
    page.click(".filters button[type=submit]")
    assert "No images match" in page.inner_text(".empty")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + "/images")
    page.wait_for_load_state("load")
    assert no_horizontal_scroll(page)
    screenshot(page, "gallery-phone")


def test_pages_fit_a_phone_screen(app, live_server, page):
    record = api_generate(app.test_client(), "a very long prompt " * 30)
    page.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("generate-phone", "/"), ("image-phone", f"/images/{record['id']}"),
                       ("gallery-empty-phone", "/images?q=nothing"), ("404-phone", "/nope")):
        page.goto(live_server.url + path)
        assert no_horizontal_scroll(page), path
        screenshot(page, name)


def test_docs_work_offline_and_try_it_out_generates(live_server, page):
    problems = watch(page)
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(live_server.url + "/docs")
    operation = page.locator("#operations-images-generate")
    operation.wait_for()
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    body = json.dumps({"prompt": "docs example", "provider": "offline", "width": 512,
                       "height": 512, "seed": 5})
    operation.locator("textarea.body-param__text").fill(body)
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table td.response-col_status:not(.col_header)")
    status.wait_for()
    assert status.inner_text().strip() == "201"
    screenshot(page, "docs")
    assert requests and all(
        url.startswith(live_server.url + "/") or url.startswith(("data:", "blob:"))
        for url in requests), [u for u in requests if not u.startswith(live_server.url)]
    assert any(url.endswith("/api/generate") for url in requests)
    assert problems == []


def test_the_form_shows_the_chosen_models_options_and_makes_a_batch(make_app, fake_stability,
                                                                   page):
    app = make_app(STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url)
    with LiveServer(app) as server:
        problems = watch(page)
        page.goto(server.url + "/")
        page.select_option("#provider", "stability")
        page.select_option("#model", "core")
        core = page.locator('[data-options-for="stability|core"]')
        assert core.is_visible()
        assert not page.locator('[data-options-for="stability|sd3.5-large"]').is_visible()
        formats = core.locator("select[name$='|output_format'] option").all_inner_texts()
        assert "webp" in formats
        page.select_option("#provider", "offline")
        assert not core.is_visible() and page.locator("#no-options").is_visible()
        assert core.locator("select").first.is_disabled()  # hidden fields are not sent
        page.fill("#prompt", "three paper boats")
        page.fill("#width", "512")
        page.fill("#height", "512")
        page.fill("#count", "3")
        page.click("#generate-button")
        page.wait_for_url(re.compile(r"/batches/[0-9a-f]{32}$"))
        assert page.locator(".batch .grid li").count() == 3
        page.click("#batch-settings")
        page.wait_for_url(re.compile(r"/\?batch="))
        assert page.input_value("#count") == "3"
        assert problems == []
