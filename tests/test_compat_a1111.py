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

from app.compat.samplers import choose
from app.extensions import db
from app.models import Image
from app.providers.base import Option
from app.providers.replicate import FLUX_SCHNELL, SDXL
from app.providers.stability import SAMPLER as STABILITY_SAMPLER
from tests.conftest import LiveServer, files_in
from tests.fakes.replicate import ANIME, ANIME_VERSION

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


# --- Samplers: A1111's names become the chosen model's own sampler option ----------------------

SDXL_ID = f"replicate/{SDXL}"
# SDXL's scheduler values → the A1111 sampler each is
A1111_NAME = {"KarrasDPM": "DPM++ 2M", "DPMSolverMultistep": "DPM++ 2M", "K_EULER": "Euler",
              "HeunDiscrete": "Heun", "DDIM": "DDIM", "PNDM": "PLMS", "K_EULER_ANCESTRAL": "Euler a"}


@pytest.fixture
def replicate_app(make_app, fake_replicate, fake_stability):
    return make_app(REPLICATE_API_TOKEN=fake_replicate.api_token,
                    REPLICATE_BASE_URL=fake_replicate.url,
                    REPLICATE_MODELS=f"{ANIME}:{ANIME_VERSION}",
                    STABILITY_API_KEY=fake_stability.api_key,
                    STABILITY_BASE_URL=fake_stability.url, DEFAULT_PROVIDER="offline")


@pytest.fixture
def replicate_server(replicate_app):
    with LiveServer(replicate_app) as live:
        yield live


def sent_inputs(fake) -> list[dict]:
    return [r.json["input"] for r in fake.requests
            if r.method == "POST" and r.path.endswith("/predictions")]


def txt2img(server, checkpoint: str, **fields) -> requests.Response:
    return requests.post(f"{server.url}/sdapi/v1/txt2img", timeout=30, json={
        "prompt": PROMPT, "width": 1024, "height": 1024,
        "override_settings": {"sd_model_checkpoint": checkpoint}, **fields})


def test_webuiapi_euler_a_runs_sdxl_with_its_euler_ancestral_scheduler(replicate_server,
                                                                        fake_replicate):
    result = api_for(replicate_server).txt2img(
        prompt=PROMPT, width=1024, height=1024, sampler_name="Euler a",
        override_settings={"sd_model_checkpoint": SDXL_ID})
    [sent] = sent_inputs(fake_replicate)
    assert sent["scheduler"] == "K_EULER_ANCESTRAL"
    [record] = records(replicate_server.app)
    assert record.options == {"scheduler": "K_EULER_ANCESTRAL"}
    assert record.ignored == []  # sampler_name, sampler_index and scheduler "automatic" all used
    assert result.info["sampler_name"] == "Euler a"
    [infotext] = result.info["infotexts"]
    assert infotext.endswith("scheduler: K_EULER_ANCESTRAL")
    assert result.image.info["parameters"] == infotext


@pytest.mark.parametrize(("fields", "scheduler", "schedule_type"), [
    ({"sampler_name": "DPM++ 2M", "scheduler": "karras"}, "KarrasDPM", "Karras"),
    ({"sampler_name": "DPM++ 2M", "scheduler": "Karras"}, "KarrasDPM", "Karras"),
    ({"sampler_name": "DPM++ 2M Karras"}, "KarrasDPM", "Karras"),  # before A1111 1.9
    ({"sampler_name": "DPM++ 2M Karras", "scheduler": "automatic"}, "KarrasDPM", "Karras"),
    # A1111's automatic schedule for DPM++ 2M is Karras
    ({"sampler_name": "DPM++ 2M"}, "KarrasDPM", "Karras"),
    ({"sampler_name": "DPM++ 2M", "scheduler": "automatic"}, "KarrasDPM", "Karras"),
    ({"sampler_name": "Euler"}, "K_EULER", None),
    ({"sampler_name": "Heun"}, "HeunDiscrete", None),
    ({"sampler_name": "DDIM"}, "DDIM", None),
    ({"sampler_name": "PLMS"}, "PNDM", None),
    ({"sampler_index": "k_euler_a"}, "K_EULER_ANCESTRAL", None),  # the older field and alias
    ({"sampler_name": "", "sampler_index": "Euler a"}, "K_EULER_ANCESTRAL", None),
])
def test_a1111_samplers_become_sdxl_schedulers(replicate_server, fake_replicate, fields,
                                              scheduler, schedule_type):
    response = txt2img(replicate_server, SDXL_ID, **fields)
    assert response.status_code == 200, response.text
    [sent] = sent_inputs(fake_replicate)
    assert sent["scheduler"] == scheduler
    [record] = records(replicate_server.app)
    assert (record.options, record.ignored) == ({"scheduler": scheduler}, [])
    info = json.loads(response.json()["info"])
    assert info["sampler_name"] == A1111_NAME[scheduler]
    assert info["extra_generation_params"] == (
        {"Schedule type": schedule_type} if schedule_type else {})
    assert f"scheduler: {scheduler}" in info["infotexts"][0]


@pytest.mark.parametrize(("fields", "scheduler", "automatic"), [
    ({"sampler_name": "Euler a", "scheduler": "karras"}, "K_EULER_ANCESTRAL", {}),
    # as if automatic had been asked: A1111's Karras for DPM++ 2M
    ({"sampler_name": "DPM++ 2M", "scheduler": "exponential"}, "KarrasDPM",
     {"Schedule type": "Karras"}),
    ({"sampler_name": "DPM++ 2M", "scheduler": "no such schedule"}, "KarrasDPM",
     {"Schedule type": "Karras"}),
])
def test_a_schedule_the_model_lacks_is_ignored_and_the_sampler_still_used(
        replicate_server, fake_replicate, fields, scheduler, automatic):
    response = txt2img(replicate_server, SDXL_ID, **fields)
    assert response.status_code == 200
    [sent] = sent_inputs(fake_replicate)
    assert sent["scheduler"] == scheduler
    [record] = records(replicate_server.app)
    assert (record.options, record.ignored) == ({"scheduler": scheduler}, ["scheduler"])
    info = json.loads(response.json()["info"])
    assert (info["sampler_name"], info["extra_generation_params"]) == (fields["sampler_name"],
                                                                       automatic)


@pytest.mark.parametrize(("checkpoint", "fields", "ignored"), [
    # SDXL has a scheduler option, but none of its values is this sampler
    (SDXL_ID, {"sampler_name": "DPM++ 2M SDE", "scheduler": "exponential"},
     ["sampler_name", "scheduler"]),
    (SDXL_ID, {"sampler_name": "UniPC"}, ["sampler_name"]),
    (SDXL_ID, {"sampler_name": "No Such Sampler"}, ["sampler_name"]),
    (SDXL_ID, {"sampler_index": "LMS"}, ["sampler_index"]),
    (SDXL_ID, {"sampler_name": 7}, ["sampler_name"]),
    # FLUX.1 [schnell] has no sampler option at all
    (f"replicate/{FLUX_SCHNELL}", {"sampler_name": "Euler a", "scheduler": "karras"},
     ["steps", "cfg_scale", "sampler_name", "scheduler"]),
])
def test_a_sampler_that_cannot_be_used_is_named_in_ignored(replicate_server, fake_replicate,
                                                           checkpoint, fields, ignored):
    response = txt2img(replicate_server, checkpoint, **fields)
    assert response.status_code == 200, response.text
    [sent] = sent_inputs(fake_replicate)
    assert "scheduler" not in sent  # SDXL then runs its own default
    [record] = records(replicate_server.app)
    assert record.ignored == ignored and record.options.get("scheduler") is None
    info = json.loads(response.json()["info"])
    assert info["sampler_name"] is None and "scheduler:" not in info["infotexts"][0]


def test_stability_sdxl_takes_the_sampler_as_its_v1_sampler(replicate_server, fake_stability):
    response = txt2img(replicate_server, "stability/sdxl-1.0", sampler_name="DPM++ 2M")
    assert response.status_code == 200, response.text
    [sent] = fake_stability.requests
    assert sent.json["sampler"] == "K_DPMPP_2M"
    [record] = records(replicate_server.app)
    assert (record.options, record.ignored) == ({"sampler": "K_DPMPP_2M"}, [])


def test_a_schema_model_with_a1111_sampler_names(replicate_server, fake_replicate):
    """A model from REPLICATE_MODELS whose `sampler` input takes A1111's own names."""
    response = txt2img(replicate_server, f"replicate/{ANIME}:{ANIME_VERSION}",
                       sampler_name="DPM++ 2M", scheduler="karras", batch_size=2)
    assert response.status_code == 200, response.text
    assert [sent["sampler"] for sent in sent_inputs(fake_replicate)] == ["DPM++ 2M Karras"] * 2
    assert [(r.options, r.ignored) for r in records(replicate_server.app)] == [
        ({"sampler": "DPM++ 2M Karras"}, [])] * 2


def test_samplers_and_schedulers_in_a1111_shapes(server):
    samplers = requests.get(f"{server.url}/sdapi/v1/samplers", timeout=10).json()
    assert all(set(entry) == {"name", "aliases", "options"} for entry in samplers)
    names = [entry["name"] for entry in samplers]
    assert {"Euler a", "Euler", "DPM++ 2M", "DPM++ SDE", "Heun", "LMS", "DDIM", "PLMS"} <= set(names)
    assert "k_euler_a" in next(entry for entry in samplers if entry["name"] == "Euler a")["aliases"]
    schedulers = requests.get(f"{server.url}/sdapi/v1/schedulers", timeout=10).json()
    assert all(set(entry) == {"name", "label", "aliases", "default_rho", "need_inner_model"}
               for entry in schedulers)
    by_name = {entry["name"]: entry for entry in schedulers}
    assert schedulers[0]["name"] == "automatic"
    assert (by_name["karras"]["label"], by_name["karras"]["default_rho"]) == ("Karras", 7.0)
    assert {"exponential", "sgm_uniform", "uniform"} <= set(by_name)


# The translator's table, against the option values other models declare.
DIFFUSERS = Option("scheduler", "string", None, "", (
    "EulerAncestralDiscrete", "EulerDiscrete", "LMSDiscrete", "DPMSolverMultistep", "KDPM2Discrete",
    "UniPCMultistep"))
COMFYUI = Option("sampler_name", "string", None, "", (
    "euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "lms"))
NOT_A_SAMPLER = Option("sampler", "integer", 1, "", (), 1, 4)


@pytest.mark.parametrize(("option", "sampler", "scheduler", "value"), [
    (STABILITY_SAMPLER, "Euler a", "automatic", "K_EULER_ANCESTRAL"),
    (STABILITY_SAMPLER, "LMS", None, "K_LMS"),
    (STABILITY_SAMPLER, "DPM2 a", None, "K_DPM_2_ANCESTRAL"),
    (STABILITY_SAMPLER, "DPM++ 2S a", None, "K_DPMPP_2S_ANCESTRAL"),
    (STABILITY_SAMPLER, "Heun", None, "K_HEUN"),
    (STABILITY_SAMPLER, "DPM++ 2M Karras", None, None),  # no Karras variant
    (STABILITY_SAMPLER, "K_DPMPP_2M", None, "K_DPMPP_2M"),  # the model's own value, given as is
    (DIFFUSERS, "Euler a", None, "EulerAncestralDiscrete"),
    (DIFFUSERS, "LMS", "automatic", "LMSDiscrete"),
    (DIFFUSERS, "UniPC", None, "UniPCMultistep"),
    (DIFFUSERS, "DDIM", None, None),
    (COMFYUI, "Euler a", None, "euler_ancestral"),
    (COMFYUI, "DPM++ 2M SDE", None, "dpmpp_2m_sde"),
    (COMFYUI, "k_lms", None, "lms"),
    (NOT_A_SAMPLER, "Euler a", None, None),
])
def test_sampler_table_matches_the_values_a_model_declares(option, sampler, scheduler, value):
    choice = choose([option], sampler, scheduler)
    assert (choice.option, choice.value) == (option.name, value) if value else choice is None
