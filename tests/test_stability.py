"""The Stability AI provider against the fake Stability server: every model, every fault."""

import io
import json
import logging
import re

import pytest
from PIL import Image as PILImage

from app.providers.stability import nearest_aspect_ratio, nearest_sdxl_size
from tests.conftest import files_in
from tests.fakes.server import FakeServer, Response

V2_MODELS = ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash", "core", "ultra")
SD3_MODELS = V2_MODELS[:4]
ALL_MODELS = (*V2_MODELS, "sdxl-1.0")
IGNORED = {
    "sd3.5-large": ["steps"],
    "sd3.5-large-turbo": ["negative_prompt", "steps"],
    "sd3.5-medium": ["steps"],
    "sd3.5-flash": ["steps"],
    "core": ["steps", "cfg_scale"],
    "ultra": ["steps", "cfg_scale"],
    "sdxl-1.0": [],
}
SIZES_16_9 = {"width": 1024, "height": 576}  # 16:9, which every model makes as 1344x768


@pytest.fixture
def app(make_app, fake_stability):
    return make_app(STABILITY_API_KEY=fake_stability.api_key,
                    STABILITY_BASE_URL=fake_stability.url)


def generate(client, **fields):
    body = {"prompt": "a lighthouse at dusk", "provider": "stability", **SIZES_16_9,
            "steps": 20, "cfg_scale": 4.5, **fields}
    return client.post("/api/generate", json=body)


def total(client) -> str:
    return client.get("/api/images").headers["X-Total-Count"]


def image_size(path) -> tuple[int, int]:
    with PILImage.open(path) as image:
        return image.size


def csrf_token(client) -> str:
    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def form_data(client, **fields):
    return {"csrf_token": csrf_token(client), "prompt": "a lighthouse at dusk",
            "negative_prompt": "blurry", "provider": "stability", "model": "sd3.5-large",
            "width": "1024", "height": "576", "steps": "20", "cfg_scale": "4.5", "seed": "",
            **fields}


def assert_v2_request(sent, model, key, negative="blurry"):
    """What every v2beta call must look like: multipart fields, no sizes or steps."""
    endpoint = "sd3" if model in SD3_MODELS else model
    assert (sent.method, sent.path) == ("POST", f"/v2beta/stable-image/generate/{endpoint}")
    assert sent.content_type == "multipart/form-data"
    assert sent.headers["authorization"] == f"Bearer {key}"
    assert sent.headers["accept"] == "image/*"
    assert sent.files == ["none"]
    fields = sent.form
    expected = {"prompt", "aspect_ratio", "seed", "output_format", "negative_prompt"}
    if model in SD3_MODELS:
        expected |= {"model", "mode", "cfg_scale"}
        assert (fields["model"], fields["mode"]) == (model, "text-to-image")
        assert float(fields["cfg_scale"]) == 4.5
    if model == "sd3.5-large-turbo" or not negative:
        expected.discard("negative_prompt")
    else:
        assert fields["negative_prompt"] == negative
    assert set(fields) == expected
    assert fields["output_format"] == "png"
    return fields


def assert_v1_request(sent, key, negative="blurry"):
    assert (sent.method, sent.path) == (
        "POST", "/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image")
    assert sent.content_type == "application/json"
    assert sent.headers["authorization"] == f"Bearer {key}"
    assert sent.headers["accept"] == "application/json"
    body = sent.json
    prompts = [{"text": "a lighthouse at dusk", "weight": 1.0}]
    if negative:
        prompts.append({"text": negative, "weight": -1.0})
    assert body["text_prompts"] == prompts
    assert (body["width"], body["height"], body["samples"]) == (1344, 768, 1)
    assert set(body) == {"text_prompts", "width", "height", "steps", "cfg_scale", "seed",
                         "samples"}
    return body


def assert_stored(record, images_dir, model):
    """The record keeps the real size beside what was asked, and its file is on disk."""
    assert (record["provider"], record["model"]) == ("stability", model)
    assert record["ignored"] == IGNORED[model]
    assert (record["width"], record["height"]) == (1344, 768)
    assert (record["requested"]["width"], record["requested"]["height"]) == (1024, 576)
    assert record["content_filtered"] is False and record["format"] == "png"
    assert 0 < record["seed"] <= 4294967294
    assert image_size(images_dir / record["filename"]) == (1344, 768)
    assert files_in(images_dir) == [record["filename"], f"thumbs/{record['id']}.webp"]


# --- models ----------------------------------------------------------------------------------


def test_providers_lists_every_model_with_what_it_honours(client):
    [stability] = [p for p in client.get("/api/providers").get_json() if p["name"] == "stability"]
    assert stability["configured"] is True and stability["default_model"] == "sd3.5-large"
    models = {m["name"]: m for m in stability["models"]}
    assert list(models) == list(ALL_MODELS)
    assert {name: model["ignores"] for name, model in models.items()} == IGNORED
    assert models["sd3.5-large"]["limits"] == {"cfg_scale": {"minimum": 1, "maximum": 10}}
    assert models["core"]["limits"] == {}
    assert len(models["sd3.5-medium"]["sizes"]) == 9 and [1344, 768] in models["ultra"]["sizes"]
    assert len(models["sdxl-1.0"]["sizes"]) == 8 and [1152, 896] in models["sdxl-1.0"]["sizes"]
    assert "steps" in models["sdxl-1.0"]["honours"]


@pytest.mark.parametrize(("setting", "default"), [("sd3.5-medium", "sd3.5-medium"),
                                                  ("sdxl-1.0", "sdxl-1.0"),
                                                  ("sd3-large", "sd3.5-large")])
def test_stability_model_setting_chooses_the_default(make_app, fake_stability, setting, default):
    app = make_app(STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url,
                   STABILITY_MODEL=setting)
    client = app.test_client()
    [stability] = [p for p in client.get("/api/providers").get_json() if p["name"] == "stability"]
    assert stability["default_model"] == default
    response = generate(client, negative_prompt="")
    assert response.status_code == 201
    assert response.get_json()["model"] == default


@pytest.mark.parametrize("model", V2_MODELS)
def test_v2beta_model_generates_through_the_api(client, fake_stability, images_dir, model):
    response = generate(client, model=model, negative_prompt="blurry")
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    [sent] = fake_stability.requests
    fields = assert_v2_request(sent, model, fake_stability.api_key)
    assert fields["aspect_ratio"] == "16:9"
    assert int(fields["seed"]) == record["seed"]
    assert_stored(record, images_dir, model)
    assert record["negative_prompt"] == "blurry" and record["requested"]["seed"] == 0


def test_sdxl_generates_through_the_api_with_steps_cfg_and_seed(client, fake_stability,
                                                                 images_dir):
    response = generate(client, model="sdxl-1.0", negative_prompt="blurry", seed=1234)
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    [sent] = fake_stability.requests
    body = assert_v1_request(sent, fake_stability.api_key)
    assert (body["steps"], body["cfg_scale"], body["seed"]) == (20, 4.5, 1234)
    assert_stored(record, images_dir, "sdxl-1.0")
    assert (record["seed"], record["steps"], record["cfg_scale"]) == (1234, 20, 4.5)


def test_random_seed_is_drawn_sent_and_recorded(client, fake_stability):
    seeds = set()
    for model in ("sd3.5-flash", "sdxl-1.0"):
        record = generate(client, model=model, seed=0).get_json()
        sent = fake_stability.requests[-1]
        sent_seed = int(sent.form["seed"]) if sent.form else sent.json["seed"]
        assert sent_seed == record["seed"] != 0
        seeds.add(record["seed"])
    assert len(seeds) == 2


def test_no_negative_prompt_field_when_none_is_given(client, fake_stability):
    assert generate(client, model="sd3.5-medium").status_code == 201
    assert generate(client, model="sdxl-1.0").status_code == 201
    v2, v1 = fake_stability.requests
    assert_v2_request(v2, "sd3.5-medium", fake_stability.api_key, negative="")
    assert_v1_request(v1, fake_stability.api_key, negative="")


def test_turbo_drops_the_negative_prompt_and_says_so(client, fake_stability):
    record = generate(client, model="sd3.5-large-turbo", negative_prompt="fog").get_json()
    assert "negative_prompt" not in fake_stability.requests[0].form
    assert record["ignored"] == ["negative_prompt", "steps"]
    assert record["negative_prompt"] == "fog"


@pytest.mark.parametrize("model", ["sd3.5-large", "sdxl-1.0"])
def test_web_form_generates(client, fake_stability, images_dir, model):
    response = client.post("/", data=form_data(client, model=model, seed="77"))
    assert response.status_code == 303
    image_id = int(response.headers["Location"].rsplit("/", 1)[1])
    record = client.get(f"/api/images/{image_id}").get_json()
    # The form also read the account's balance, to show it.
    [sent] = [r for r in fake_stability.requests if r.path != "/v1/user/balance"]
    if model == "sdxl-1.0":
        assert assert_v1_request(sent, fake_stability.api_key)["seed"] == 77
    else:
        assert assert_v2_request(sent, model, fake_stability.api_key)["seed"] == "77"
    assert_stored(record, images_dir, model)
    assert record["seed"] == 77
    page = client.get(f"/images/{image_id}").get_data(as_text=True)
    assert "a lighthouse at dusk" in page and "77" in page


@pytest.mark.parametrize("model", ["core", "sdxl-1.0"])
def test_cli_generates(app, fake_stability, images_dir, model):
    result = app.test_cli_runner().invoke(args=[
        "generate", "a lighthouse at dusk", "--provider", "stability", "--model", model,
        "--width", "1024", "--height", "576", "--steps", "20", "--cfg-scale", "4.5",
        "--negative-prompt", "blurry"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    [sent] = fake_stability.requests
    if model == "sdxl-1.0":
        assert assert_v1_request(sent, fake_stability.api_key)["seed"] == record["seed"]
    else:
        assert int(assert_v2_request(sent, model, fake_stability.api_key)["seed"]) == record["seed"]
    assert_stored(record, images_dir, model)


# --- sizes and ranges ------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height", "ratio"), [
    (1024, 576, "16:9"), (1024, 1024, "1:1"), (2048, 512, "21:9"), (512, 2048, "9:21"),
    (768, 512, "3:2"), (512, 768, "2:3"), (1280, 1024, "5:4"), (1024, 1280, "4:5"),
    (576, 1024, "9:16"), (2048, 1024, "16:9"), (2048, 1536, "5:4"),
])
def test_size_maps_to_the_nearest_aspect_ratio(width, height, ratio):
    assert nearest_aspect_ratio(width, height) == ratio


@pytest.mark.parametrize(("width", "height", "size"), [
    (1024, 1024, (1024, 1024)), (1024, 576, (1344, 768)), (768, 512, (1216, 832)),
    (1280, 1024, (1152, 896)), (1024, 1280, (896, 1152)), (2048, 512, (1536, 640)),
    (512, 2048, (640, 1536)), (576, 1024, (768, 1344)), (512, 768, (896, 1152)),
])
def test_size_maps_to_the_nearest_sdxl_size(width, height, size):
    assert nearest_sdxl_size(width, height) == size


@pytest.mark.parametrize(("model", "width", "height", "sent", "size"), [
    ("sd3.5-large", 512, 2048, "9:21", (640, 1536)),
    ("ultra", 1280, 1024, "5:4", (1088, 896)),
    ("sdxl-1.0", 1280, 1024, (1152, 896), (1152, 896)),
])
def test_record_keeps_the_real_size_beside_the_requested_one(client, fake_stability, images_dir,
                                                             model, width, height, sent, size):
    record = generate(client, model=model, width=width, height=height).get_json()
    [request] = fake_stability.requests
    if model == "sdxl-1.0":
        assert (request.json["width"], request.json["height"]) == sent
    else:
        assert request.form["aspect_ratio"] == sent
    assert (record["width"], record["height"]) == size
    assert (record["requested"]["width"], record["requested"]["height"]) == (width, height)
    assert image_size(images_dir / record["filename"]) == size


@pytest.mark.parametrize("model", SD3_MODELS)
def test_cfg_scale_outside_sd3_range_is_422_and_nothing_is_sent(client, fake_stability, model):
    response = generate(client, model=model, cfg_scale=15)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_error"
    [problem] = body["detail"]
    assert problem["loc"] == ["body", "cfg_scale"]
    assert "between 1 and 10" in problem["msg"] and model in problem["msg"]
    assert fake_stability.requests == []


@pytest.mark.parametrize("model", ["core", "sdxl-1.0"])
def test_cfg_scale_15_is_fine_where_sd3_limits_do_not_apply(client, fake_stability, model):
    response = generate(client, model=model, cfg_scale=15)
    assert response.status_code == 201
    sent = fake_stability.requests[0]
    if model == "core":
        assert "cfg_scale" not in sent.form
    else:
        assert sent.json["cfg_scale"] == 15


# --- faults ----------------------------------------------------------------------------------

FAULTS = [  # marker, status, error code, words the message shows
    ("401", 502, "upstream_error", "rejected the API key"),
    ("402", 402, "credits_exhausted", "sufficient credits"),
    ("403", 422, "content_moderation", "flagged by our content moderation"),
    ("413", 502, "upstream_error", "cannot be larger than 10MiB"),
    ("422", 502, "upstream_error", "English is the only supported language"),
    ("429", 429, "rate_limited", "rate limit"),
    ("500", 502, "upstream_error", "HTTP 500"),
    ("drop", 502, "upstream_error", "connection"),
    ("garbage", 502, "upstream_error", "unusable image"),
    ("truncated", 502, "upstream_error", "unusable image"),
    ("bomb", 502, "upstream_error", "unusable image"),
]


@pytest.mark.parametrize("model", ["sd3.5-large", "sdxl-1.0"])
@pytest.mark.parametrize(("fault", "status", "code", "words"), FAULTS,
                         ids=[fault[0] for fault in FAULTS])
def test_fault_maps_to_the_contract_and_leaves_nothing(client, fake_stability, images_dir,
                                                       model, fault, status, code, words):
    response = generate(client, model=model, prompt=f"a lighthouse [fault:{fault}]")
    assert response.status_code == status
    body = response.get_json()
    assert body["error"] == code and words in body["detail"]
    if fault == "429":
        assert response.headers["Retry-After"] == "60"
    assert len(fake_stability.requests) == 1  # never retried
    assert total(client) == "0"
    assert files_in(images_dir) == []


def test_a_wrong_key_is_502_without_the_key(make_app, fake_stability, images_dir):
    app = make_app(STABILITY_API_KEY="sk-wrong-key-123", STABILITY_BASE_URL=fake_stability.url)
    client = app.test_client()
    response = generate(client, model="core")
    assert response.status_code == 502
    assert "rejected the API key" in response.get_json()["detail"]
    assert "sk-wrong-key-123" not in response.get_data(as_text=True)
    assert total(client) == "0"


@pytest.mark.parametrize("model", ["sd3.5-large", "sdxl-1.0"])
def test_slow_answer_beyond_the_timeout_is_504(make_app, fake_stability, model):
    app = make_app(STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url,
                   GENERATION_TIMEOUT=1)
    client = app.test_client()
    response = generate(client, model=model, prompt="a lighthouse [fault:slow=3]")
    assert response.status_code == 504
    assert response.get_json()["error"] == "upstream_timeout"
    assert "within 1 s (GENERATION_TIMEOUT)" in response.get_json()["detail"]
    assert total(client) == "0"
    assert files_in(app.config["IMAGES_DIR"]) == []


@pytest.mark.parametrize("model", ["sd3.5-medium", "sdxl-1.0"])
def test_content_filtered_image_is_kept_and_flagged(client, images_dir, model):
    response = generate(client, model=model, prompt="a lighthouse [fault:filtered]")
    assert response.status_code == 201
    record = response.get_json()
    assert record["content_filtered"] is True
    assert (images_dir / record["filename"]).exists()
    assert client.get(f"/api/images/{record['id']}").get_json()["content_filtered"] is True


@pytest.mark.parametrize("model", ["ultra", "sdxl-1.0"])
def test_echoed_key_never_reaches_a_response_or_a_log(client, fake_stability, caplog, model):
    caplog.set_level(logging.DEBUG)
    response = generate(client, model=model, prompt="a lighthouse [fault:echo-auth]")
    assert response.status_code == 502
    text = response.get_data(as_text=True)
    assert "authorization: unexpected value" in text  # Stability's message is quoted...
    assert fake_stability.api_key not in text  # ...without the key
    assert fake_stability.api_key not in caplog.text
    assert all(fake_stability.api_key not in str(r.args) for r in caplog.records)
    assert any("Stability AI answered HTTP 400" in r.getMessage() for r in caplog.records)


def test_web_form_shows_a_provider_error_and_keeps_the_values(client, images_dir):
    response = client.post("/", data=form_data(client, prompt="a lighthouse [fault:402]",
                                               model="sd3.5-flash", width="1280", seed="99"))
    assert response.status_code == 402
    page = response.get_data(as_text=True)
    assert 'role="alert"' in page and "out of credits" in page
    assert "a lighthouse [fault:402]</textarea>" in page and "blurry</textarea>" in page
    assert 'value="1280"' in page and 'value="99"' in page
    assert files_in(images_dir) == []


def test_cli_reports_a_provider_error(app, fake_stability, images_dir):
    result = app.test_cli_runner().invoke(args=[
        "generate", "a lighthouse [fault:echo-auth]", "--provider", "stability"])
    assert result.exit_code == 1
    assert "upstream_error" in result.stderr and fake_stability.api_key not in result.output
    assert files_in(images_dir) == []


def test_unconfigured_is_400_and_sends_nothing(make_app, fake_stability):
    client = make_app(STABILITY_BASE_URL=fake_stability.url).test_client()
    response = generate(client, model="sd3.5-large")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "provider_not_configured" and "STABILITY_API_KEY" in body["detail"]
    assert fake_stability.requests == []
    [stability] = [p for p in client.get("/api/providers").get_json() if p["name"] == "stability"]
    assert stability["configured"] is False


# --- answers the fake cannot give: a small server of our own ---------------------------------


class OddStability(FakeServer):
    """Answers every request with one canned response."""

    answer = Response(200)

    def handle(self, request):
        return self.answer


ODD_ANSWERS = [  # model, response, status, words in the message
    ("core", Response.json(429, {"name": "rate_limited", "errors": ["slow down"]},
                           headers={"Retry-After": "17"}), 429, "slow down"),
    ("core", Response.json(200, {"image": "aGk=", "finish_reason": "SUCCESS"}), 502,
     "without an image"),
    ("core", Response(200, b"", {"Content-Type": "image/png"}), 502, "without an image"),
    ("core", Response(503, b"<html>busy</html>", {"Content-Type": "text/html"}), 502,
     "HTTP 503"),
    ("core", Response.json(400, {"name": "bad_request", "errors": ["x" * 5000]}), 502,
     "refused the request"),
    ("sdxl-1.0", Response(200, b"not json", {"Content-Type": "application/json"}), 502,
     "without a usable image"),
    ("sdxl-1.0", Response.json(200, {"artifacts": []}), 502, "without a usable image"),
    ("sdxl-1.0", Response.json(400, {"name": "bad_request", "message": "steps: too many"}), 502,
     "steps: too many"),
]


@pytest.mark.parametrize(("model", "answer", "status", "words"), ODD_ANSWERS)
def test_odd_answers_map_to_the_contract(make_app, model, answer, status, words):
    with OddStability() as server:
        server.answer = answer
        app = make_app(STABILITY_API_KEY="sk-odd", STABILITY_BASE_URL=server.url)
        client = app.test_client()
        response = generate(client, model=model)
    assert response.status_code == status
    detail = response.get_json()["detail"]
    assert words in detail and len(detail) < 400
    if status == 429:
        assert response.headers["Retry-After"] == "17"
    assert total(client) == "0"
    assert files_in(app.config["IMAGES_DIR"]) == []


def test_an_image_through_odd_server_is_stored_with_the_reported_seed(make_app):
    png = io.BytesIO()
    PILImage.new("RGB", (1344, 768), (10, 20, 30)).save(png, "PNG")
    with OddStability() as server:
        server.answer = Response(200, png.getvalue(), {"Content-Type": "image/png",
                                                       "finish-reason": "SUCCESS", "seed": "4321"})
        client = make_app(STABILITY_API_KEY="sk-odd", STABILITY_BASE_URL=server.url).test_client()
        record = generate(client, model="sd3.5-large", seed=5).get_json()
    assert record["seed"] == 4321 and (record["width"], record["height"]) == (1344, 768)
