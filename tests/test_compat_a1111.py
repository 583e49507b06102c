"""The AUTOMATIC1111-compatible routes, driven by `webuiapi` against a live server."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
import requests
import webuiapi
from PIL import Image as PILImage

from app.extensions import db
from app.models import Image
from tests.conftest import LiveServer, files_in

PROMPT = "a red fox in the snow"


def api_for(server: LiveServer, **auth) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(baseurl=f"{server.url}/sdapi/v1", **auth)


@pytest.fixture
def app(make_app, fake_stability):
    return make_app(STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url,
                    DEFAULT_PROVIDER="offline")


@pytest.fixture
def server(app):
    with LiveServer(app) as live:
        yield live


def records(app) -> list[Image]:
    with app.app_context():
        return db.session.scalars(db.select(Image).order_by(Image.id)).all()


def test_txt2img_answers_images_and_info_that_webuiapi_reads(server):
    result = api_for(server).txt2img(prompt=PROMPT, negative_prompt="fog", seed=1234, steps=20,
                                     cfg_scale=6.5, width=512, height=768)
    assert result.image.size == (512, 768)
    info = result.info  # webuiapi has parsed the JSON text
    assert (info["prompt"], info["negative_prompt"], info["seed"]) == (PROMPT, "fog", 1234)
    assert info["all_seeds"] == [1234] and info["all_prompts"] == [PROMPT]
    assert (info["width"], info["height"], info["steps"], info["cfg_scale"]) == (512, 768, 20, 6.5)
    assert info["sd_model_name"] == "offline"
    [infotext] = info["infotexts"]
    assert infotext == result.image.info["parameters"]
    assert "Steps: 20, CFG scale: 6.5, Seed: 1234, Size: 512x768" in infotext
    assert result.parameters["prompt"] == PROMPT  # the request, echoed
    [record] = records(server.app)
    assert (record.seed, record.width, record.height) == (1234, 512, 768)


def test_seed_minus_one_draws_a_seed_the_info_reports(server):
    result = api_for(server).txt2img(prompt=PROMPT, seed=-1)
    [record] = records(server.app)
    assert result.info["seed"] == record.seed > 0
    assert result.image.size == (512, 512)  # A1111's default size


def test_fields_that_would_change_the_picture_are_named_in_ignored(server):
    api_for(server).txt2img(prompt=PROMPT, enable_hr=True, restore_faces=True,
                            sampler_name="DPM++ 2M", styles=["cinematic"],
                            override_settings={"CLIP_stop_at_last_layers": 2})
    [record] = records(server.app)
    assert record.ignored == ["enable_hr", "restore_faces", "styles", "sampler_name",
                              "denoising_strength", "override_settings.CLIP_stop_at_last_layers"]


def test_defaults_webuiapi_sends_change_nothing_but_the_sampler(server):
    api_for(server).txt2img(prompt=PROMPT)
    [record] = records(server.app)
    assert record.ignored == ["sampler_name"]


def test_batch_size_times_n_iter_images(server):
    result = api_for(server).txt2img(prompt=PROMPT, batch_size=2, n_iter=2, seed=77)
    assert len(result.images) == 4
    assert result.info["all_seeds"] == [77, 78, 79, 80]
    assert len(result.info["infotexts"]) == 4 and len(records(server.app)) == 4


def test_models_options_and_selection_kept_across_restarts(make_app, fake_stability):
    config = dict(STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url,
                  DEFAULT_PROVIDER="offline")
    app = make_app(**config)
    with LiveServer(app) as live:
        api = api_for(live)
        titles = api.util_get_model_names()
        assert "offline" in titles and "stability/sd3.5-medium" in titles
        assert api.util_get_current_model() == "offline"
        api.util_set_model("stability/sd3.5-medium")
        assert api.util_get_current_model() == "stability/sd3.5-medium"
        api.txt2img(prompt=PROMPT, width=1024, height=1024)
        # A per-request override wins over the kept choice.
        api.txt2img(prompt=PROMPT, override_settings={"sd_model_checkpoint": "offline"})
    assert [(r.provider, r.model) for r in records(app)] == [("stability", "sd3.5-medium"),
                                                              ("offline", "abstract")]
    # Another app on the same database (a restart, or another node) keeps the choice.
    again = make_app(**config, SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"])
    assert again.test_client().get("/sdapi/v1/options").get_json()["sd_model_checkpoint"] == (
        "stability/sd3.5-medium")


def test_unknown_checkpoint_is_refused(server):
    response = requests.post(f"{server.url}/sdapi/v1/options",
                             json={"sd_model_checkpoint": "v1-5-pruned.safetensors"}, timeout=10)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "sd_model_checkpoint"]
    response = requests.post(f"{server.url}/sdapi/v1/txt2img", timeout=10, json={
        "prompt": PROMPT, "override_settings": {"sd_model_checkpoint": "stability/sd9"}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "override_settings",
                                                   "sd_model_checkpoint"]


def test_samplers_schedulers_progress(server):
    api = api_for(server)
    assert "Euler a" in api.util_get_sampler_names()
    assert "automatic" in api.util_get_scheduler_names()
    progress = api.get_progress()
    assert progress["progress"] == 0 and progress["state"]["job_count"] == 0


def test_png_info_round_trip(server):
    api = api_for(server)
    made = api.txt2img(prompt=PROMPT, negative_prompt="fog", seed=42, steps=25, width=1024,
                       height=1024)
    read = api.png_info(made.image)
    assert read.info == made.info["infotexts"][0]
    parameters = read.parameters
    assert (parameters["Prompt"], parameters["Negative prompt"]) == (PROMPT, "fog")
    assert (parameters["Seed"], parameters["Steps"], parameters["Size-1"]) == ("42", "25", "1024")


def test_png_info_takes_an_image_larger_than_the_json_body_limit(server):
    import os

    from PIL import PngImagePlugin

    noise = PILImage.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3))
    text = PngImagePlugin.PngInfo()
    text.add_text("parameters", "noise\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5")
    buffer = io.BytesIO()
    noise.save(buffer, "PNG", pnginfo=text)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    assert len(encoded) > server.app.config["MAX_CONTENT_LENGTH"]
    response = requests.post(f"{server.url}/sdapi/v1/png-info", json={"image": encoded},
                             timeout=30)
    assert response.status_code == 200
    assert response.json()["parameters"]["Sampler"] == "Euler a"


def test_png_info_of_an_image_without_parameters(server):
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(buffer, "PNG")
    response = requests.post(f"{server.url}/sdapi/v1/png-info", timeout=10,
                             json={"image": base64.b64encode(buffer.getvalue()).decode()})
    assert response.status_code == 200
    assert response.json() == {"info": "", "items": {}, "parameters": {}}


@pytest.mark.parametrize("image", ["not base64 at all!", base64.b64encode(b"plain text").decode(),
                                   "", 12])
def test_png_info_of_something_that_is_not_an_image(server, image):
    response = requests.post(f"{server.url}/sdapi/v1/png-info", json={"image": image}, timeout=10)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "image"]


@pytest.mark.parametrize("body, field", [
    ({"prompt": PROMPT, "batch_size": 4, "n_iter": 3}, "batch_size"),
    ({"prompt": PROMPT, "batch_size": "2"}, "batch_size"),
    ({"prompt": PROMPT, "n_iter": 0}, "n_iter"),
    ({"prompt": PROMPT, "steps": "many"}, "steps"),
    ({"prompt": PROMPT, "width": 500}, "width"),
    ({"prompt": PROMPT, "cfg_scale": None, "seed": "x"}, "seed"),
    ({"prompt": 7}, "prompt"),
    ({"prompt": PROMPT, "override_settings": []}, "override_settings"),
])
def test_bad_input_is_a_422_in_fastapi_shape(server, body, field):
    response = requests.post(f"{server.url}/sdapi/v1/txt2img", json=body, timeout=10)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["loc"][:2] == ["body", field] and detail[0]["msg"]
    assert records(server.app) == []


def test_provider_failure_keeps_the_contract_status(server):
    response = requests.post(f"{server.url}/sdapi/v1/txt2img", timeout=30, json={
        "prompt": f"{PROMPT} [fault:500]",
        "override_settings": {"sd_model_checkpoint": "stability/sd3.5-large"}})
    assert response.status_code == 502
    assert response.json()["error"] == "upstream_error" and response.json()["detail"]
    assert files_in(server.app.config["IMAGES_DIR"]) == []


def test_tokens_by_basic_auth_or_bearer(make_app):
    with LiveServer(make_app(API_TOKENS=["a1111-token"])) as live:
        assert requests.get(f"{live.url}/sdapi/v1/sd-models", timeout=10).status_code == 401
        wrong = requests.get(f"{live.url}/sdapi/v1/sd-models", auth=("user", "nope"), timeout=10)
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
        result = api_for(live, username="anyone", password="a1111-token").txt2img(prompt=PROMPT)
        assert result.image.size == (512, 512)
        bearer = requests.get(f"{live.url}/sdapi/v1/options", timeout=10,
                              headers={"Authorization": "Bearer a1111-token"})
        assert bearer.status_code == 200


# --- Open WebUI's "Automatic1111" engine -------------------------------------------------------


def test_open_webui_automatic1111_engine_requests(make_app):
    """What Open WebUI's image router sends: options read and written back whole, then txt2img."""
    with LiveServer(make_app(API_TOKENS=["owui-token"])) as live:
        auth = "Basic " + base64.b64encode(b"openwebui:owui-token").decode()
        headers = {"authorization": auth}
        options = requests.get(f"{live.url}/sdapi/v1/options", headers=headers, timeout=10).json()
        options["sd_model_checkpoint"] = "offline"
        written = requests.post(f"{live.url}/sdapi/v1/options", json=options, headers=headers,
                                timeout=10)
        assert written.status_code == 200
        models = requests.get(f"{live.url}/sdapi/v1/sd-models", headers=headers, timeout=10).json()
        assert {"title", "model_name"} <= set(models[0])
        response = requests.post(f"{live.url}/sdapi/v1/txt2img", headers=headers, timeout=30,
                                 json={"prompt": PROMPT, "batch_size": 1, "width": 512,
                                       "height": 512, "steps": 20})
    assert response.status_code == 200
    answer = response.json()
    assert json.loads(answer["info"])["all_seeds"]
    picture = PILImage.open(io.BytesIO(base64.b64decode(answer["images"][0])))
    assert picture.format == "PNG" and picture.size == (512, 512)


def test_open_webui_sends_an_empty_authorization_without_auth(server):
    response = requests.get(f"{server.url}/sdapi/v1/options", headers={"authorization": ""},
                            timeout=10)
    assert response.status_code == 200


def test_a_stored_webp_goes_to_a1111_clients_as_a_png_with_its_parameters(app):
    from app.compat import stored_base64

    client = app.test_client()
    assert client.post("/sdapi/v1/txt2img", json={"prompt": PROMPT}).status_code == 200
    with app.app_context():
        record = db.session.scalars(db.select(Image)).one()
        path = Path(app.config["IMAGES_DIR"]) / record.filename
        PILImage.open(path).save(path.with_suffix(".webp"), "WEBP")
        record.filename, record.format = path.with_suffix(".webp").name, "webp"
        sent = PILImage.open(io.BytesIO(base64.b64decode(stored_base64(record, png=True))))
        assert sent.format == "PNG" and sent.size == (512, 512)
        assert sent.info["parameters"] == record.parameters_text


def test_a_replicate_model_chosen_by_its_checkpoint_title(make_app, fake_replicate):
    app = make_app(REPLICATE_API_TOKEN=fake_replicate.api_token,
                   REPLICATE_BASE_URL=fake_replicate.url)
    with LiveServer(app) as live:
        api = api_for(live)
        assert "replicate/black-forest-labs/flux-schnell" in api.util_get_model_names()
        result = api.txt2img(prompt=PROMPT, width=1024, height=1024, override_settings={
            "sd_model_checkpoint": "replicate/black-forest-labs/flux-schnell"})
    [record] = records(app)
    assert (record.provider, record.model) == ("replicate", "black-forest-labs/flux-schnell")
    assert result.image.format == "PNG"
    assert result.image.info["parameters"] == result.info["infotexts"][0]
    assert result.info["sd_model_name"] == "replicate/black-forest-labs/flux-schnell"


@pytest.mark.parametrize("name", ["a1111.png", "a1111.jpg", "comfyui.png"])
def test_png_info_of_other_tools_images(server, name):
    from tests.test_metadata import SAMPLES

    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"no sample images at {SAMPLES} (other tools' outputs, kept outside the repo)")
    data = path.read_bytes()
    response = requests.post(f"{server.url}/sdapi/v1/png-info", timeout=30,
                             json={"image": base64.b64encode(data).decode()})
    assert response.status_code == 200
    answer = response.json()
    assert answer["info"] and answer["parameters"]["Prompt"]
    assert int(answer["parameters"]["Steps"]) > 0 and int(answer["parameters"]["Seed"]) >= 0
