"""The pages, through the Flask client with CSRF switched on as in production."""

import io
import json
import re

import pytest
from PIL import Image as PILImage

from tests.conftest import files_in


@pytest.fixture
def app(make_app):
    return make_app(WTF_CSRF_ENABLED=True)


def csrf_token(client, path="/"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def form_data(client, **fields):
    return {"csrf_token": csrf_token(client), "prompt": "a lighthouse in a storm",
            "negative_prompt": "", "provider": "offline", "model": "", "width": "512",
            "height": "512", "steps": "20", "cfg_scale": "7", "seed": "", **fields}


def test_form_renders_every_parameter_with_a_csrf_token(client):
    page = client.get("/").get_data(as_text=True)
    assert 'name="csrf_token"' in page
    for name in ("prompt", "negative_prompt", "provider", "model", "width", "height", "steps",
                 "cfg_scale", "seed"):
        assert f'name="{name}"' in page
    assert "Offline renderer (no AI model)" in page


def test_post_without_csrf_token_is_refused(client, images_dir):
    data = form_data(client)
    del data["csrf_token"]
    response = client.post("/", data=data)
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert files_in(images_dir) == []


def test_valid_post_redirects_to_the_image_page(client, images_dir):
    response = client.post("/", data=form_data(client, seed="4242"))
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/images/\d+", location)
    page = client.get(location).get_data(as_text=True)
    assert "a lighthouse in a storm" in page
    assert "4242" in page
    assert "Seed: 4242, Size: 512x512, Model: abstract" in page
    assert len(files_in(images_dir)) == 2


def test_invalid_post_rerenders_with_errors_and_values_kept(client, images_dir):
    response = client.post("/", data=form_data(client, width="1000", steps="99",
                                               negative_prompt="no birds"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Input should be a multiple of 64" in page
    assert "Input should be less than or equal to 50" in page
    assert "a lighthouse in a storm</textarea>" in page
    assert "no birds</textarea>" in page
    assert 'value="1000"' in page and 'value="99"' in page
    assert files_in(images_dir) == []


def test_provider_error_shows_a_banner_and_keeps_values(client):
    response = client.post("/", data=form_data(client, provider="stability"))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'role="alert"' in page and "not configured" in page
    assert "a lighthouse in a storm</textarea>" in page


def test_script_in_a_prompt_is_escaped_everywhere(client):
    evil = '<script>alert("x")</script>'
    response = client.post("/", data=form_data(client, prompt=evil, negative_prompt=evil))
    location = response.headers["Location"]
    for path in ("/", "/images", location, "/images?q=script"):
        page = client.get(path).get_data(as_text=True)
        assert evil not in page
        assert "&lt;script&gt;" in page


def test_gallery_lists_searches_and_filters(client):
    for prompt in ("red fox", "blue whale"):
        client.post("/", data=form_data(client, prompt=prompt))
    page = client.get("/images").get_data(as_text=True)
    assert "red fox" in page and "blue whale" in page and "2 images" in page
    found = client.get("/images?q=whale").get_data(as_text=True)
    assert "blue whale" in found and "red fox" not in found and "1 image<" in found
    empty = client.get("/images?provider=stability").get_data(as_text=True)
    assert "No images" in empty


def test_use_these_settings_prefills_the_form(client):
    location = client.post("/", data=form_data(client, seed="77", steps="33")).headers["Location"]
    image_id = location.rsplit("/", 1)[1]
    page = client.get(f"/?from={image_id}").get_data(as_text=True)
    assert "a lighthouse in a storm</textarea>" in page
    assert 'value="77"' in page and 'value="33"' in page
    same_seed = client.get(f"/?from={image_id}&keep=seed").get_data(as_text=True)
    assert 'value="77"' in same_seed and "a lighthouse in a storm</textarea>" not in same_seed


def test_delete_needs_csrf_and_removes_everything(client, images_dir):
    location = client.post("/", data=form_data(client)).headers["Location"]
    image_id = location.rsplit("/", 1)[1]
    assert client.post(f"/images/{image_id}/delete").status_code == 400
    token = csrf_token(client, location)
    response = client.post(f"/images/{image_id}/delete", data={"csrf_token": token})
    assert response.status_code == 303
    assert files_in(images_dir) == []
    assert client.get(location).status_code == 404


def test_html_404_page(client):
    response = client.get("/images/999")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Gallery" in response.get_data(as_text=True)


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>")
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


def test_pages_have_no_inline_script_for_the_csp(client):
    location = client.post("/", data=form_data(client)).headers["Location"]
    for path in ("/", "/images", location, "/docs", "/images/999"):
        page = client.get(path).get_data(as_text=True)
        assert not INLINE_SCRIPT.search(page), path
        assert not INLINE_HANDLER.search(page), path
        assert "https://" not in page and "http://" not in page, path


def test_form_carries_the_provider_data_and_the_rules(client):
    page = client.get("/").get_data(as_text=True)
    data = re.search(r'<script type="application/json" id="providers-data">(.*?)</script>',
                     page, re.S).group(1)
    providers = {p["name"]: p for p in json.loads(data)}
    assert providers["offline"]["configured"] and not providers["stability"]["configured"]
    assert "Replicate: not configured" in page
    assert re.search(r'<input[^>]* checked id="random_seed"', page)
    assert re.search(r'<input[^>]* name="seed" type="number" value="">', page)
    assert "1–20." in page and "512–2048, multiple of 64." in page
    assert page.count('name="steps"') == 1 and page.count('name="cfg_scale"') == 1


def test_random_seed_checkbox_wins_over_a_typed_seed(client):
    location = client.post("/", data=form_data(client, seed="55", random_seed="y")).headers[
        "Location"]
    page = client.get(location).get_data(as_text=True)
    assert "Seed: 55," not in page
    assert re.search(r"<td>[^<]*random[^<]*</td>", page)


@pytest.mark.parametrize("fault, status, title", [
    ("402", 402, "out of credits"),
    ("403", 422, "refused this prompt"),
])
def test_provider_errors_show_a_titled_banner(make_app, fake_stability, fault, status, title):
    app = make_app(WTF_CSRF_ENABLED=True, STABILITY_API_KEY=fake_stability.api_key,
                   STABILITY_BASE_URL=fake_stability.url)
    client = app.test_client()
    response = client.post("/", data=form_data(client, provider="stability",
                                               prompt=f"a cat [fault:{fault}]"))
    assert response.status_code == status
    page = response.get_data(as_text=True)
    assert 'role="alert"' in page and title in page
    assert f"a cat [fault:{fault}]</textarea>" in page
    assert fake_stability.api_key not in page


def test_model_range_error_is_shown_at_the_field_with_the_limit(make_app, fake_stability):
    app = make_app(WTF_CSRF_ENABLED=True, STABILITY_API_KEY=fake_stability.api_key,
                   STABILITY_BASE_URL=fake_stability.url)
    client = app.test_client()
    response = client.post("/", data=form_data(client, provider="stability", cfg_scale="15",
                                               model="sd3.5-large"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    error = re.search(r'<p class="field-error" id="cfg_scale-error">([^<]*)</p>', page)
    assert error and "between 1 and 10" in error.group(1)
    assert "1–10 on SD 3.5 Large." in page


def test_image_page_shows_requested_beside_used_values(make_app, fake_stability):
    app = make_app(WTF_CSRF_ENABLED=True, STABILITY_API_KEY=fake_stability.api_key,
                   STABILITY_BASE_URL=fake_stability.url)
    client = app.test_client()
    location = client.post("/", data=form_data(
        client, provider="stability", model="sd3.5-large", width="960", height="640",
        prompt="a filtered cat [fault:filtered]")).headers["Location"]
    page = client.get(location).get_data(as_text=True)
    row = re.search(r"<th scope=\"row\">Size</th>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", page, re.S)
    assert row.group(1).strip() == "1216×832" and row.group(2).strip() == "960×640"
    assert "ignored" in page and "Ignored:</strong> Steps" in page
    assert "Content filtered by the provider" in page
    assert 'data-confirm="Delete this image?' in page
    assert "Size: 1216x832, Model: sd3.5-large" in page


def test_gallery_pages_both_ways(app, client):
    from app.web.routes import GALLERY_PAGE

    for i in range(GALLERY_PAGE + 5):
        client.post("/api/generate", json={"prompt": f"tile {i}", "width": 512, "height": 512})
    first = client.get("/images").get_data(as_text=True)
    assert 'rel="prev"' not in first and f"{GALLERY_PAGE + 5} images" in first
    older_url = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    older = client.get(older_url).get_data(as_text=True)
    assert older.count('<li data-image-id=') == 5 and 'alt="tile 0"' in older and 'rel="next"' not in older
    newer_url = re.search(r'href="([^"]+)" rel="prev"', older).group(1).replace("&amp;", "&")
    newer = client.get(newer_url).get_data(as_text=True)
    assert newer.count('<li data-image-id=') == GALLERY_PAGE and f'alt="tile {GALLERY_PAGE + 4}"' in newer
    assert 'rel="prev"' not in newer
    assert client.get("/images?before=garbage!").status_code == 404


def test_gallery_empty_state_points_to_the_form(client):
    page = client.get("/images").get_data(as_text=True)
    assert "No images yet" in page and 'href="/"' in page
    page = client.get("/images?q=nothing").get_data(as_text=True)
    assert "No images match" in page and "Show all images" in page


def test_friendly_500_page(app, client):
    def boom():
        raise RuntimeError("secret internals")

    app.add_url_rule("/boom", view_func=boom)
    response = client.get("/boom")
    assert response.status_code == 500 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Something went wrong" in page and "secret internals" not in page
    assert "Open the gallery" in page


def test_docs_page_and_assets(client):
    page = client.get("/docs").get_data(as_text=True)
    assert 'data-spec-url="/api/openapi.json"' in page
    with client.get("/docs/assets/swagger-ui.css") as response:
        assert response.status_code == 200 and response.mimetype == "text/css"


def test_form_page_shows_the_twelve_newest_images_newest_first(client):
    for number in range(13):
        client.post("/api/generate", json={"prompt": f"study number {number}", "width": 512,
                                           "height": 512, "steps": 10})
    page = client.get("/").get_data(as_text=True)
    shown = [int(n) for n in re.findall(r'alt="study number (\d+)"', page)]
    assert shown == list(range(12, 0, -1))


def api_record(client, prompt, **fields):
    body = {"prompt": prompt, "provider": "offline", "width": 768, "height": 512, **fields}
    response = client.post("/api/generate", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_image_page_download_link_gives_the_stored_file(client, images_dir):
    record = api_record(client, "a lighthouse to keep")
    page = client.get(f"/images/{record['id']}").get_data(as_text=True)
    [href] = re.findall(r'<a class="button" href="([^"]+)" download>Download</a>', page)
    assert href == record["url"]
    with client.get(href) as response:
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.data == (images_dir / record["filename"]).read_bytes()


def test_gallery_shows_thumbnails_not_full_images(client):
    records = [api_record(client, prompt) for prompt in ("a red fox", "a blue whale")]
    page = client.get("/images").get_data(as_text=True)
    grid = page.split('<ul class="grid">', 1)[1].split("</ul>", 1)[0]
    sources = re.findall(r'<img src="([^"]+)"', grid)
    assert sorted(sources) == sorted(r["thumbnail_url"] for r in records)
    assert not {r["url"] for r in records} & set(re.findall(r'src="([^"]+)"', page))
    for record in records:
        with client.get(record["thumbnail_url"]) as response:
            assert response.status_code == 200 and response.mimetype == "image/webp"
            with PILImage.open(io.BytesIO(response.data)) as thumb:
                assert thumb.size == (384, 256)  # 768x512 brought down to the 384 px box
