"""The compatible APIs in the OpenAPI document: their paths and schemas, in their own shapes."""

from __future__ import annotations

from typing import Any

from ..params import BY_NAME, MAX_SEED
from .a1111 import NO_EFFECT
from .openai import OPTION_FIELDS

REF = "#/components/schemas/"
STRING, INTEGER, NUMBER = {"type": "string"}, {"type": "integer"}, {"type": "number"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _openai_errors(*statuses: int) -> dict:
    why = {
        "400": "invalid_request_error: validation (`param` names the field); moderation as "
               "code `moderation_blocked`.",
        "401": "invalid_api_key: missing or wrong API token.",
        "404": "model_not_found: the model does not exist or cannot run now.",
        "409": "request_in_progress: the Idempotency-Key's first request is still running.",
        "422": "idempotency_key_reused: the Idempotency-Key was used with another body.",
        "429": "rate_limit_exceeded (+ Retry-After), or insufficient_quota (provider credits, "
               "budgets).",
        "502": "server_error: the provider failed or answered garbage.",
        "504": "server_error: the generation took longer than GENERATION_TIMEOUT.",
    }
    return {str(s): _json({"$ref": REF + "OpenAIError"}, why[str(s)]) for s in statuses}


def _a1111_errors(*statuses: int) -> dict:
    responses = {}
    for status in statuses:
        schema = "ValidationError" if status == 422 else "Error"
        responses[str(status)] = _json({"$ref": REF + schema},
                                       "As the JSON API answers it (see /api/generate).")
    return responses


def schemas() -> dict:
    common = {name: BY_NAME[name].json_schema() for name in
              ("prompt", "negative_prompt", "steps", "cfg_scale", "width", "height")}
    return {
        "OpenAIImageRequest": {
            "type": "object",
            "properties": {
                "prompt": BY_NAME["prompt"].json_schema(),
                "model": {"type": "string", "description":
                          "An id from GET /v1/models: `offline`, `stability/<model>`, "
                          "`replicate/<model>`, `openai/<model>`, a bare provider name (its "
                          "default model) or a bare OpenAI model name."},
                "n": {"type": "integer", "minimum": 1, "maximum": 8, "default": 1},
                "size": {"type": "string", "pattern": r"^(auto|\d+x\d+)$", "default": "auto"},
                "response_format": {"type": "string", "enum": ["b64_json", "url"],
                                    "default": "b64_json"},
                **{name: {"description": "Sent to models that take it; otherwise named in the "
                                         "record's `ignored`."} for name in OPTION_FIELDS},
                "user": {"type": "string", "description": "Accepted and ignored."},
            },
            "required": ["prompt"],
            "additionalProperties": True,
        },
        "OpenAIImagesResponse": {
            "type": "object",
            "properties": {
                "created": INTEGER,
                "data": {"type": "array", "items": {"type": "object", "properties": {
                    "b64_json": STRING, "url": {"type": "string", "format": "uri"}}}},
                "size": STRING,
                "output_format": {"type": "string", "enum": ["png", "jpeg", "webp"]},
            },
            "required": ["created", "data", "size", "output_format"],
        },
        "OpenAIModelList": {
            "type": "object",
            "properties": {
                "object": {"type": "string", "enum": ["list"]},
                "data": {"type": "array", "items": {"type": "object", "properties": {
                    "id": STRING, "object": {"type": "string", "enum": ["model"]},
                    "created": INTEGER, "owned_by": STRING}}},
            },
        },
        "OpenAIError": {
            "type": "object",
            "properties": {"error": {"type": "object", "properties": {
                "message": STRING, "type": STRING,
                "param": {"oneOf": [STRING, {"type": "null"}]},
                "code": {"oneOf": [STRING, {"type": "null"}]}},
                "required": ["message", "type", "param", "code"]}},
            "required": ["error"],
        },
        "A1111Txt2ImgRequest": {
            "type": "object",
            "properties": {
                **common,
                "width": {**common["width"], "default": 512},
                "height": {**common["height"], "default": 512},
                "seed": {"type": "integer", "minimum": -1, "maximum": MAX_SEED, "default": -1,
                         "description": "-1 draws a random seed."},
                "batch_size": {"type": "integer", "minimum": 1, "default": 1},
                "n_iter": {"type": "integer", "minimum": 1, "default": 1,
                           "description": "batch_size × n_iter images, at most 8."},
                "override_settings": {"type": "object", "properties": {
                    "sd_model_checkpoint": {"type": "string", "description":
                                            "A title from /sdapi/v1/sd-models."}}},
                **{name: {"description": "Accepted; named in the record's `ignored` when set."}
                   for name in NO_EFFECT},
                **{name: {"description": "An A1111 sampler name (/sdapi/v1/samplers): used as the "
                                         "model's own sampler option where it has a matching "
                                         "value, otherwise named in the record's `ignored`."}
                   for name in ("sampler_name", "sampler_index")},
                "scheduler": {"description": "An A1111 schedule (/sdapi/v1/schedulers), used with "
                                             "the sampler where the model has that combination "
                                             "(DPM++ 2M + karras), otherwise named in `ignored`."},
            },
            "additionalProperties": True,
        },
        "A1111Txt2ImgResponse": {
            "type": "object",
            "properties": {
                "images": {"type": "array", "items": {"type": "string",
                                                      "description": "Base64 PNG."}},
                "parameters": {"type": "object", "description": "The request."},
                "info": {"type": "string", "description":
                         "JSON text: prompt, all_prompts, negative_prompt, seed, all_seeds, "
                         "width, height, steps, cfg_scale, sd_model_name, infotexts, ..."},
            },
            "required": ["images", "parameters", "info"],
        },
        "A1111Model": {"type": "object", "properties": {
            "title": STRING, "model_name": STRING, "hash": STRING, "sha256": STRING,
            "filename": STRING, "config": {"type": "null"}}},
        "A1111PngInfoResponse": {"type": "object", "properties": {
            "info": STRING, "items": {"type": "object"}, "parameters": {"type": "object"}}},
    }


def paths() -> dict:
    any_object: dict[str, Any] = {"type": "object"}
    body = {"required": True, "content": {"application/json": {"schema": any_object}}}

    def a1111_get(operation: str, summary: str, schema: dict) -> dict:
        return {"get": {"operationId": operation, "summary": summary, "tags": ["automatic1111"],
                        "responses": {"200": _json(schema, "OK."), **_a1111_errors(401)}}}

    return {
        "/v1/models": {"get": {
            "operationId": "openaiListModels",
            "summary": "Models that can run now (OpenAI's model list)",
            "tags": ["openai"],
            "responses": {"200": _json({"$ref": REF + "OpenAIModelList"}, "The models."),
                          **_openai_errors(401)},
        }},
        "/v1/images/generations": {"post": {
            "operationId": "openaiGenerateImages",
            "summary": "Generate images (OpenAI's Images API)",
            "tags": ["openai"],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": REF + "OpenAIImageRequest"},
                "example": {"model": "offline", "prompt": "a lighthouse", "size": "1024x1024"}}}},
            "responses": {"200": _json({"$ref": REF + "OpenAIImagesResponse"}, "The images."),
                          **_openai_errors(400, 401, 404, 409, 422, 429, 502, 504)},
        }},
        "/sdapi/v1/txt2img": {"post": {
            "operationId": "a1111Txt2Img",
            "summary": "Generate images (AUTOMATIC1111's txt2img)",
            "tags": ["automatic1111"],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": REF + "A1111Txt2ImgRequest"},
                "example": {"prompt": "a red fox", "seed": -1, "width": 512, "height": 512}}}},
            "responses": {"200": _json({"$ref": REF + "A1111Txt2ImgResponse"}, "The images."),
                          **_a1111_errors(400, 401, 402, 409, 415, 422, 429, 502, 504)},
        }},
        "/sdapi/v1/sd-models": a1111_get("a1111Models", "Models, as A1111 checkpoints",
                                         {"type": "array", "items": {"$ref": REF + "A1111Model"}}),
        "/sdapi/v1/options": {
            **a1111_get("a1111GetOptions", "Settings (sd_model_checkpoint: the default model)",
                        any_object),
            "post": {"operationId": "a1111SetOptions",
                     "summary": "Choose the default model; other settings are ignored",
                     "tags": ["automatic1111"], "requestBody": body,
                     "responses": {"200": _json({"type": "null"}, "Saved."),
                                   **_a1111_errors(401, 415, 422)}},
        },
        "/sdapi/v1/samplers": a1111_get("a1111Samplers", "Sampler names",
                                        {"type": "array", "items": any_object}),
        "/sdapi/v1/schedulers": a1111_get("a1111Schedulers", "Scheduler names",
                                          {"type": "array", "items": any_object}),
        "/sdapi/v1/scripts": a1111_get("a1111Scripts", "Scripts (none)", any_object),
        "/sdapi/v1/progress": a1111_get("a1111Progress", "Progress (always idle)", any_object),
        "/sdapi/v1/png-info": {"post": {
            "operationId": "a1111PngInfo",
            "summary": "Parameters embedded in an image",
            "tags": ["automatic1111"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"image": {"type": "string",
                                                           "description": "Base64 image."}},
                "required": ["image"]}}}},
            "responses": {"200": _json({"$ref": REF + "A1111PngInfoResponse"}, "What it holds."),
                          **_a1111_errors(401, 415, 422)},
        }},
    }
