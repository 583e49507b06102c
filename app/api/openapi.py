"""The OpenAPI 3.1 document, generated from the parameter rules and the error code table.

The request schema comes from app.params.PARAMS, the error codes from app.api.errors.CODES and
the provider errors, so the document cannot drift from what the API enforces. It keeps to the
subset of JSON Schema that OpenAPI 3.0 shares, so the bundled Swagger UI can render it too.
"""

from __future__ import annotations

from typing import Any

from ..params import MAX_SEED, PARAMS, PROVIDER_NAMES
from ..providers.base import TUNABLE, ProviderError
from ..storage import StorageError
from .errors import CODES

TITLE = "Imagegen API"
VERSION = "1.0.0"
REF = "#/components/schemas/"

# Why each status happens, in the words of the contract; the codes themselves come from the code.
SITUATIONS = {
    "database_unavailable": "The database does not answer (it went away, or is restarting); "
                            "nothing was stored; try again after Retry-After seconds.",
    "provider_not_configured": "The provider's key is not configured on the server.",
    "unauthorized": "Missing or wrong API token (only when the server sets API_TOKENS).",
    "credits_exhausted": "The provider says the account is out of credits.",
    "not_found": "Unknown image id or route.",
    "payload_too_large": "The request body is too large.",
    "unsupported_media_type": "The request body is not JSON.",
    "validation_error": "An unknown field, a wrong type or a value out of range.",
    "content_moderation": "The provider refused the prompt (moderation).",
    "rate_limited": "Our rate limit or the provider's; wait for Retry-After seconds.",
    "upstream_error": "The provider failed, answered garbage, or rejected our key.",
    "upstream_timeout": "The generation took longer than GENERATION_TIMEOUT.",
    "budget_exceeded": "The estimate would take today's spending past DAILY_BUDGET or the "
                       "token's budget (TOKEN_BUDGETS); refused before any provider call.",
    "request_in_progress": "The first request with this Idempotency-Key is still running.",
    "idempotency_key_reused": "This Idempotency-Key was used with another request body.",
    "storage_error": "The image store (folder or S3 bucket) cannot be reached or refused the "
                     "write; nothing was kept. Try again later.",
}
EXAMPLE_DETAILS = {
    "database_unavailable": "The database is unavailable; try again shortly.",
    "provider_not_configured": "Provider 'stability' is not configured: set STABILITY_API_KEY.",
    "unauthorized": "Missing or invalid API token.",
    "credits_exhausted": "The provider account is out of credits.",
    "not_found": "Image 42 not found.",
    "payload_too_large": "Request body too large.",
    "unsupported_media_type": "Request body must be JSON (Content-Type: application/json).",
    "content_moderation": "The provider refused the prompt.",
    "rate_limited": "Too many requests: 30 per 1 minute.",
    "upstream_error": "The provider answered with an unusable image.",
    "upstream_timeout": "The provider did not answer within 120 seconds.",
    "budget_exceeded": "This request is estimated at $0.065, more than the $0.02 left of "
                       "today's budget (DAILY_BUDGET) of $5.00; it resets at midnight UTC.",
    "request_in_progress": "A request with this Idempotency-Key is still running.",
    "idempotency_key_reused": "This Idempotency-Key was used with another request body.",
    "storage_error": "Image storage refused the write (AccessDenied).",
}
GENERATE_STATUSES = (400, 401, 402, 404, 409, 413, 415, 422, 429, 502, 503, 504)
IDEMPOTENCY_CODES = {409: ["request_in_progress"], 422: ["idempotency_key_reused"]}


def provider_codes() -> dict[int, list[str]]:
    """Each status the generation can fail with, and the codes it carries."""
    codes: dict[int, list[str]] = {}
    for cls in _subclasses(ProviderError):
        if cls.code not in codes.setdefault(cls.status, []):
            codes[cls.status].append(cls.code)
    return codes


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def codes_for(status: int, *, generation: bool = False) -> list[str]:
    """The `error` codes one status may carry: the provider's on generation, else the table's."""
    codes = []
    if status == 422:
        codes.append(CODES[422])
    if generation:
        codes += [c for c in provider_codes().get(status, []) + IDEMPOTENCY_CODES.get(status, [])
                  if c not in codes]
        if status == StorageError.status:
            codes.append(StorageError.code)
    if not codes:
        codes.append(CODES[status])
    return codes


def error_response(status: int, *, generation: bool = False) -> dict:
    codes = codes_for(status, generation=generation)
    content: dict[str, Any] = {"schema": {"$ref": REF + "Error"}}
    examples = {
        code: {"summary": SITUATIONS.get(code, code),
               "value": {"detail": EXAMPLE_DETAILS.get(code, "..."), "error": code}}
        for code in codes
        if code != "validation_error"
    }
    if "validation_error" in codes:
        content["schema"] = (
            {"oneOf": [{"$ref": REF + "ValidationError"}, {"$ref": REF + "Error"}]}
            if len(codes) > 1 else {"$ref": REF + "ValidationError"}
        )
        examples = {"validation_error": {
            "summary": SITUATIONS["validation_error"],
            "value": {"detail": [{"loc": ["body", "steps"],
                                  "msg": "Input should be less than or equal to 50",
                                  "type": "less_than_equal"}],
                      "error": "validation_error"},
        }, **examples}
    content["examples"] = examples
    description = " ".join(f"`{code}`: {SITUATIONS.get(code, code)}" for code in codes)
    response: dict[str, Any] = {"description": description,
                                "content": {"application/json": content}}
    if status in (429, 503):
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer"}}}
    return response


def _errors(*statuses: int, generation: bool = False) -> dict:
    return {str(s): error_response(s, generation=generation) for s in statuses}


def request_schema() -> dict:
    return {
        "type": "object",
        "properties": {param.name: param.json_schema() for param in PARAMS},
        "required": [param.name for param in PARAMS if param.required],
        "additionalProperties": False,
    }


def image_schema() -> dict:
    tunable = {p.name: p.json_schema() for p in PARAMS if p.name not in ("prompt",
                                                                         "negative_prompt")}
    string, integer = {"type": "string"}, {"type": "integer"}
    return {
        "type": "object",
        "properties": {
            "id": integer,
            "filename": {"type": "string", "description": "<YYYYMMDD_HHMMSS>_<id>.<ext>"},
            "url": {"type": "string",
                    "description": "/static/images/<filename> on local storage; an absolute "
                                   "URL (IMAGES_BASE_URL + filename, or presigned) on S3"},
            "thumbnail_url": {"type": "string",
                              "description": "/static/images/thumbs/<id>.webp, or absolute as url"},
            "prompt": string,
            "negative_prompt": string,
            "provider": {"type": "string", "enum": list(PROVIDER_NAMES)},
            "model": string,
            "seed": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_SEED,
                     "description": "The seed actually used (never 0); null for a model that "
                                    "takes no seed."},
            "width": {"type": "integer", "description": "Of the stored image."},
            "height": {"type": "integer", "description": "Of the stored image."},
            "steps": integer,
            "cfg_scale": {"type": "number"},
            "requested": {"type": "object", "description": "The parameters as asked.",
                          "properties": tunable},
            "ignored": {"type": "array",
                        "items": {"type": "string", "enum": [*TUNABLE, "seed"]},
                        "description": "Parameters the provider could not honour."},
            "content_filtered": {"type": "boolean"},
            "format": {"type": "string", "enum": ["png", "jpg", "webp"]},
            "file_size": {"type": "integer", "description": "Bytes."},
            "duration_ms": integer,
            "created_at": {"type": "string", "format": "date-time"},
            "cost": {"type": ["number", "null"],
                     "description": "US dollars, from the price table (0 offline; null for "
                                    "imported images)."},
            "cost_detail": {"type": ["string", "null"],
                            "description": "How the cost was reckoned, e.g. `6.5 credits`."},
            "created_by": {"type": ["string", "null"],
                           "description": "The API token's name; `api` when API_TOKENS is "
                                          "unset; `web` or `cli`."},
            "options": {"type": "object", "description": "The model options that were sent."},
            "batch_id": {"type": ["string", "null"],
                         "description": "The batch the image belongs to; null for one image."},
            "batch_index": {"type": ["integer", "null"], "minimum": 0,
                            "description": "Its place in the batch (image i used seed + i)."},
        },
        "required": ["id", "filename", "url", "thumbnail_url", "prompt", "negative_prompt",
                     "provider", "model", "seed", "width", "height", "steps", "cfg_scale",
                     "requested", "ignored", "content_filtered", "format", "file_size",
                     "duration_ms", "created_at", "options", "batch_id", "batch_index", "cost",
                     "cost_detail", "created_by"],
    }


def batch_schema() -> dict:
    return {
        "type": "object",
        "description": "A batch (count > 1): the images made, in index order, and each failure.",
        "properties": {
            "batch_id": {"type": "string"},
            "images": {"type": "array", "items": {"$ref": REF + "Image"}},
            "errors": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "status": {"type": "integer"},
                    "error": {"type": "string"},
                    "detail": {"type": "string"},
                },
                "required": ["index", "status", "error", "detail"],
            }},
        },
        "required": ["batch_id", "images", "errors"],
    }


IMAGE_EXAMPLE = {
    "id": 1, "filename": "20250101_120000_1.png", "url": "/static/images/20250101_120000_1.png",
    "thumbnail_url": "/static/images/thumbs/1.webp",
    "prompt": "A serene mountain landscape at sunset, digital art",
    "negative_prompt": "blurry, low quality", "provider": "offline", "model": "abstract",
    "seed": 1234567, "width": 1024, "height": 1024, "steps": 30, "cfg_scale": 7.0,
    "requested": {"provider": "offline", "model": "abstract", "width": 1024, "height": 1024,
                  "steps": 30, "cfg_scale": 7.0, "seed": 0},
    "ignored": [], "content_filtered": False, "format": "png", "file_size": 812345,
    "duration_ms": 85, "created_at": "2025-01-01T12:00:00+00:00", "options": {},
    "batch_id": None, "batch_index": None,
    "cost": 0.0, "cost_detail": "free (rendered offline)", "created_by": "api",
}
MONEY = {"type": "number", "description": "US dollars."}
MAYBE_MONEY = {"type": ["number", "null"], "description": "US dollars; null when no budget."}
USAGE_EXAMPLE = {
    "total": {"images": 12, "cost": 0.432},
    "groups": [{"key": "stability/sd3.5-large", "images": 6, "cost": 0.39},
               {"key": "replicate/black-forest-labs/flux-schnell", "images": 6, "cost": 0.018}],
    "budget": {"daily": 5.0, "spent_today": 0.432, "left_today": 4.568},
}


def schemas() -> dict:
    all_codes = sorted({*CODES.values(), *(c for cs in provider_codes().values() for c in cs),
                        *(c for cs in IDEMPOTENCY_CODES.values() for c in cs),
                        StorageError.code})
    return {
        "GenerateRequest": request_schema(),
        "Image": image_schema(),
        "Batch": batch_schema(),
        "Error": {
            "type": "object",
            "properties": {
                "detail": {"description": "A message, or a list of problems.",
                           "oneOf": [{"type": "string"}, {"type": "array", "items": {}}]},
                "error": {"type": "string", "enum": all_codes},
            },
            "required": ["detail", "error"],
        },
        "ValidationError": {
            "type": "object",
            "description": "FastAPI's shape: one entry per problem.",
            "properties": {
                "detail": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "loc": {"type": "array", "items": {"oneOf": [{"type": "string"},
                                                                     {"type": "integer"}]}},
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                    "required": ["loc", "msg", "type"],
                }},
                "error": {"type": "string", "enum": [CODES[422]]},
            },
            "required": ["detail", "error"],
        },
        "Model": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "label": {"type": "string"},
                "honours": {"type": "array", "items": {"type": "string"}},
                "ignores": {"type": "array", "items": {"type": "string"}},
                "limits": {"type": "object", "description": "Narrower ranges, per parameter.",
                           "additionalProperties": {"type": "object", "properties": {
                               "minimum": {"type": "number"}, "maximum": {"type": "number"}}}},
                "sizes": {"type": "array", "description": "The exact sizes the model makes.",
                          "items": {"type": "array", "items": {"type": "integer"}}},
                "notes": {"type": "string"},
                "price": {"type": "object", "properties": {
                    "per_image": {"type": ["number", "null"],
                                  "description": "US dollars an image (for tokens, a typical "
                                                 "1024x1024 image at the default quality)."},
                    "basis": {"type": "string",
                              "enum": ["credits", "per_image", "tokens", "time", "free"]},
                    "note": {"type": "string"},
                }},
                "options": {"type": "array", "description": "The model's own options.",
                            "items": {"$ref": REF + "ModelOption"}},
                "available": {"type": "boolean",
                              "description": "False when the model cannot be used now."},
                "unavailable": {"type": "string", "description": "Why, when it cannot."},
            },
        },
        "ModelOption": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "type": {"type": "string", "enum": ["string", "integer", "number", "boolean"]},
                "default": {"description": "The model's default (null: none)."},
                "description": {"type": "string"},
                "values": {"type": "array", "description": "The allowed values, if fixed."},
                "minimum": {"type": "number"},
                "maximum": {"type": "number"},
            },
            "required": ["name", "type", "default", "description"],
        },
        "Provider": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": list(PROVIDER_NAMES)},
                "label": {"type": "string"},
                "configured": {"type": "boolean"},
                "default": {"type": "boolean",
                            "description": "Used when a request names no provider."},
                "default_model": {"type": "string"},
                "models": {"type": "array", "items": {"$ref": REF + "Model"}},
                "balance": {"type": "number",
                            "description": "Stability only: the account's credits, when they "
                                           "can be read (cached for a minute)."},
            },
        },
        "Usage": {
            "type": "object",
            "properties": {
                "total": {"type": "object", "properties": {"images": {"type": "integer"},
                                                           "cost": MONEY}},
                "groups": {"type": "array", "items": {"type": "object", "properties": {
                    "key": {"type": "string",
                            "description": "The day (YYYY-MM-DD), provider, provider/model or "
                                           "token name."},
                    "images": {"type": "integer"}, "cost": MONEY}}},
                "budget": {"type": "object", "properties": {
                    "daily": MAYBE_MONEY, "spent_today": MONEY, "left_today": MAYBE_MONEY,
                    "tokens": {"type": "array", "description": "Each TOKEN_BUDGETS entry.",
                               "items": {"type": "object"}}}},
            },
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "stability_key": {"type": "boolean"},
                "replicate_key": {"type": "boolean"},
                "openai_key": {"type": "boolean"},
                "database": {"type": "string", "enum": ["ok", "error"]},
                "storage": {"type": "string", "enum": ["ok", "error"],
                            "description": "Whether the images folder or S3 bucket answers."},
                "rate_limit_store": {
                    "type": "string", "enum": ["ok", "error"],
                    "description": "Only when RATE_LIMIT_STORAGE_URI is set: whether the shared "
                                   "counter store answers (when not, each process counts on "
                                   "its own)."},
            },
        },
    }


def _json(schema: dict, description: str, example: Any = None) -> dict:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"description": description, "content": {"application/json": content}}


IMAGE_ID = {"name": "image_id", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}


def paths() -> dict:
    generate_example = {
        "prompt": "A serene mountain landscape at sunset, digital art",
        "negative_prompt": "blurry, low quality", "provider": "offline",
        "width": 1024, "height": 1024, "steps": 30, "cfg_scale": 7.0, "seed": 0,
    }
    image = {"$ref": REF + "Image"}
    return {
        "/api/generate": {"post": {
            "operationId": "generate",
            "summary": "Generate one image, or a batch",
            "description": "Runs the generation synchronously and returns the stored record. "
                           "With `count` > 1 the images are made at once within one "
                           "GENERATION_TIMEOUT (image i with seed + i) and the answer is a "
                           "Batch: what was made, and an entry in `errors` for each image "
                           "that failed. When every image fails, the first failure's error "
                           "is the answer. With an Idempotency-Key the request is done once "
                           "per key and caller for 24 hours: a repeat with the same body gets "
                           "the first answer again (header `Idempotent-Replayed: true`) "
                           "without a provider call. Answers of requests that reached the "
                           "provider, errors included, are kept; refusals before it "
                           "(validation, budget, unconfigured provider, storage) free the key.",
            "tags": ["images"],
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "description": "1-255 visible ASCII characters, unique per request.",
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                       "pattern": "^[\\x21-\\x7e]+$"}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": REF + "GenerateRequest"},
                "examples": {
                    "offline": {"summary": "The offline renderer (no key needed)",
                                "value": generate_example},
                    "minimal": {"summary": "Only a prompt: every other field has a default",
                                "value": {"prompt": "a lighthouse in a storm"}},
                    "batch": {"summary": "Four at once, with a model option",
                              "value": {"prompt": "a lighthouse in a storm", "count": 4,
                                        "provider": "offline", "width": 512, "height": 512}},
                },
            }}},
            "responses": {
                "201": {**_json({"oneOf": [image, {"$ref": REF + "Batch"}]},
                                "Created: the image record, or the batch (count > 1).",
                                IMAGE_EXAMPLE),
                        "headers": {"Location": {
                            "description": "/api/images/<id>, or /api/images?batch=<batch_id>",
                            "schema": {"type": "string"}},
                            "Idempotent-Replayed": {
                                "description": "`true` on a replayed answer.",
                                "schema": {"type": "string"}}}},
                **_errors(*GENERATE_STATUSES, generation=True),
            },
        }},
        "/api/images": {"get": {
            "operationId": "listImages",
            "summary": "List images, newest first",
            "tags": ["images"],
            "parameters": [
                {"name": "limit", "in": "query", "description": "Records per page.",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                {"name": "before", "in": "query",
                 "description": "Cursor from the previous page's Link header.",
                 "schema": {"type": "string"}},
                {"name": "q", "in": "query",
                 "description": "Words that must all appear in the prompt or negative prompt.",
                 "schema": {"type": "string"}},
                {"name": "provider", "in": "query", "description": "Only this provider's images.",
                 "schema": {"type": "string", "enum": list(PROVIDER_NAMES)}},
                {"name": "batch", "in": "query", "description": "Only this batch's images.",
                 "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {**_json({"type": "array", "items": image}, "One page of records.",
                                [IMAGE_EXAMPLE]),
                        "headers": {
                            "Link": {"description": 'The next page: `<url>; rel="next"`.',
                                     "schema": {"type": "string"}},
                            "X-Total-Count": {"description": "Records matching the filter.",
                                              "schema": {"type": "integer"}},
                        }},
                **_errors(401, 422, 503),
            },
        }},
        "/api/images/{image_id}": {
            "parameters": [IMAGE_ID],
            "get": {
                "operationId": "getImage",
                "summary": "One image record",
                "tags": ["images"],
                "responses": {"200": _json(image, "The record.", IMAGE_EXAMPLE),
                              **_errors(401, 404, 503)},
            },
            "delete": {
                "operationId": "deleteImage",
                "summary": "Delete an image: record, file and thumbnail",
                "tags": ["images"],
                "responses": {"204": {"description": "Deleted."}, **_errors(401, 404, 503)},
            },
        },
        "/api/providers": {"get": {
            "operationId": "listProviders",
            "summary": "Providers, their models and what each model honours",
            "tags": ["providers"],
            "responses": {"200": _json({"type": "array", "items": {"$ref": REF + "Provider"}},
                                       "Every provider, configured or not."),
                          **_errors(401)},
        }},
        "/api/usage": {"get": {
            "operationId": "usage",
            "summary": "Spending: totals, groups and today's budget",
            "description": "Settled charges of the whole deployment (deleting an image does "
                           "not give its money back).",
            "tags": ["spending"],
            "parameters": [
                {"name": "since", "in": "query", "description": "ISO date or time (UTC).",
                 "schema": {"type": "string"}},
                {"name": "until", "in": "query",
                 "description": "ISO date (inclusive) or time (UTC).",
                 "schema": {"type": "string"}},
                {"name": "by", "in": "query", "schema": {
                    "type": "string", "enum": ["day", "provider", "model", "token"],
                    "default": "day"}},
            ],
            "responses": {"200": _json({"$ref": REF + "Usage"}, "Usage.", USAGE_EXAMPLE),
                          **_errors(401, 422)},
        }},
        "/health": {"get": {
            "operationId": "health",
            "summary": "Liveness, configured keys (never their values), the database and storage",
            "tags": ["service"],
            "security": [],
            "responses": {
                "200": _json({"$ref": REF + "Health"}, "Healthy.",
                             {"status": "ok", "stability_key": False, "replicate_key": False,
                              "openai_key": False, "database": "ok", "storage": "ok"}),
                "503": _json({"$ref": REF + "Health"},
                             "The database or the image storage does not answer."),
            },
        }},
        "/api/openapi.json": {"get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["service"],
            "responses": {"200": {"description": "The OpenAPI 3.1 document.",
                                  "content": {"application/json": {"schema": {
                                      "type": "object"}}}},
                          **_errors(401)},
        }},
    }


def document() -> dict:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": (
                "Generate images with Stability AI, Replicate, OpenAI or the built-in offline "
                "renderer "
                "(no AI model, no key), and manage the library. Errors are "
                '`{"detail": ..., "error": <code>}`. When the server sets `API_TOKENS`, every '
                "`/api/*` call needs `Authorization: Bearer <token>`."
            ),
        },
        "tags": [{"name": "images"}, {"name": "providers"}, {"name": "spending"},
                 {"name": "service"}],
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "One of the server's API_TOKENS; not needed when none are set.",
            }},
        },
        "security": [{"bearerAuth": []}, {}],
    }
