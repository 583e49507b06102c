"""The Replicate provider against the fake Replicate API: every model, front end and fault."""

import io
import json
import logging
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage

from app.providers.base import UpstreamError
from app.providers.replicate import (
    FLUX_DEV,
    FLUX_PRO,
    FLUX_SCHNELL,
    SD35_LARGE,
    SDXL,
    ReplicateProvider,
    aspect_ratio,
    decode_data_url,
    output_url_allowed,
)
from tests.conftest import files_in
from tests.fakes.replicate import SDXL_VERSION, FakeReplicate

SDXL_INPUTS = {"prompt", "negative_prompt", "width", "height", "num_inference_steps",
               "guidance_scale", "seed"}


@pytest.fixture
def app(make_app, fake_replicate):
    return make_app(REPLICATE_API_TOKEN=fake_replicate.api_token,
                    REPLICATE_BASE_URL=fake_replicate.url, WTF_CSRF_ENABLED=True)


def generate(client, **fields):
    body = {"prompt": "a lighthouse at dusk", "provider": "replicate", "width": 512,
            "height": 512, **fields}
    return client.post("/api/generate", json=body)


def creates(fake):
    """The create-prediction calls the fake received."""
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith("/predictions")]


def image_count(client) -> str:
    return client.get("/api/images").headers["X-Total-Count"]


def assert_stored_png(images_dir, record, size):
    path = images_dir / record["filename"]
    assert path.is_file() and path.stat().st_size == record["file_size"]
    assert record["format"] == "png"
    with PILImage.open(io.BytesIO(path.read_bytes())) as image:
        assert (image.format, image.size) == ("PNG", size)
    assert (record["width"], record["height"]) == size


def assert_seed_from_logs(fake, record, sent):
    """The record keeps the seed the model reported (`Using seed: N`), which is the one sent."""
    logs = [p["logs"] for p in fake.predictions.values()]
    assert any(f"Using seed: {record['seed']}\n" in text for text in logs)
    assert record["seed"] == sent and 0 < sent <= 4294967294


# --- every model, every front end ------------------------------------------------------------


def test_sdxl_through_the_api(client, fake_replicate, images_dir):
    response = generate(client, negative_prompt="fog", steps=25, cfg_scale=6.5, width=768)
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    [create] = creates(fake_replicate)
    assert create.path == "/v1/predictions"
    assert create.headers["Authorization"] == f"Bearer {fake_replicate.api_token}"
    assert create.headers["Prefer"] == "wait=60"
    assert create.json["version"] == SDXL_VERSION
    sent = create.json["input"]
    assert set(sent) == SDXL_INPUTS
    assert (sent["prompt"], sent["negative_prompt"]) == ("a lighthouse at dusk", "fog")
    assert (sent["width"], sent["height"], sent["num_inference_steps"]) == (768, 512, 25)
    assert sent["guidance_scale"] == 6.5
    assert (record["provider"], record["model"], record["ignored"]) == ("replicate", SDXL, [])
    assert record["requested"]["seed"] == 0
    assert_seed_from_logs(fake_replicate, record, sent["seed"])
    assert_stored_png(images_dir, record, (768, 512))
    assert files_in(images_dir) == [record["filename"], f"thumbs/{record['id']}.webp"]


def test_flux_schnell_runs_as_an_official_model(client, fake_replicate, images_dir):
    response = generate(client, model=FLUX_SCHNELL, width=1024, height=576, seed=77,
                        negative_prompt="rain", steps=40, cfg_scale=9)
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    [create] = creates(fake_replicate)
    assert create.path == f"/v1/models/{FLUX_SCHNELL}/predictions"
    assert "version" not in create.json
    assert create.headers["Authorization"] == f"Bearer {fake_replicate.api_token}"
    assert re.fullmatch(r"wait=\d+", create.headers["Prefer"])
    assert create.json["input"] == {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9",
                                    "output_format": "png", "seed": 77}
    assert record["model"] == FLUX_SCHNELL
    assert record["ignored"] == ["negative_prompt", "steps", "cfg_scale"]
    assert (record["requested"]["width"], record["requested"]["height"]) == (1024, 576)
    assert_seed_from_logs(fake_replicate, record, 77)
    assert_stored_png(images_dir, record, (1344, 768))


def test_custom_model_from_config_is_the_default_and_gets_sdxl_inputs(make_app, fake_replicate):
    app = make_app(REPLICATE_API_TOKEN=fake_replicate.api_token,
                   REPLICATE_BASE_URL=fake_replicate.url, REPLICATE_MODEL="stability-ai/sdxl")
    client = app.test_client()
    [listed] = [p for p in client.get("/api/providers").get_json() if p["name"] == "replicate"]
    assert listed["default_model"] == "stability-ai/sdxl"
    assert [m["name"] for m in listed["models"]] == ["stability-ai/sdxl", SDXL, FLUX_SCHNELL,
                                                     FLUX_DEV, FLUX_PRO, SD35_LARGE]
    response = generate(client, seed=5)
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    assert (record["model"], record["ignored"], record["seed"]) == ("stability-ai/sdxl", [], 5)
    lookup = [r.path for r in fake_replicate.requests if r.method == "GET"]
    assert lookup[0] == "/v1/models/stability-ai/sdxl"  # its latest version
    [create] = creates(fake_replicate)
    assert create.path == "/v1/predictions" and create.json["version"] == SDXL_VERSION
    assert set(create.json["input"]) == SDXL_INPUTS - {"negative_prompt"}
    assert_stored_png(Path(app.config["IMAGES_DIR"]), record, (512, 512))


def test_sdxl_through_the_web_form(client, fake_replicate, images_dir):
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post("/", data={
        "csrf_token": token, "prompt": "a lighthouse in a storm", "negative_prompt": "",
        "provider": "replicate", "model": SDXL, "width": "512", "height": "640", "steps": "20",
        "cfg_scale": "7", "seed": "4242"})
    assert response.status_code == 303
    assert re.fullmatch(r"/images/\d+", response.headers["Location"])
    [create] = creates(fake_replicate)
    assert create.json["version"] == SDXL_VERSION
    assert create.json["input"]["seed"] == 4242 and create.json["input"]["height"] == 640
    [record] = client.get("/api/images").get_json()
    assert (record["provider"], record["seed"]) == ("replicate", 4242)
    assert_stored_png(images_dir, record, (512, 640))


def test_sdxl_through_the_cli(app, fake_replicate, images_dir):
    result = app.test_cli_runner().invoke(args=[
        "generate", "a lighthouse at dawn", "--provider", "replicate", "--width", "576",
        "--height", "512", "--seed", "31337", "--negative-prompt", "boats"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    [create] = creates(fake_replicate)
    assert create.json["input"]["seed"] == 31337
    assert create.json["input"]["negative_prompt"] == "boats"
    assert (record["provider"], record["model"], record["seed"]) == ("replicate", SDXL, 31337)
    assert_stored_png(images_dir, record, (576, 512))


def test_providers_explain_each_model(client, fake_replicate):
    body = client.get("/api/providers").get_data(as_text=True)
    assert fake_replicate.api_token not in body
    [listed] = [p for p in json.loads(body) if p["name"] == "replicate"]
    assert listed["configured"] is True and listed["default_model"] == SDXL
    sdxl, flux = listed["models"][:2]
    assert sdxl["name"] == SDXL and sdxl["ignores"] == [] and sdxl["notes"]
    assert flux["name"] == FLUX_SCHNELL
    assert flux["ignores"] == ["negative_prompt", "steps", "cfg_scale"]
    assert [1344, 768] in flux["sizes"] and "aspect ratio" in flux["notes"]


class SeedIgnoringReplicate(FakeReplicate):
    """A model that draws its own seed whatever it is sent (and logs the one it used)."""

    def _new_prediction(self, model, given, faults):
        prediction = super()._new_prediction(model, given, faults)
        prediction.seed = 4321
        return prediction


@pytest.mark.parametrize("model", [SDXL, FLUX_SCHNELL])
def test_record_keeps_the_seed_the_model_reported_not_the_one_sent(make_app, model):
    with SeedIgnoringReplicate() as fake:
        app = make_app(REPLICATE_API_TOKEN=fake.api_token, REPLICATE_BASE_URL=fake.url)
        response = generate(app.test_client(), model=model, seed=5)
        [create] = creates(fake)
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    assert create.json["input"]["seed"] == 5
    assert record["seed"] == 4321 and record["requested"]["seed"] == 5
    path = Path(app.config["IMAGES_DIR"]) / record["filename"]
    with PILImage.open(path) as image:
        assert "Seed: 4321" in image.info["parameters"]


# --- how a prediction is awaited -------------------------------------------------------------


def test_polls_when_the_wait_ends_before_the_prediction(client, fake_replicate):
    fake_replicate.run_time, fake_replicate.max_wait = 3600, 0.1  # runs until finished below
    answer = {}
    request = threading.Thread(target=lambda: answer.update(response=generate(client)))
    request.start()

    def polls():
        return [r for r in fake_replicate.requests
                if r.method == "GET" and r.path.startswith("/v1/predictions/")]

    deadline = time.monotonic() + 60
    while not polls() and time.monotonic() < deadline:
        time.sleep(0.05)
    [prediction_id] = fake_replicate.predictions
    fake_replicate.finish(prediction_id)  # once the provider is polling, the model finishes
    request.join(60)
    response = answer["response"]
    assert response.status_code == 201, response.get_json()
    [create] = creates(fake_replicate)
    assert polls() and all(r.headers["Authorization"] == create.headers["Authorization"]
                           for r in polls())


def test_wait_that_comes_back_empty_is_polled(client, fake_replicate):
    response = generate(client, prompt="a harbour [fault:wait-empty]")
    assert response.status_code == 201, response.get_json()
    assert any(r.path.startswith("/v1/predictions/") for r in fake_replicate.requests)


def test_data_url_output(client, fake_replicate, images_dir):
    response = generate(client, prompt="a harbour [fault:data-url]", width=640)
    assert response.status_code == 201, response.get_json()
    assert not any(r.path.startswith("/files/") for r in fake_replicate.requests)
    assert_stored_png(images_dir, response.get_json(), (640, 512))


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "model", "status", "code", "words"), [
    ("401", SDXL, 502, "upstream_error", "rejected the API token"),
    ("402", SDXL, 402, "credits_exhausted", "insufficient credit"),
    ("422", SDXL, 502, "upstream_error", "input.prompt"),
    ("429", SDXL, 429, "rate_limited", "throttling"),
    ("500", SDXL, 502, "upstream_error", "500"),
    ("nsfw", SDXL, 422, "content_moderation", "NSFW content detected"),
    ("nsfw", FLUX_SCHNELL, 422, "content_moderation", "NSFW content"),
    ("model-error", SDXL, 502, "upstream_error", "CUDA error"),
    ("output-404", SDXL, 502, "upstream_error", "404"),
    ("garbage", SDXL, 502, "upstream_error", "unusable image"),
    ("truncated", FLUX_SCHNELL, 502, "upstream_error", "unusable image"),
    ("bomb", SDXL, 502, "upstream_error", "unusable image"),
    ("drop", SDXL, 502, "upstream_error", "Replicate"),
    ("echo-auth", SDXL, 502, "upstream_error", "authorization header"),
])
def test_faults_map_to_the_contract_and_leave_nothing(client, fake_replicate, images_dir,
                                                      fault, model, status, code, words):
    response = generate(client, model=model, prompt=f"a harbour [fault:{fault}]")
    assert response.status_code == status
    body = response.get_json()
    assert body["error"] == code
    assert words.lower() in body["detail"].lower()
    assert fake_replicate.api_token not in response.get_data(as_text=True)
    if fault == "429":
        assert response.headers["Retry-After"] == "1"
    assert image_count(client) == "0"
    assert files_in(images_dir) == []


@pytest.mark.parametrize("fault", ["never", "slow=3"])
def test_too_slow_is_504_and_the_prediction_is_canceled(make_app, fake_replicate, fault):
    app = make_app(REPLICATE_API_TOKEN=fake_replicate.api_token,
                   REPLICATE_BASE_URL=fake_replicate.url, GENERATION_TIMEOUT=1.5)
    client = app.test_client()
    response = generate(client, prompt=f"a harbour [fault:{fault}]")
    assert response.status_code == 504
    assert response.get_json()["error"] == "upstream_timeout"
    assert fake_replicate.cancels == list(fake_replicate.predictions)
    assert [p["status"] for p in fake_replicate.predictions.values()] == ["canceled"]
    assert image_count(client) == "0"
    assert files_in(app.config["IMAGES_DIR"]) == []


def test_unreachable_api_is_502(make_app, fake_replicate):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    app = make_app(REPLICATE_API_TOKEN="r8_x", REPLICATE_BASE_URL=f"http://127.0.0.1:{port}")
    response = generate(app.test_client())
    assert response.status_code == 502
    assert response.get_json()["error"] == "upstream_error"
    assert "r8_x" not in response.get_data(as_text=True)


def test_api_that_never_answers_is_504(make_app):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # connections are made but never answered
        app = make_app(REPLICATE_API_TOKEN="r8_x", GENERATION_TIMEOUT=1,
                       REPLICATE_BASE_URL=f"http://127.0.0.1:{sock.getsockname()[1]}")
        response = generate(app.test_client())
    assert response.status_code == 504
    assert response.get_json()["error"] == "upstream_timeout"


def test_token_never_reaches_a_response_or_a_log(client, fake_replicate, caplog):
    caplog.set_level(logging.DEBUG)
    response = generate(client, prompt="a harbour [fault:echo-auth]")
    assert response.status_code == 502
    text = response.get_data(as_text=True)
    assert "Malformed authorization header" in text
    assert fake_replicate.api_token not in text
    # The call that was refused is logged (by the HTTP client), so there is a log to look in.
    assert any("POST" in r.getMessage() and "/v1/predictions" in r.getMessage()
               and "400" in r.getMessage() for r in caplog.records), caplog.text
    assert fake_replicate.api_token not in caplog.text
    assert all(fake_replicate.api_token not in r.getMessage() + str(r.args)
               for r in caplog.records)


def test_unconfigured_is_400(make_app, fake_replicate):
    client = make_app(REPLICATE_BASE_URL=fake_replicate.url).test_client()
    response = generate(client)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "provider_not_configured" and "REPLICATE_API_TOKEN" in body["detail"]
    assert fake_replicate.requests == []


# --- the pieces ------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "base_url", "allowed"), [
    ("https://replicate.delivery/x/out-0.png", "https://api.replicate.com", True),
    ("http://replicate.delivery/x/out-0.png", "https://api.replicate.com", False),
    ("http://127.0.0.1:8000/files/out-0.png", "https://api.replicate.com", False),
    ("http://127.0.0.1:8000/files/out-0.png", "http://127.0.0.1:9000", True),
    ("http://localhost/files/out-0.png", "http://localhost:9000", True),
    ("http://example.com/out-0.png", "http://127.0.0.1:9000", False),
    ("file:///etc/passwd", "http://127.0.0.1:9000", False),
    ("ftp://replicate.delivery/out-0.png", "https://api.replicate.com", False),
])
def test_output_urls_must_be_https_unless_the_api_is_local(url, base_url, allowed):
    assert output_url_allowed(url, base_url) is allowed


def test_a_remote_api_giving_a_plain_http_output_is_refused():
    provider = ReplicateProvider({"REPLICATE_API_TOKEN": "r8_x",
                                  "REPLICATE_BASE_URL": "https://api.replicate.com"})
    with pytest.raises(UpstreamError, match="not https"):
        provider._download("http://127.0.0.1:1/files/out-0.png", deadline=float("inf"))


def test_data_urls_are_decoded():
    assert decode_data_url("data:image/png;base64,iVBORw0K") == b"\x89PNG\r\n"
    assert decode_data_url("data:text/plain,a%20b") == b"a b"
    with pytest.raises(UpstreamError):
        decode_data_url("data:image/png;base64,***")


@pytest.mark.parametrize(("width", "height", "ratio"), [
    (1024, 1024, "1:1"), (1024, 576, "16:9"), (576, 1024, "9:16"), (1216, 832, "3:2"),
    (832, 1024, "4:5"), (1536, 640, "21:9"), (512, 2048, "9:21"), (2048, 512, "21:9"),
])
def test_flux_aspect_ratio_is_the_nearest_on_a_log_scale(width, height, ratio):
    assert aspect_ratio(width, height) == ratio
