"""The OpenAI provider against the fake Images API, through the real `openai` client."""

import io
import json

import pytest
from PIL import Image as PILImage

from app.providers.openai import size_for
from tests.conftest import files_in


@pytest.fixture
def app(make_app, fake_openai):
    return make_app(OPENAI_API_KEY=fake_openai.api_key, OPENAI_BASE_URL=fake_openai.url + "/v1")


def generate(client, **fields):
    body = {"prompt": "a lighthouse at dusk", "provider": "openai", **fields}
    return client.post("/api/generate", json=body)


def calls(fake):
    return [r for r in fake.requests if r.path == "/v1/images/generations"]


def test_generates_with_no_seed_and_no_response_format(client, fake_openai, images_dir):
    response = generate(client, width=1536, height=1024, seed=42, negative_prompt="fog",
                        steps=20, cfg_scale=5)
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    [call] = calls(fake_openai)
    assert call.headers["Authorization"] == f"Bearer {fake_openai.api_key}"
    assert call.json == {"prompt": "a lighthouse at dusk", "model": "gpt-image-2", "n": 1,
                         "size": "1536x1024"}
    assert (record["provider"], record["model"], record["seed"]) == ("openai", "gpt-image-2",
                                                                      None)
    assert record["ignored"] == ["negative_prompt", "steps", "cfg_scale", "seed"]
    assert (record["width"], record["height"], record["format"]) == (1536, 1024, "png")
    assert files_in(images_dir) == [record["filename"], f"thumbs/{record['id']}.webp"]
    with PILImage.open(images_dir / record["filename"]) as image:
        assert "Seed:" not in image.text["parameters"]
        assert json.loads(image.text["imagegen"])["seed"] is None


def test_options_are_sent_stored_and_written_into_the_png(client, fake_openai, images_dir):
    options = {"quality": "high", "background": "transparent", "moderation": "low"}
    response = generate(client, options=options)
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    [call] = calls(fake_openai)
    assert {k: call.json[k] for k in options} == options
    assert record["options"] == options
    with PILImage.open(images_dir / record["filename"]) as image:
        text = image.text["parameters"]
        assert text.endswith("quality: high, background: transparent, moderation: low")
        embedded = json.loads(image.text["imagegen"])
        assert embedded["options"] == options and embedded["provider"] == "openai"


def test_webp_output_is_stored_as_webp(client, fake_openai, images_dir):
    response = generate(client, options={"output_format": "webp"})
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    assert record["format"] == "webp" and record["filename"].endswith(".webp")
    assert PILImage.open(io.BytesIO((images_dir / record["filename"]).read_bytes())).format == \
        "WEBP"


@pytest.mark.parametrize(("options", "name"), [
    ({"quality": "ultra"}, "quality"),
    ({"quality": "max"}, "quality"),  # only the 2.5 models have it
    ({"style": "vivid"}, "style"),
    ({"response_format": "url"}, "response_format"),
    ({"background": None}, "background"),
])
def test_bad_options_are_422_at_their_name(client, fake_openai, options, name):
    response = generate(client, options=options)
    assert response.status_code == 422
    assert [p["loc"] for p in response.get_json()["detail"]] == [["body", "options", name]]
    assert calls(fake_openai) == []


@pytest.mark.parametrize(("model", "asked", "sent"), [
    ("gpt-image-2", (1024, 1024), "1024x1024"),
    ("gpt-image-2", (768, 1344), "768x1344"),
    ("gpt-image-2", (512, 2048), "512x1536"),
    ("gpt-image-2.6-flare", (768, 1344), "1024x1536"),
    ("gpt-image-2.6-flare", (1344, 768), "1536x1024"),
])
def test_sizes_are_mapped(client, fake_openai, model, asked, sent):
    assert size_for(model, *asked) == sent
    response = generate(client, model=model, width=asked[0], height=asked[1])
    assert response.status_code == 201, response.get_json()
    assert calls(fake_openai)[0].json["size"] == sent


def test_a_batch_makes_one_call_per_image(client, fake_openai):
    response = generate(client, count=3)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert [image["seed"] for image in body["images"]] == [None, None, None]
    assert [c.json["n"] for c in calls(fake_openai)] == [1, 1, 1]


@pytest.mark.parametrize(("fault", "status", "code", "words"), [
    ("moderation", 422, "content_moderation", "safety system"),
    ("quota", 402, "credits_exhausted", "quota"),
    ("rate", 429, "rate_limited", "rate limit"),
    ("403", 502, "upstream_error", "refused access"),
    ("500", 502, "upstream_error", "HTTP 500"),
    ("503", 502, "upstream_error", "HTTP 503"),
    ("garbage", 502, "upstream_error", "not an image"),
    ("no-image", 502, "upstream_error", "without"),
    ("drop", 502, "upstream_error", "connection"),
])
def test_errors_map_onto_the_contract(client, fake_openai, images_dir, fault, status, code,
                                      words):
    response = generate(client, prompt=f"a harbour [fault:{fault}]")
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["error"] == code and words in body["detail"]
    assert fake_openai.api_key not in json.dumps(body)
    assert len(calls(fake_openai)) == 1  # never retried
    if status == 429:
        assert response.headers["Retry-After"] == "7"
    assert files_in(images_dir) == []
    assert client.get("/api/images").headers["X-Total-Count"] == "0"


def test_a_wrong_key_is_502_and_never_shown(make_app, fake_openai):
    app = make_app(OPENAI_API_KEY="sk-wrong-key-123456", OPENAI_BASE_URL=fake_openai.url + "/v1")
    response = generate(app.test_client())
    assert response.status_code == 502
    assert "OPENAI_API_KEY" in response.get_json()["detail"]
    assert "sk-wrong-key-123456" not in response.get_data(as_text=True)


def test_a_slow_answer_is_504_within_the_timeout(make_app, fake_openai):
    app = make_app(OPENAI_API_KEY=fake_openai.api_key, OPENAI_BASE_URL=fake_openai.url + "/v1",
                   GENERATION_TIMEOUT=1)
    response = generate(app.test_client(), prompt="a harbour [fault:slow=3]")
    assert response.status_code == 504
    assert response.get_json()["error"] == "upstream_timeout"
    assert len(calls(fake_openai)) == 1


def test_the_fake_refuses_response_format_as_the_real_api_does(fake_openai):
    import openai

    client = openai.OpenAI(api_key=fake_openai.api_key, base_url=fake_openai.url + "/v1",
                           max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(prompt="a cat", model="gpt-image-2", response_format="b64_json")
    assert caught.value.code == "unknown_parameter"
    answer = client.images.generate(prompt="a cat", model="gpt-image-2")
    assert answer.usage.output_tokens > 0 and answer.data[0].b64_json


def test_not_configured_without_a_key(make_app):
    response = generate(make_app().test_client())
    assert response.status_code == 400
    assert "OPENAI_API_KEY" in response.get_json()["detail"]


def test_listed_with_its_options(client):
    [listed] = [p for p in client.get("/api/providers").get_json() if p["name"] == "openai"]
    assert listed["configured"] is True and listed["default_model"] == "gpt-image-2"
    model = listed["models"][0]
    assert "seed" in model["ignores"] and "seed" not in model["honours"]
    options = {o["name"]: o for o in model["options"]}
    assert set(options) == {"quality", "background", "output_format", "moderation"}
    assert options["quality"]["values"] == ["low", "medium", "high", "auto"]
    assert options["quality"]["default"] == "auto" and options["quality"]["type"] == "string"
