"""More Replicate models: the built-in FLUX.1 [dev], FLUX1.1 [pro] and SD 3.5 Large, and any
model named in REPLICATE_MODELS, its inputs read from the schema Replicate serves."""

import json

import pytest
from PIL import Image as PILImage

from app.providers.replicate import FLUX_DEV, FLUX_PRO, FLUX_SCHNELL, SD35_LARGE, SDXL
from app.providers.replicate_schema import input_properties, resolve_refs
from tests.conftest import files_in
from tests.fakes.replicate import PIXEL, PIXEL_VERSION, RECRAFT, SEEDREAM, _openapi_schema

EXTRA = f"{PIXEL}:{PIXEL_VERSION},{RECRAFT},{SEEDREAM}"


@pytest.fixture
def app(make_app, fake_replicate):
    return make_app(REPLICATE_API_TOKEN=fake_replicate.api_token,
                    REPLICATE_BASE_URL=fake_replicate.url, REPLICATE_MODELS=EXTRA)


def generate(client, **fields):
    body = {"prompt": "a lighthouse at dusk", "provider": "replicate", **fields}
    return client.post("/api/generate", json=body)


def creates(fake):
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith("/predictions")]


def listed_models(client) -> dict:
    [replicate] = [p for p in client.get("/api/providers").get_json() if p["name"] == "replicate"]
    return {model["name"]: model for model in replicate["models"]}


def test_flux_dev_takes_steps_and_guidance(client, fake_replicate, images_dir):
    response = generate(client, model=FLUX_DEV, width=1216, height=832, steps=40, cfg_scale=4.5,
                        seed=9, options={"go_fast": False, "megapixels": "0.25"})
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    [create] = creates(fake_replicate)
    assert create.path == f"/v1/models/{FLUX_DEV}/predictions"
    assert create.json["input"] == {
        "prompt": "a lighthouse at dusk", "aspect_ratio": "3:2", "num_inference_steps": 40,
        "guidance": 4.5, "seed": 9, "output_format": "png", "go_fast": False,
        "megapixels": "0.25"}
    assert (record["seed"], record["options"]) == (9, {"megapixels": "0.25", "go_fast": False})
    assert (record["width"], record["height"]) == (608, 416)
    assert files_in(images_dir) == [record["filename"], f"thumbs/{record['id']}.webp"]


def test_flux_dev_guidance_range_is_the_models(client, fake_replicate):
    response = generate(client, model=FLUX_DEV, cfg_scale=12)
    assert response.status_code == 422
    [problem] = response.get_json()["detail"]
    assert problem["loc"] == ["body", "cfg_scale"] and "1 and 10" in problem["msg"]
    assert creates(fake_replicate) == []


def test_flux_pro_single_uri_output(client, fake_replicate, images_dir):
    response = generate(client, model=FLUX_PRO, width=768, height=1344,
                        options={"safety_tolerance": 5, "output_format": "jpg"})
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    [create] = creates(fake_replicate)
    assert create.json["input"]["aspect_ratio"] == "9:16"
    assert create.json["input"]["safety_tolerance"] == 5
    assert isinstance(fake_replicate.predictions[record_prediction(fake_replicate)]["output"],
                      str)
    assert (record["format"], record["width"], record["height"]) == ("jpg", 768, 1344)
    assert record["ignored"] == ["steps", "cfg_scale"]


def record_prediction(fake) -> str:
    [pid] = list(fake.predictions)
    return pid


def test_sd35_large_maps_steps_and_cfg(client, fake_replicate):
    response = generate(client, model=SD35_LARGE, steps=25, cfg_scale=5, negative_prompt="x")
    assert response.status_code == 201, response.get_json()
    sent = creates(fake_replicate)[0].json["input"]
    assert (sent["steps"], sent["cfg"], sent["aspect_ratio"]) == (25, 5.0, "1:1")
    assert "negative_prompt" not in sent
    assert response.get_json()["ignored"] == ["negative_prompt"]


def test_sdxl_scheduler_and_refine_options(client, fake_replicate):
    response = generate(client, model=SDXL, width=512, height=512,
                        options={"scheduler": "DDIM", "refine": "expert_ensemble_refiner"})
    assert response.status_code == 201, response.get_json()
    sent = creates(fake_replicate)[0].json["input"]
    assert (sent["scheduler"], sent["refine"]) == ("DDIM", "expert_ensemble_refiner")


@pytest.mark.parametrize(("model", "options", "name"), [
    (SDXL, {"scheduler": "EULER"}, "scheduler"),
    (SDXL, {"go_fast": True}, "go_fast"),
    (FLUX_SCHNELL, {"go_fast": "yes"}, "go_fast"),
    (FLUX_SCHNELL, {"megapixels": 1}, "megapixels"),
    (FLUX_PRO, {"safety_tolerance": 7}, "safety_tolerance"),
])
def test_bad_options_are_422_and_nothing_is_sent(client, fake_replicate, model, options, name):
    response = generate(client, model=model, options=options)
    assert response.status_code == 422
    assert [p["loc"] for p in response.get_json()["detail"]] == [["body", "options", name]]
    assert creates(fake_replicate) == []


def test_schema_refs_are_resolved():
    schema = _openapi_schema({"prompt": {"type": "string"},
                              "style": {"type": "string", "enum": ["a", "b"], "default": "a"}})
    assert "allOf" in schema["components"]["schemas"]["Input"]["properties"]["style"]
    style = input_properties(schema)["style"]
    assert (style["enum"], style["type"], style["default"]) == (["a", "b"], "string", "a")
    assert resolve_refs({"$ref": "#/components/schemas/x"}, {"x": {"type": "integer"}}) == {
        "type": "integer"}


def test_extra_models_are_listed_from_their_schemas(client, fake_replicate):
    models = listed_models(client)
    pixel, recraft, seedream = (models[f"{PIXEL}:{PIXEL_VERSION}"], models[RECRAFT],
                                models[SEEDREAM])
    assert pixel["honours"] == ["negative_prompt", "width", "height", "steps", "cfg_scale",
                                "seed"]
    assert pixel["limits"] == {"steps": {"minimum": 10, "maximum": 40},
                               "cfg_scale": {"minimum": 1, "maximum": 8}}
    options = {o["name"]: o for o in pixel["options"]}
    assert set(options) == {"palette", "pixel_size", "dither"}
    assert options["palette"]["values"] == ["nes", "gameboy", "pico8"]  # behind allOf/$ref
    assert (options["pixel_size"]["minimum"], options["pixel_size"]["maximum"]) == (1, 16)
    assert recraft["ignores"][-1] == "seed" and "seed" not in recraft["honours"]
    assert {o["name"] for o in recraft["options"]} == {"size", "style"}
    assert "seed" in seedream["ignores"]
    assert all(model["available"] for model in models.values())


def test_schemas_are_read_once_not_per_request(client, fake_replicate):
    for _ in range(3):
        client.get("/api/providers")
        client.get("/")
    reads = [r.path for r in fake_replicate.requests if r.method == "GET"]
    assert sorted(reads) == sorted([f"/v1/models/{PIXEL}", f"/v1/models/{PIXEL}/versions/"
                                    f"{PIXEL_VERSION}", f"/v1/models/{RECRAFT}",
                                    f"/v1/models/{SEEDREAM}"])


def test_community_model_by_version_with_an_object_output(client, fake_replicate, images_dir):
    response = generate(client, model=f"{PIXEL}:{PIXEL_VERSION}", width=640, height=512,
                        steps=12, cfg_scale=3, seed=77, negative_prompt="blur",
                        options={"palette": "gameboy", "dither": True})
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    [create] = creates(fake_replicate)
    assert create.path == "/v1/predictions" and create.json["version"] == PIXEL_VERSION
    assert create.json["input"] == {
        "prompt": "a lighthouse at dusk", "width": 640, "height": 512,
        "num_inference_steps": 12, "guidance_scale": 3.0, "negative_prompt": "blur",
        "seed": 77, "palette": "gameboy", "dither": True}
    assert (record["seed"], record["width"], record["height"]) == (77, 640, 512)
    with PILImage.open(images_dir / record["filename"]) as image:
        assert image.text["parameters"].endswith("palette: gameboy, dither: true")


def test_the_schemas_ranges_are_the_models_limits(client, fake_replicate):
    assert generate(client, model=f"{PIXEL}:{PIXEL_VERSION}").status_code == 201
    response = generate(client, model=f"{PIXEL}:{PIXEL_VERSION}", steps=45)
    assert response.status_code == 422
    assert "10 and 40" in response.get_json()["detail"][0]["msg"]


@pytest.mark.parametrize("model", [RECRAFT, SEEDREAM])
def test_models_without_a_seed_record_null(client, fake_replicate, model):
    response = generate(client, model=model, seed=1234)
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    assert record["seed"] is None and "seed" in record["ignored"]
    sent = creates(fake_replicate)[0].json["input"]
    assert "seed" not in sent
    batch = generate(client, model=model, count=2).get_json()
    assert [image["seed"] for image in batch["images"]] == [None, None]


def test_unreadable_model_is_unavailable_and_the_rest_works(make_app, fake_replicate):
    app = make_app(REPLICATE_API_TOKEN=fake_replicate.api_token,
                   REPLICATE_BASE_URL=fake_replicate.url,
                   REPLICATE_MODELS=f"nobody/missing,{RECRAFT}")
    client = app.test_client()
    models = listed_models(client)
    missing = models["nobody/missing"]
    assert missing["available"] is False and "404" in missing["unavailable"]
    assert models[RECRAFT]["available"] is True
    refused = generate(client, model="nobody/missing")
    assert refused.status_code == 502 and "unavailable" in refused.get_json()["detail"]
    assert generate(client, model=RECRAFT).status_code == 201
    assert generate(client).status_code == 201  # the default model
    assert fake_replicate.api_token not in json.dumps(listed_models(client))
    reads = [r.path for r in fake_replicate.requests if r.path == "/v1/models/nobody/missing"]
    assert len(reads) == 1  # the failure is kept for a while, not asked again per request
