"""The OpenAI-compatible routes, driven by the official `openai` client against a live server."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import openai
import pytest
import requests
from PIL import Image as PILImage

from app.extensions import db
from app.models import Image
from tests.conftest import LiveServer, files_in

PROMPT = "a lighthouse on a cliff"


def client_for(server: LiveServer, key: str = "unused") -> openai.OpenAI:
    # No retries: every answer below is the first one the client saw.
    return openai.OpenAI(api_key=key, base_url=f"{server.url}/v1", max_retries=0, timeout=60)


@pytest.fixture
def server(make_app, fake_stability, fake_openai):
    app = make_app(STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url,
                   OPENAI_API_KEY=fake_openai.api_key, OPENAI_BASE_URL=fake_openai.url + "/v1",
                   DEFAULT_PROVIDER="offline")
    with LiveServer(app) as live:
        yield live


def records(app) -> list[Image]:
    with app.app_context():
        return db.session.scalars(db.select(Image).order_by(Image.id)).all()


def test_models_lists_every_runnable_model(server):
    listed = client_for(server).models.list()
    ids = [model.id for model in listed.data]
    assert ids[0] == "offline"  # the default provider's default model first
    assert "stability/sd3.5-large" in ids and "stability/sdxl-1.0" in ids
    assert "openai/gpt-image-2" in ids
    assert not any(i.startswith("replicate/") for i in ids)  # not configured: cannot run now
    assert {model.object for model in listed.data} == {"model"}
    assert {model.owned_by for model in listed.data} == {"offline", "stability", "openai"}


def test_generation_returns_the_stored_png(server):
    answer = client_for(server).images.generate(prompt=PROMPT, model="offline", size="512x512")
    assert answer.size == "512x512" and answer.output_format == "png" and answer.created > 0
    [item] = answer.data
    data = base64.b64decode(item.b64_json)
    picture = PILImage.open(io.BytesIO(data))
    assert picture.size == (512, 512)
    assert picture.info["parameters"].startswith(PROMPT)
    [record] = records(server.app)
    assert record.prompt == PROMPT and (record.provider, record.model) == ("offline", "abstract")
    stored = Path(server.app.config["IMAGES_DIR"]) / record.filename
    assert stored.read_bytes() == data


def test_url_answer_is_an_absolute_url_of_the_stored_image(server):
    answer = client_for(server).images.generate(prompt=PROMPT, model="offline", size="512x512",
                                                response_format="url")
    url = answer.data[0].url
    assert url.startswith(server.url + "/static/images/")
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "image/png"


def test_model_selection_by_provider_and_model(server, fake_stability):
    client = client_for(server)
    client.images.generate(prompt=PROMPT, model="stability/sd3.5-medium", size="1024x1024")
    client.images.generate(prompt=PROMPT, model="stability", size="1024x1024")
    client.images.generate(prompt=PROMPT)  # no model: the default provider
    made = [(r.provider, r.model) for r in records(server.app)]
    assert made == [("stability", "sd3.5-medium"), ("stability", "sd3.5-large"),
                    ("offline", "abstract")]
    assert fake_stability.generations == 2


def test_openai_fields_the_model_cannot_take_are_named_in_ignored(server):
    client_for(server).images.generate(prompt=PROMPT, model="offline", size="512x512",
                                       quality="high", background="opaque", user="someone")
    [record] = records(server.app)
    assert record.ignored == ["quality", "background"]


def test_a_bare_openai_model_name_and_its_options(server, fake_openai):
    answer = client_for(server).images.generate(prompt=PROMPT, model="gpt-image-2",
                                                size="1024x1024", quality="low",
                                                output_format="jpeg", background="opaque")
    assert answer.output_format == "jpeg"
    assert base64.b64decode(answer.data[0].b64_json)[:3] == b"\xff\xd8\xff"
    [record] = records(server.app)
    assert (record.provider, record.model, record.seed) == ("openai", "gpt-image-2", None)
    assert record.options == {"quality": "low", "output_format": "jpeg", "background": "opaque"}
    assert record.ignored[-1] == "seed" and "quality" not in record.ignored


def test_an_option_value_the_model_refuses_is_a_bad_request(server):
    with pytest.raises(openai.BadRequestError) as raised:
        client_for(server).images.generate(prompt=PROMPT, model="openai/gpt-image-2",
                                           quality="standard")
    assert raised.value.param == "quality" and raised.value.code == "invalid_value"
    assert "'low'" in raised.value.message  # the values the model allows
    assert records(server.app) == []


def test_batch_of_n_images(server):
    answer = client_for(server).images.generate(prompt=PROMPT, model="offline", size="512x512",
                                                n=3)
    assert len(answer.data) == 3
    made = records(server.app)
    assert len(made) == 3 and len({r.batch_id for r in made}) == 1
    assert [r.seed - made[0].seed for r in made] == [0, 1, 2]


# --- errors, as the client raises them ------------------------------------------------------


@pytest.mark.parametrize("fields, param", [
    ({"size": "huge"}, "size"),
    ({"size": "100x100"}, "size"),
    ({"size": "512x512", "n": 9}, "n"),
    ({"size": "512x512", "n": 0}, "n"),
    ({"prompt": "   "}, "prompt"),
])
def test_bad_input_is_a_bad_request(server, fields, param):
    body = {"prompt": PROMPT, "model": "offline", **fields}
    with pytest.raises(openai.BadRequestError) as raised:
        client_for(server).images.generate(**body)
    error = raised.value
    assert error.status_code == 400 and error.type == "invalid_request_error"
    assert error.param == param and error.message
    assert records(server.app) == []


def test_wrong_types_are_bad_requests_never_500(server):
    for body in ({"prompt": 5}, {"prompt": PROMPT, "n": "two"}, {"prompt": PROMPT, "size": 512},
                 {"prompt": PROMPT, "model": ["offline"]}, {"prompt": PROMPT, "response_format": 1},
                 {}, [], "text"):
        response = requests.post(f"{server.url}/v1/images/generations", json=body, timeout=10)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_request_error"
    response = requests.post(f"{server.url}/v1/images/generations", data="{not json",
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400 and set(response.json()["error"]) == {
        "message", "type", "param", "code"}


@pytest.mark.parametrize("model", ["dall-e-3", "gpt-image-1", "replicate/stability-ai/sdxl",
                                   "stability/sd9", "nobody/nothing"])
def test_unknown_or_unrunnable_model_is_not_found(server, model):
    with pytest.raises(openai.NotFoundError) as raised:
        client_for(server).images.generate(prompt=PROMPT, model=model)
    assert raised.value.code == "model_not_found" and model in raised.value.message


def test_wrong_token_is_an_authentication_error(make_app):
    with LiveServer(make_app(API_TOKENS=["s3cret-token"])) as live:
        with pytest.raises(openai.AuthenticationError) as raised:
            client_for(live, key="wrong").models.list()
        assert raised.value.code == "invalid_api_key"
        assert "s3cret" not in raised.value.message
        with pytest.raises(openai.AuthenticationError):
            client_for(live, key="wrong").images.generate(prompt=PROMPT, model="offline")
        assert client_for(live, key="s3cret-token").models.list().data[0].id == "offline"


def test_our_rate_limit_is_a_rate_limit_error_shared_with_the_other_routes(make_app, tmp_path):
    app = make_app(RATELIMIT_ENABLED=True, RATE_LIMIT="2 per minute",
                   RATELIMIT_STORAGE_URI=f"sqlite:///{tmp_path / 'limits.db'}")
    small = {"prompt": PROMPT, "width": 512, "height": 512}
    with LiveServer(app) as live:
        assert requests.post(f"{live.url}/api/generate", json=small, timeout=30).status_code == 201
        client = client_for(live)
        client.images.generate(prompt=PROMPT, model="offline", size="512x512")
        with pytest.raises(openai.RateLimitError) as raised:
            client.images.generate(prompt=PROMPT, model="offline", size="512x512")
        a1111 = requests.post(f"{live.url}/sdapi/v1/txt2img", json={"prompt": PROMPT}, timeout=30)
    assert raised.value.code == "rate_limit_exceeded" and raised.value.type == "requests"
    assert int(raised.value.response.headers["Retry-After"]) >= 1
    assert a1111.status_code == 429 and a1111.json()["error"] == "rate_limited"
    assert int(a1111.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("fault, error_class, code", [
    ("429", openai.RateLimitError, "rate_limit_exceeded"),
    ("402", openai.RateLimitError, "insufficient_quota"),
    ("403", openai.BadRequestError, "moderation_blocked"),
    ("500", openai.InternalServerError, "upstream_error"),
    ("garbage", openai.InternalServerError, "upstream_error"),
    ("openai:quota", openai.RateLimitError, "insufficient_quota"),
    ("openai:moderation", openai.BadRequestError, "moderation_blocked"),
    ("openai:503", openai.InternalServerError, "upstream_error"),
])
def test_provider_failures_as_the_client_raises_them(server, fault, error_class, code):
    provider, _, fault = fault.rpartition(":")
    model = "openai/gpt-image-2" if provider else "stability/sd3.5-large"
    with pytest.raises(error_class) as raised:
        client_for(server).images.generate(prompt=f"{PROMPT} [fault:{fault}]", model=model)
    assert raised.value.code == code
    assert records(server.app) == []
    assert files_in(server.app.config["IMAGES_DIR"]) == []


def test_provider_timeout_is_a_server_error(make_app, fake_stability):
    app = make_app(STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url,
                   GENERATION_TIMEOUT=1)
    with LiveServer(app) as live:
        with pytest.raises(openai.InternalServerError) as raised:
            client_for(live).images.generate(prompt=f"{PROMPT} [fault:slow=3]",
                                             model="stability/sd3.5-large")
    assert raised.value.status_code == 504 and raised.value.code == "upstream_timeout"


# --- Open WebUI's "OpenAI" engine ------------------------------------------------------------


def test_open_webui_openai_engine_request(make_app):
    """The body and headers Open WebUI's image router sends, and what it reads back."""
    with LiveServer(make_app(API_TOKENS=["owui-token"])) as live:
        response = requests.post(
            f"{live.url}/v1/images/generations",
            json={"model": "offline", "prompt": PROMPT, "n": 1, "size": "512x512",
                  "response_format": "b64_json"},
            headers={"Authorization": "Bearer owui-token", "Content-Type": "application/json"},
            timeout=30)
    assert response.status_code == 200
    [item] = response.json()["data"]
    assert PILImage.open(io.BytesIO(base64.b64decode(item["b64_json"]))).size == (512, 512)


def test_on_s3_the_url_is_the_bucket_and_b64_json_its_object(make_app, s3_server, s3_bucket):
    with LiveServer(make_app(**s3_server.settings(s3_bucket))) as live:
        client = client_for(live)
        by_url = client.images.generate(prompt=PROMPT, model="offline", size="512x512",
                                        response_format="url")
        inline = client.images.generate(prompt=PROMPT, model="offline", size="512x512")
        [first, second] = records(live.app)
    url = by_url.data[0].url
    assert url.startswith(s3_server.endpoint) and first.filename in url  # presigned, not ours
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200 and fetched.content[:8] == b"\x89PNG\r\n\x1a\n"
    data = base64.b64decode(inline.data[0].b64_json)
    assert PILImage.open(io.BytesIO(data)).info["parameters"].startswith(PROMPT)
    assert files_in(live.app.config["IMAGES_DIR"]) == []  # nothing on local disk
    assert second.file_size == len(data)


# --- tokens' names, budgets, idempotency: the same service as /api/generate -------------------


def test_records_name_the_token_and_budgets_refuse_as_insufficient_quota(make_app):
    app = make_app(API_TOKENS=["alice:tok-alice"], PRICES="offline/abstract=1", DAILY_BUDGET="1")
    with LiveServer(app) as live:
        client = client_for(live, key="tok-alice")
        client.images.generate(prompt=PROMPT, model="offline", size="512x512")
        with pytest.raises(openai.RateLimitError) as raised:
            client.images.generate(prompt=PROMPT, model="offline", size="512x512")
        a1111 = requests.post(f"{live.url}/sdapi/v1/txt2img", json={"prompt": PROMPT},
                              auth=("any", "tok-alice"), timeout=30)
    assert raised.value.code == "insufficient_quota" and raised.value.type == "insufficient_quota"
    assert a1111.status_code == 402 and a1111.json()["error"] == "budget_exceeded"
    assert [(r.created_by, r.cost) for r in records(app)] == [("alice", 1)]


def test_idempotency_key_replays_the_first_answer(server):
    client = client_for(server)
    headers = {"Idempotency-Key": "openai-retry-1"}
    first = client.images.with_raw_response.generate(
        prompt=PROMPT, model="offline", size="512x512", extra_headers=headers)
    again = client.images.with_raw_response.generate(
        prompt=PROMPT, model="offline", size="512x512", extra_headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.parse().data[0].b64_json == first.parse().data[0].b64_json
    assert len(records(server.app)) == 1
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        client.images.generate(prompt="another prompt", model="offline", size="512x512",
                               extra_headers=headers)
    assert raised.value.code == "idempotency_key_reused"
    a1111 = [requests.post(f"{server.url}/sdapi/v1/txt2img", json={"prompt": PROMPT}, timeout=30,
                           headers={"Idempotency-Key": "a1111-retry-1"}) for _ in range(2)]
    assert a1111[0].json() == a1111[1].json()
    assert a1111[1].headers["Idempotent-Replayed"] == "true" and len(records(server.app)) == 2
