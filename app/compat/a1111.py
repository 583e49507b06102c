"""AUTOMATIC1111's web UI API (/sdapi/v1): txt2img, models, options, samplers, progress, png-info.

What `webuiapi`, Open WebUI's "Automatic1111" engine and SillyTavern send becomes GenerationParams
for the same service. Fields with no counterpart here are accepted; those that would have changed
the picture are named in the record's `ignored`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import replace

from flask import Blueprint, jsonify, request

from .. import library
from ..api.routes import json_body
from ..generation import service
from ..params import GenerationParams, ValidationFailed, error, validate
from ..ratelimit import generation_limit
from ..settings import get_setting, set_setting
from ..storage import MAX_BYTES
from . import generate, models, once_per_key, samplers, stored_base64

bp = Blueprint("a1111_compat", __name__)

CHECKPOINT = "sd_model_checkpoint"
# A1111 fields passed on as the common parameters.
COMMON = ("prompt", "negative_prompt", "steps", "cfg_scale", "width", "height")
DEFAULT_SIZE = 512  # A1111's own default width and height
# Fields that change the picture in A1111, each with the value(s) that leave it unchanged.
NO_EFFECT = {
    "enable_hr": (False, None),
    "restore_faces": (False, None),
    "tiling": (False, None),
    "subseed_strength": (0, None),
    "seed_resize_from_h": (0, -1, None),
    "seed_resize_from_w": (0, -1, None),
    "styles": ([], None),
    "sampler_name": (None, ""),
    "scheduler": (None, "", "automatic", "Automatic"),
    "refiner_checkpoint": (None, ""),
    "script_name": (None, ""),
    "alwayson_scripts": ({}, None),
}
# Our parameter names → A1111's, for validation errors.
FIELD_OF = {"count": "batch_size", "model": f"override_settings.{CHECKPOINT}",
            "provider": f"override_settings.{CHECKPOINT}"}
BASE64_LIMIT = MAX_BYTES * 4 // 3 + 64 * 1024  # png-info's body: an image as large as the store takes
SAMPLER_FIELDS = ("sampler_name", "sampler_index")  # sampler_index: the older name of sampler_name


@bp.post("/txt2img")
@generation_limit
def txt2img():
    """Generate batch_size × n_iter images (A1111's txt2img)."""
    body = json_body()
    if not isinstance(body, Mapping):
        raise ValidationFailed([error(None, "Input should be a valid dictionary",
                                      "model_attributes_type")])
    with a1111_names():
        translated, ignored, count = _generation_body(body)
        params, choice = _with_sampler(body, validate(translated), ignored)
        return once_per_key(body, lambda: _answer(body, params, choice, generate(params)))


def _with_sampler(body: Mapping, params: GenerationParams, ignored: tuple[str, ...]
                  ) -> tuple[GenerationParams, samplers.Choice | None]:
    """The A1111 sampler (and schedule) as the chosen model's own option, where it declares one
    with a matching value; otherwise the sampler fields stay in `ignored`."""
    name = body.get("sampler_name") or body.get("sampler_index")
    model = service().find_model(params.provider, params.model)
    choice = samplers.choose(model.options, name, body.get("scheduler")) if model else None
    if choice is None:
        return replace(params, ignored=ignored), None
    honoured = {*SAMPLER_FIELDS, *(("scheduler",) if choice.scheduler_honoured else ())}
    options = {choice.option: choice.value, **params.options}  # an explicit option would win
    return replace(params, options=options,
                   ignored=tuple(name for name in ignored if name not in honoured)), choice


def _answer(body: Mapping, params, choice: samplers.Choice | None, records: list):
    """A1111's answer: the images, the request, and `info` with the real seeds and infotexts,
    naming the sampler only when it was used."""
    seeds = [record.seed for record in records]
    first = records[0]
    info = {
        "prompt": params.prompt,
        "all_prompts": [params.prompt] * len(records),
        "negative_prompt": params.negative_prompt,
        "all_negative_prompts": [params.negative_prompt] * len(records),
        "seed": seeds[0],
        "all_seeds": seeds,
        "subseed": -1,
        "all_subseeds": [-1] * len(records),
        "subseed_strength": 0,
        "width": first.width,
        "height": first.height,
        "sampler_name": choice.sampler if choice else None,
        "cfg_scale": first.cfg_scale,
        "steps": first.steps,
        "batch_size": body.get("batch_size", 1),
        "restore_faces": False,
        "sd_model_name": _model_id(first.provider, first.model),
        "sd_model_hash": models.short_hash(_model_id(first.provider, first.model)),
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": None,
        "extra_generation_params": ({"Schedule type": choice.schedule.label}
                                    if choice and choice.schedule else {}),
        "index_of_first_image": 0,
        "infotexts": [record.parameters_text for record in records],
        "styles": [],
        "job_timestamp": first.created_at.strftime("%Y%m%d%H%M%S"),
        "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "version": "imagegen",
    }
    return jsonify({"images": [stored_base64(record, png=True) for record in records],
                    "parameters": dict(body), "info": json.dumps(info)})


def _generation_body(body: Mapping) -> tuple[dict, tuple[str, ...], int]:
    """A1111's fields as the common parameters, the fields we could not honour, and the count."""
    translated = {name: body[name] for name in COMMON if body.get(name) is not None}
    translated.setdefault("prompt", "")
    translated.setdefault("width", DEFAULT_SIZE)
    translated.setdefault("height", DEFAULT_SIZE)
    seed = body.get("seed")
    if seed is not None and seed != -1:
        translated["seed"] = seed
    batch_size, n_iter = _positive_int(body, "batch_size"), _positive_int(body, "n_iter")
    count = batch_size * n_iter
    if count != 1:
        translated["count"] = count
    overrides = body.get("override_settings")
    overrides = {} if overrides is None else overrides
    if not isinstance(overrides, Mapping):
        raise ValidationFailed([error("override_settings", "Input should be a valid dictionary",
                                      "dict_type")])
    checkpoint = overrides.get(CHECKPOINT) or get_setting(CHECKPOINT)
    if checkpoint is not None:
        if not isinstance(checkpoint, str):
            raise ValidationFailed([error(f"override_settings.{CHECKPOINT}",
                                          "Input should be a valid string", "string_type")])
        named = models.parse(checkpoint)
        translated["provider"] = named.provider
        if named.model:
            translated["model"] = named.model
    ignored = [name for name, unchanged in NO_EFFECT.items()
               if name in body and body[name] not in unchanged]
    if "enable_hr" in ignored:
        ignored.append("denoising_strength")
    if "sampler_name" not in ignored and body.get("sampler_index") not in (None, ""):
        ignored.append("sampler_index")  # the older name of sampler_name
    ignored += [f"override_settings.{name}" for name in overrides if name != CHECKPOINT]
    return translated, tuple(ignored), count


def _positive_int(body: Mapping, name: str) -> int:
    value = body.get(name)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed([error(name, "Input should be a valid integer", "int_type")])
    if value < 1:
        raise ValidationFailed([error(name, "Input should be greater than or equal to 1",
                                      "greater_than_equal")])
    return value


@contextmanager
def a1111_names():
    """Validation errors name A1111's fields (batch_size, override_settings...), not ours."""
    try:
        yield
    except ValidationFailed as exc:
        renamed = []
        for problem in exc.errors:
            loc = list(problem.get("loc", []))
            if len(loc) > 1 and loc[1] in FIELD_OF:
                if loc[1] == "count":
                    problem = {**problem, "msg": f"batch_size × n_iter: {problem['msg']}"}
                loc[1:2] = FIELD_OF[loc[1]].split(".")
            renamed.append({**problem, "loc": loc})
        raise ValidationFailed(renamed) from None


def _model_id(provider: str, model: str) -> str:
    return provider if provider in models.BARE else f"{provider}/{model}"


def _current_checkpoint() -> str:
    return get_setting(CHECKPOINT) or models.default_id()


@bp.get("/sd-models")
def sd_models():
    """Every provider/model that can run now, as A1111's checkpoints."""
    return jsonify([
        {"title": entry.id, "model_name": entry.id, "hash": models.short_hash(entry.id),
         "sha256": models.sha256(entry.id), "filename": entry.id, "config": None}
        for entry in models.runnable()
    ])


@bp.get("/options")
def get_options():
    """The settings A1111 clients read: the model these routes use by default, chiefly."""
    checkpoint = _current_checkpoint()
    return jsonify({
        CHECKPOINT: checkpoint,
        "sd_checkpoint_hash": models.sha256(checkpoint),
        "samples_format": "png",
        "sd_vae": "Automatic",
        "CLIP_stop_at_last_layers": 1,
    })


@bp.post("/options")
def set_options():
    """Choose the default model (sd_model_checkpoint); other settings are accepted and ignored."""
    body = json_body()
    if not isinstance(body, Mapping):
        raise ValidationFailed([error(None, "Input should be a valid dictionary",
                                      "model_attributes_type")])
    checkpoint = body.get(CHECKPOINT)
    if checkpoint is not None:
        known = {entry.id for entry in models.runnable()}
        if not isinstance(checkpoint, str) or checkpoint not in known:
            raise ValidationFailed([error(CHECKPOINT, "Input should be one of the titles "
                                                      "/sdapi/v1/sd-models lists", "literal_error")])
        set_setting(CHECKPOINT, checkpoint)
    return jsonify(None)


@bp.get("/samplers")
def sampler_names():
    """A1111's samplers: each becomes the chosen model's sampler option where it has one."""
    return jsonify(samplers.sampler_list())


@bp.get("/schedulers")
def scheduler_names():
    """A1111's schedules: used with the sampler where the model has that combination."""
    return jsonify(samplers.scheduler_list())


@bp.get("/scripts")
def scripts():
    """No scripts or extensions (webuiapi asks at start-up)."""
    return jsonify({"txt2img": [], "img2img": []})


@bp.get("/progress")
def progress():
    """Always idle: a generation is answered when it is done."""
    return jsonify({
        "progress": 0.0, "eta_relative": 0.0, "current_image": None, "textinfo": None,
        "state": {"skipped": False, "interrupted": False, "stopping_generation": False,
                  "job": "", "job_count": 0, "job_timestamp": "0", "job_no": 0,
                  "sampling_step": 0, "sampling_steps": 0},
    })


@bp.post("/png-info")
def png_info():
    """The generation parameters embedded in an image (A1111's PNG Info), read by the same
    parser as POST /api/png-info, whichever tool wrote them."""
    request.max_content_length = BASE64_LIMIT
    body = json_body()
    image = body.get("image") if isinstance(body, Mapping) else None
    if not isinstance(image, str):
        raise ValidationFailed([error("image", "Field required" if image is None
                                      else "Input should be a valid string",
                                      "missing" if image is None else "string_type")])
    try:
        opened, found = library.inspect(_decode_base64(image))
    except library.Refused as exc:
        raise ValidationFailed([error("image", f"Not an image this app can read: {exc}",
                                      "value_error")]) from None
    items = {key: value for key, value in opened.info.items()
             if isinstance(value, str) and key != "parameters"}
    return jsonify({"info": opened.info.get("parameters") or found.text, "items": items,
                    "parameters": a1111_parameters(found.parameters)})


def _decode_base64(text: str) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed([error("image", "Input should be a base64-encoded image",
                                      "value_error")]) from None


# The common names of what an image carries → the names A1111's png-info answers with.
A1111_NAMES = {"prompt": "Prompt", "negative_prompt": "Negative prompt", "steps": "Steps",
               "cfg_scale": "CFG scale", "seed": "Seed", "model": "Model"}


def a1111_parameters(parameters: dict) -> dict:
    """Parameters read from an image, as A1111's png-info names them (Size as Size-1, Size-2)."""
    if not parameters:
        return {}
    named = {label: str(parameters[name]) if name not in ("prompt", "negative_prompt")
             else parameters[name] for name, label in A1111_NAMES.items() if name in parameters}
    named.setdefault("Negative prompt", "")
    if "width" in parameters and "height" in parameters:
        named["Size-1"], named["Size-2"] = str(parameters["width"]), str(parameters["height"])
    for key, value in (parameters.get("settings") or {}).items():
        if key != "Size":
            named[key] = value
    return named
