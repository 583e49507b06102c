"""The fake provider servers are as strict as the real APIs (checked with plain HTTP and the
official `replicate` client)."""

from __future__ import annotations

import base64
import io
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import replicate
import requests
from PIL import Image
from replicate.exceptions import ModelError, ReplicateError

from tests.fakes.replicate import FLUX_SCHNELL, SDXL, SDXL_VERSION, FakeReplicate
from tests.fakes.server import render_image
from tests.fakes.stability import FakeStability

KEY = "sk-test-stability"
TOKEN = "r8_test_token"
AUTH = {"Authorization": f"Bearer {KEY}"}
SD3 = "/v2beta/stable-image/generate/sd3"
V1 = "/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image"


@pytest.fixture(scope="module")
def stability_api():
    fake = FakeStability(api_key=KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def replicate_api():
    fake = FakeReplicate(api_token=TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def client(replicate_api):
    replicate_api.reset()
    client = replicate.Client(api_token=TOKEN, base_url=replicate_api.url)
    client.poll_interval = 0.05
    yield client
    client._client.close()


def generate(fake, path=SD3, headers=AUTH, **fields):
    fields.setdefault("prompt", "a lighthouse at dusk")
    return requests.post(
        fake.url + path, headers=headers, data=fields, files={"none": ""}, timeout=10
    )


def picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def assert_stability_error(response, status, name):
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"id", "name", "errors"}
    assert re.fullmatch(r"[0-9a-f]{32}", body["id"]), body["id"]
    assert body["name"] == name
    return body["errors"]


# --- Stability v2beta ----------------------------------------------------------------------


def test_v2beta_refuses_a_json_body(stability_api):
    response = requests.post(
        stability_api.url + SD3, headers=AUTH, json={"prompt": "a cat"}, timeout=5
    )
    errors = assert_stability_error(response, 400, "bad_request")
    assert errors == ["content-type: must be multipart/form-data"]


def test_v2beta_refuses_an_urlencoded_body(stability_api):
    response = requests.post(
        stability_api.url + SD3, headers=AUTH, data={"prompt": "a cat"}, timeout=5
    )
    assert assert_stability_error(response, 400, "bad_request") == [
        "content-type: must be multipart/form-data"
    ]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": KEY}]
)
def test_v2beta_requires_the_bearer_key(stability_api, headers):
    errors = assert_stability_error(generate(stability_api, headers=headers), 401, "unauthorized")
    assert errors == ["authorization: invalid or missing"]


def test_v2beta_returns_the_image_with_its_seed_and_finish_reason(stability_api):
    headers = {**AUTH, "Accept": "image/*"}
    response = generate(stability_api, headers=headers, aspect_ratio="16:9", seed="42")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["finish-reason"] == "SUCCESS"
    assert response.headers["seed"] == "42"
    assert picture(response.content).size == (1344, 768)
    recorded = stability_api.requests[-1]
    assert recorded.body["fields"]["seed"] == "42"
    assert recorded.body["files"] == ["none"]
    assert recorded.headers["authorization"] == AUTH["Authorization"]


def test_v2beta_seed_zero_reports_the_seed_it_drew(stability_api):
    response = generate(stability_api, seed="0")
    assert response.status_code == 200
    assert int(response.headers["seed"]) > 0
    assert picture(response.content).size == (1024, 1024)


def test_v2beta_json_accept(stability_api):
    headers = {**AUTH, "Accept": "application/json"}
    response = generate(stability_api, headers=headers, seed="7", output_format="jpeg")
    body = response.json()
    assert set(body) == {"image", "finish_reason", "seed"}
    assert body["seed"] == 7 and body["finish_reason"] == "SUCCESS"
    assert picture(base64.b64decode(body["image"])).format == "JPEG"
    assert "finish-reason" not in response.headers


def test_v2beta_core_and_ultra_take_webp(stability_api):
    for service in ("core", "ultra"):
        path = f"/v2beta/stable-image/generate/{service}"
        response = generate(stability_api, path=path, output_format="webp", aspect_ratio="9:16")
        assert response.headers["content-type"] == "image/webp"
        assert picture(response.content).size == (768, 1344)


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        (SD3, "width", "1024"),
        (SD3, "height", "1024"),
        (SD3, "steps", "30"),
        (SD3, "sampler", "K_EULER"),
        ("/v2beta/stable-image/generate/core", "model", "sd3.5-large"),
        ("/v2beta/stable-image/generate/core", "cfg_scale", "5"),
        ("/v2beta/stable-image/generate/ultra", "mode", "text-to-image"),
    ],
)
def test_v2beta_rejects_parameters_the_service_does_not_take(stability_api, path, field, value):
    errors = assert_stability_error(
        generate(stability_api, path=path, **{field: value}), 400, "bad_request"
    )
    assert any(error.startswith(f"{field}:") for error in errors)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", ""),
        ("prompt", "x" * 10001),
        ("aspect_ratio", "4:3"),
        ("seed", "-1"),
        ("seed", "4294967295"),
        ("output_format", "webp"),
        ("model", "sdxl"),
        ("cfg_scale", "11"),
        ("cfg_scale", "0.5"),
        ("mode", "image-to-image"),
        ("style_preset", "watercolour"),
    ],
)
def test_v2beta_validates_values(stability_api, field, value):
    errors = assert_stability_error(generate(stability_api, **{field: value}), 400, "bad_request")
    assert len(errors) == 1
    assert errors[0].split(":")[0] in (field, "image")


def test_v2beta_turbo_takes_no_negative_prompt(stability_api):
    response = generate(stability_api, model="sd3.5-large-turbo", negative_prompt="blur")
    assert assert_stability_error(response, 400, "bad_request")[0].startswith("negative_prompt:")
    assert generate(stability_api, model="sd3.5-large-turbo").status_code == 200


def test_v2beta_needs_a_prompt_and_an_accept_it_knows(stability_api):
    response = requests.post(stability_api.url + SD3, headers=AUTH, files={"none": ""}, timeout=5)
    assert assert_stability_error(response, 400, "bad_request") == ["prompt: is required"]
    response = generate(stability_api, headers={**AUTH, "Accept": "text/html"})
    assert assert_stability_error(response, 400, "bad_request")[0].startswith("accept:")


# --- Stability v1 --------------------------------------------------------------------------


def v1(fake, body, headers=None):
    headers = {**AUTH, "Accept": "application/json", **(headers or {})}
    return requests.post(fake.url + V1, headers=headers, json=body, timeout=5)


def test_v1_refuses_a_size_sdxl_cannot_make(stability_api):
    response = v1(
        stability_api,
        {"text_prompts": [{"text": "a cat", "weight": 1}], "width": 512, "height": 512},
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"id", "name", "message"}
    assert body["name"] == "invalid_sdxl_v1_dimensions"
    assert "512x512" in body["message"]


def test_v1_returns_artifacts(stability_api):
    body = {
        "text_prompts": [{"text": "a cat", "weight": 1}, {"text": "blurry", "weight": -1}],
        "width": 1216,
        "height": 832,
        "steps": 30,
        "cfg_scale": 7,
        "seed": 11,
        "samples": 2,
    }
    artifacts = v1(stability_api, body).json()["artifacts"]
    assert [a["seed"] for a in artifacts] == [11, 12]
    assert all(a["finishReason"] == "SUCCESS" for a in artifacts)
    assert picture(base64.b64decode(artifacts[0]["base64"])).size == (1216, 832)


@pytest.mark.parametrize(
    "change",
    [
        {"steps": 5},
        {"steps": 51},
        {"cfg_scale": 36},
        {"seed": -1},
        {"samples": 11},
        {"unknown": 1},
        {"text_prompts": []},
        {"text_prompts": [{"text": "x", "weight": -1}]},
        {"width": "1024"},
    ],
)
def test_v1_validates_values(stability_api, change):
    body = {"text_prompts": [{"text": "a cat", "weight": 1}], **change}
    response = v1(stability_api, body)
    assert response.status_code == 400
    assert set(response.json()) == {"id", "name", "message"}


def test_v1_refuses_multipart_unknown_engines_and_bad_keys(stability_api):
    response = requests.post(
        stability_api.url + V1, headers=AUTH, data={"a": "b"}, files={"none": ""}, timeout=5
    )
    assert response.status_code == 400 and "message" in response.json()
    other = V1.replace("stable-diffusion-xl-1024-v1-0", "stable-diffusion-v9")
    response = requests.post(stability_api.url + other, headers=AUTH, json={}, timeout=5)
    assert response.status_code == 404
    assert v1(stability_api, {}, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_balance(stability_api):
    url = stability_api.url + "/v1/user/balance"
    assert requests.get(url, headers=AUTH, timeout=5).json() == {"credits": 100.0}
    assert requests.get(url, timeout=5).status_code == 401


# --- Stability faults ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("401", "unauthorized"),
        ("402", "payment_required"),
        ("403", "content_moderation"),
        ("413", "payload_too_large"),
        ("422", "invalid_language"),
        ("429", "rate_limit_exceeded"),
        ("500", "internal_error"),
    ],
)
def test_stability_error_faults(stability_api, code, name):
    errors = assert_stability_error(
        generate(stability_api, prompt=f"a cat [fault:{code}]"), int(code), name
    )
    assert errors and all(isinstance(error, str) for error in errors)


def test_stability_error_faults_on_v1_use_message(stability_api):
    response = v1(stability_api, {"text_prompts": [{"text": "a cat [fault:402]"}]})
    assert response.status_code == 402
    assert set(response.json()) == {"id", "name", "message"}


def test_stability_content_filtered(stability_api):
    response = generate(stability_api, prompt="a cat [fault:filtered]")
    assert response.status_code == 200
    assert response.headers["finish-reason"] == "CONTENT_FILTERED"
    assert picture(response.content).getpixel((0, 0)) == (128, 128, 128)


def test_stability_broken_images(stability_api):
    with pytest.raises(OSError):
        picture(generate(stability_api, prompt="[fault:garbage] a cat").content)
    truncated = generate(stability_api, prompt="[fault:truncated] a cat").content
    assert truncated.startswith(b"\x89PNG")
    with pytest.raises(OSError):
        picture(truncated)
    bomb = generate(stability_api, prompt="[fault:bomb] a cat").content
    assert len(bomb) < 10_000
    assert struct.unpack(">II", bomb[16:24]) == (60000, 60000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))


def test_stability_echo_auth_and_drop(stability_api):
    errors = assert_stability_error(
        generate(stability_api, prompt="[fault:echo-auth]"), 400, "bad_request"
    )
    assert KEY in errors[0]
    with pytest.raises(requests.ConnectionError):
        generate(stability_api, prompt="[fault:drop]")


def test_stability_slow_and_delay(stability_api):
    started = time.monotonic()
    assert generate(stability_api, prompt="[fault:slow=0.3] a cat").status_code == 200
    assert time.monotonic() - started >= 0.3
    stability_api.delay = 0.2
    try:
        started = time.monotonic()
        assert generate(stability_api).status_code == 200
        assert time.monotonic() - started >= 0.2
    finally:
        stability_api.delay = 0.0


def test_stability_unknown_fault_marker_is_an_error(stability_api):
    errors = assert_stability_error(
        generate(stability_api, prompt="[fault:typo]"), 400, "bad_request"
    )
    assert "[fault:typo]" in errors[0]


# --- Replicate over plain HTTP -------------------------------------------------------------


def post_prediction(fake, body, token=TOKEN, path="/v1/predictions"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(fake.url + path, headers=headers, json=body, timeout=5)


@pytest.mark.parametrize("token", [None, "r8_wrong"])
def test_replicate_requires_the_bearer_token(replicate_api, token):
    response = post_prediction(
        replicate_api, {"version": SDXL_VERSION, "input": {"prompt": "x"}}, token=token
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    }
    assert requests.get(replicate_api.url + f"/v1/models/{SDXL}", timeout=5).status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "field", "kind"),
    [
        (
            "/v1/predictions",
            {"version": SDXL_VERSION, "input": {"prompt": "x", "steps": 30}},
            "input",
            "additional_property_not_allowed",
        ),
        (
            "/v1/predictions",
            {"version": SDXL_VERSION, "input": {"num_outputs": 5}},
            "input.num_outputs",
            "number_lte",
        ),
        (
            "/v1/predictions",
            {"version": SDXL_VERSION, "input": {"width": "1024"}},
            "input.width",
            "invalid_type",
        ),
        (
            "/v1/predictions",
            {"version": SDXL_VERSION, "input": {"scheduler": "euler"}},
            "input.scheduler",
            "enum",
        ),
        (
            "/v1/predictions",
            {"version": SDXL_VERSION, "input": {"seed": None}},
            "input.seed",
            "invalid_type",
        ),
        (
            f"/v1/models/{FLUX_SCHNELL}/predictions",
            {"input": {"prompt": "x", "negative_prompt": "y"}},
            "input",
            "additional_property_not_allowed",
        ),
        (
            f"/v1/models/{FLUX_SCHNELL}/predictions",
            {"input": {"prompt": "x", "guidance_scale": 3}},
            "input",
            "additional_property_not_allowed",
        ),
        (
            f"/v1/models/{FLUX_SCHNELL}/predictions",
            {"input": {"prompt": "x", "num_inference_steps": 28}},
            "input.num_inference_steps",
            "number_lte",
        ),
        (f"/v1/models/{FLUX_SCHNELL}/predictions", {"input": {}}, "input", "required"),
    ],
)
def test_replicate_validates_inputs(replicate_api, path, body, field, kind):
    response = post_prediction(replicate_api, body, path=path)
    assert response.status_code == 422
    problem = response.json()
    assert problem["title"] == "Input validation failed" and problem["status"] == 422
    assert [(f["field"], f["type"]) for f in problem["invalid_fields"]] == [(field, kind)]
    assert problem["detail"].startswith(f"- {field}: ")


def test_replicate_unknown_version_and_community_model_endpoint(replicate_api):
    response = post_prediction(replicate_api, {"version": "0" * 64, "input": {}})
    assert response.status_code == 422
    assert response.json()["title"] == "Invalid version or not permitted"
    response = post_prediction(
        replicate_api, {"input": {"prompt": "x"}}, path=f"/v1/models/{SDXL}/predictions"
    )
    assert response.status_code == 404


def test_replicate_http_faults(replicate_api):
    for code in (402, 429, 500):
        response = post_prediction(
            replicate_api, {"version": SDXL_VERSION, "input": {"prompt": f"[fault:{code}]"}}
        )
        assert response.status_code == code
        assert set(response.json()) == {"title", "detail", "status"}
    assert response.json()["title"] == "Internal Server Error"
    response = post_prediction(
        replicate_api, {"version": SDXL_VERSION, "input": {"prompt": "[fault:429]"}}
    )
    assert response.headers["retry-after"] == "1"


# --- Replicate with the official client ----------------------------------------------------


def test_client_run_round_trip(client, replicate_api):
    output = client.run(
        f"{SDXL}:{SDXL_VERSION}", input={"prompt": "a cat", "width": 768, "height": 1344, "seed": 3}
    )
    assert isinstance(output, list) and len(output) == 1
    url = str(output[0])
    assert url.startswith(replicate_api.url + "/files/")
    image = picture(requests.get(url, timeout=5).content)
    assert (image.format, image.size) == ("PNG", (768, 1344))
    create = replicate_api.requests[0]
    assert (create.method, create.path, create.headers["prefer"]) == (
        "POST",
        "/v1/predictions",
        "wait",
    )
    assert create.body == {
        "version": SDXL_VERSION,
        "input": {"prompt": "a cat", "width": 768, "height": 1344, "seed": 3},
    }
    assert any(
        r.path == f"/v1/models/{SDXL}/versions/{SDXL_VERSION}" for r in replicate_api.requests
    )


def test_client_official_model_output_format_and_size(client):
    output = client.run(
        FLUX_SCHNELL, input={"prompt": "a cat", "aspect_ratio": "16:9", "num_outputs": 2}
    )
    assert len(output) == 2
    image = picture(requests.get(output[1], timeout=5).content)
    assert (image.format, image.size) == ("WEBP", (1344, 768))
    output = client.run(
        FLUX_SCHNELL, input={"prompt": "a cat", "output_format": "png", "megapixels": "0.25"}
    )
    assert picture(requests.get(output[0], timeout=5).content).size == (512, 512)


def test_client_create_and_poll(client, replicate_api):
    replicate_api.run_time = 3600  # runs until the test ends it, however slow the machine
    prediction = client.predictions.create(
        version=SDXL_VERSION, input={"prompt": "a cat", "seed": 99}
    )
    assert prediction.status == "starting" and prediction.output is None
    prediction.reload()
    assert prediction.status == "processing" and prediction.output is None
    assert "Using seed: 99" in prediction.logs
    replicate_api.finish(prediction.id)
    prediction.reload()
    assert prediction.status == "succeeded"
    assert prediction.metrics["predict_time"] > 0
    assert prediction.urls["get"] == f"{replicate_api.url}/v1/predictions/{prediction.id}"
    assert picture(requests.get(prediction.output[0], timeout=5).content).size == (1024, 1024)


def test_client_wait_answers_processing_with_output(client):
    prediction = client.models.predictions.create(
        model=FLUX_SCHNELL, input={"prompt": "a cat"}, wait=5
    )
    assert prediction.status == "processing"
    assert prediction.output and prediction.output[0].endswith(".webp")
    prediction.reload()
    assert prediction.status == "succeeded"


def test_client_random_seed_is_logged(client):
    """A prediction without a seed draws one (0-65535, as SDXL's cog does) and logs it."""
    prediction = client.predictions.create(version=SDXL_VERSION, input={"prompt": "a cat"}, wait=5)
    seed = int(re.search(r"Using seed: (\d+)\n", prediction.logs).group(1))
    assert 0 <= seed <= 65535
    output = requests.get(prediction.output[0], timeout=5).content
    assert output == render_image(1024, 1024, seed, "png")  # the logged seed is the one used


def test_client_cancel_a_prediction_that_never_ends(client, replicate_api):
    prediction = client.predictions.create(
        version=SDXL_VERSION, input={"prompt": "a cat [fault:never]"}
    )
    time.sleep(0.25)
    prediction.reload()
    assert prediction.status == "processing" and prediction.output is None
    prediction.cancel()
    assert prediction.status == "canceled"
    assert replicate_api.cancels == [prediction.id]
    prediction.reload()
    assert prediction.status == "canceled"


def test_client_wait_is_capped_and_answers_starting(client, replicate_api):
    replicate_api.max_wait = 0.3
    started = time.monotonic()
    prediction = client.predictions.create(
        version=SDXL_VERSION, input={"prompt": "[fault:never]"}, wait=30
    )
    # Held for max_wait at least, and answered long before the 30 s asked for: a bound no
    # loaded machine misses, where the fake ignoring the cap would hold the call for 30 s.
    assert 0.3 <= time.monotonic() - started < 20
    assert prediction.status == "starting"
    prediction.cancel()


@pytest.mark.parametrize(
    ("prompt", "width", "message"),
    [
        ("[fault:nsfw]", 1024, "NSFW content detected. Try running it again"),
        ("[fault:model-error]", 1024, "CUDA"),
        ("a cat", 1020, "divisible by 8"),
    ],
)
def test_client_model_errors(client, prompt, width, message):
    with pytest.raises(ModelError, match=message) as caught:
        client.run(f"{SDXL}:{SDXL_VERSION}", input={"prompt": prompt, "width": width})
    assert caught.value.prediction.status == "failed"


def test_client_http_errors(client):
    for code in (401, 402, 422, 429, 500):
        with pytest.raises(ReplicateError) as caught:
            client.run(FLUX_SCHNELL, input={"prompt": f"[fault:{code}]"})
        assert caught.value.status == code
    with pytest.raises(ReplicateError) as caught:
        client.run(FLUX_SCHNELL, input={"prompt": "[fault:echo-auth]"})
    assert TOKEN in caught.value.detail
    with pytest.raises(httpx.RemoteProtocolError):
        client.run(FLUX_SCHNELL, input={"prompt": "[fault:drop]"})


def test_client_data_url_output_is_a_file_output(client):
    output = client.run(FLUX_SCHNELL, input={"prompt": "[fault:data-url]", "output_format": "png"})
    assert output[0].url.startswith("data:image/png;base64,")
    assert picture(output[0].read()).size == (1024, 1024)


@pytest.mark.parametrize("fault", ["output-404", "garbage", "truncated", "bomb"])
def test_client_broken_outputs(client, fault):
    output = client.run(f"{SDXL}:{SDXL_VERSION}", input={"prompt": f"[fault:{fault}]"})
    response = requests.get(output[0], timeout=5)
    if fault == "output-404":
        assert response.status_code == 404
    elif fault == "bomb":
        with pytest.raises(Image.DecompressionBombError):
            Image.open(io.BytesIO(response.content))
    else:
        with pytest.raises(OSError):
            picture(response.content)


def test_client_wait_empty_returns_none(client):
    assert client.run(f"{SDXL}:{SDXL_VERSION}", input={"prompt": "[fault:wait-empty]"}) is None


def test_client_wait_holds_a_slow_prediction(client):
    started = time.monotonic()
    prediction = client.predictions.create(
        version=SDXL_VERSION, input={"prompt": "[fault:slow=0.4]"}, wait=5
    )
    assert time.monotonic() - started >= 0.4
    assert prediction.output


# --- standalone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "path", "secret"),
    [("stability", "/v1/user/balance", KEY), ("replicate", "/v1/account", TOKEN)],
)
def test_standalone_entry_point_prints_its_url(module, path, secret):
    command = [sys.executable, "-m", f"tests.fakes.{module}", "--port", "0"]
    root = Path(__file__).resolve().parents[1]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as process:
        try:
            url = process.stdout.readline().strip()
            response = requests.get(
                url + path, headers={"Authorization": f"Bearer {secret}"}, timeout=5
            )
            assert response.status_code == 200
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(10)
    assert process.returncode == 0
