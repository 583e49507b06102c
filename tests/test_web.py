"""The pages, through the Flask client with CSRF switched on as in production."""

import re

import pytest

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
