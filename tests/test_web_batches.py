"""The form with a count and a model's options, the batch page, and the image page's options."""

import html
import re

import pytest

from tests.conftest import files_in
from tests.test_web import form_data

STYLE_FIELD = "option|stability|sd3.5-large|style_preset"


@pytest.fixture
def app(make_app, fake_stability):
    return make_app(WTF_CSRF_ENABLED=True, STABILITY_API_KEY=fake_stability.api_key,
                    STABILITY_BASE_URL=fake_stability.url)


def test_a_batch_from_the_form_ends_on_the_batch_page(client, images_dir):
    response = client.post("/", data=form_data(client, count="3", seed="500",
                                               random_seed=""))
    assert response.status_code == 303
    location = response.headers["Location"]
    batch_id = re.fullmatch(r"/batches/([0-9a-f]{32})", location).group(1)
    page = client.get(location).get_data(as_text=True)
    images = client.get(f"/api/images?batch={batch_id}").get_json()
    assert len(images) == 3
    for image in images:
        assert f'href="/images/{image["id"]}"' in page
    assert "seeds 500, 501, 502" in page
    settings = html.unescape(re.search(r'id="batch-settings" href="([^"]+)"', page).group(1))
    form = client.get(settings).get_data(as_text=True)
    assert re.search(r'name="count"[^>]*value="3"', form)
    assert re.search(r'name="seed"[^>]*value="500"', form)


def test_the_image_page_links_its_batch(client):
    location = client.post("/", data=form_data(client, count="2")).headers["Location"]
    batch_id = location.rsplit("/", 1)[-1]
    first, second = sorted(client.get(f"/api/images?batch={batch_id}").get_json(),
                           key=lambda i: i["batch_index"])
    page = client.get(f"/images/{second['id']}").get_data(as_text=True)
    assert f'href="/batches/{batch_id}"' in page and "image 2 of 2" in page
    assert f'href="/images/{first["id"]}"' in page  # its sibling
    alone = client.get(f"/?from={second['id']}").get_data(as_text=True)
    assert re.search(rf'name="seed"[^>]*value="{second["seed"]}"', alone)
    assert re.search(r'name="count"[^>]*value="1"', alone)


def test_options_of_the_chosen_model_are_sent_and_shown(client, fake_stability, images_dir):
    data = form_data(client, provider="stability", model="sd3.5-large", width="1024",
                     height="1024", **{STYLE_FIELD: "anime",
                                       "option|stability|core|style_preset": "origami"})
    response = client.post("/", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    [call] = [r for r in fake_stability.requests if r.path.endswith("/sd3")]
    assert call.form["style_preset"] == "anime"
    record = client.get("/api/images").get_json()[0]
    assert record["options"] == {"style_preset": "anime"}
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<code>anime</code>" in page and "style_preset: anime" in page
    again = client.get(f"/?from={record['id']}").get_data(as_text=True)
    assert re.search(r'<option value="anime" selected>', again)


def test_a_refused_option_is_shown_at_its_field(client, fake_stability, images_dir):
    data = form_data(client, provider="stability", model="sd3.5-large",
                     **{"option|stability|sd3.5-large|output_format": "webp"})
    response = client.post("/", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Input should be one of &#39;png&#39;, &#39;jpeg&#39;" in page
    # The form read the account's balance to show it; no image was asked for.
    assert [r.path for r in fake_stability.requests] == ["/v1/user/balance"]
    assert files_in(images_dir) == []


def test_only_the_chosen_models_options_are_shown(client):
    page = client.get("/?provider=stability&model=core").get_data(as_text=True)
    groups = dict(re.findall(r'data-options-for="([^"]+)" (hidden)?', page))
    assert groups["stability|core"] == ""
    assert all(hidden == "hidden" for key, hidden in groups.items() if key != "stability|core")
    assert "replicate|black-forest-labs/flux-schnell" in groups


def test_missing_batch_is_404(client):
    assert client.get("/batches/0123456789abcdef0123456789abcdef").status_code == 404
    assert client.get("/?batch=nope").status_code == 404


def test_the_gallery_filters_by_batch(client):
    location = client.post("/", data=form_data(client, count="2")).headers["Location"]
    batch_id = location.rsplit("/", 1)[-1]
    client.post("/", data=form_data(client))  # one more image, in no batch
    page = client.get(f"/images?batch={batch_id}").get_data(as_text=True)
    assert "2 images" in page and 'id="batch-filter"' in page
    ids = [i["id"] for i in client.get(f"/api/images?batch={batch_id}").get_json()]
    assert sorted(int(n) for n in re.findall(r'href="/images/(\d+)"', page)) == sorted(ids)
    assert "3 images" in client.get("/images").get_data(as_text=True)
