"""OpenAI's Images API: GET /v1/models and POST /v1/images/generations, errors in OpenAI's shape.

What the official `openai` client, Open WebUI's "OpenAI" engine and LibreChat send becomes
GenerationParams for the same service; the images go back as `b64_json` or as absolute URLs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import urljoin

from flask import Blueprint, Flask, jsonify, request

from ..api.routes import json_body
from ..params import ValidationFailed, error, validate
from ..ratelimit import generation_limit
from . import generate, models, once_per_key, stored_base64

bp = Blueprint("openai_compat", __name__)

# OpenAI fields that belong to a model's own options (taken where the model declares them).
OPTION_FIELDS = ("quality", "output_format", "background", "moderation", "output_compression",
                 "style")
RESPONSE_FORMATS = ("b64_json", "url")
SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")
FORMAT_NAMES = {"jpg": "jpeg"}  # our record's format → OpenAI's output_format
# Our parameter names → the OpenAI field a client sent them in.
PARAM_OF = {"count": "n", "width": "size", "height": "size", "provider": "model"}


@bp.get("/models")
def list_models():
    """Every provider/model that can run now, as OpenAI's model list."""
    created = int(time.time())
    return jsonify({"object": "list", "data": [
        {"id": entry.id, "object": "model", "created": created, "owned_by": entry.provider}
        for entry in models.runnable()
    ]})


@bp.post("/images/generations")
@generation_limit
def images_generations():
    """Generate n images from a prompt (OpenAI's Images API)."""
    body = json_body()
    if not isinstance(body, Mapping):
        raise ValidationFailed([error(None, "Input should be a JSON object", "model_attributes_type")])
    response_format = body.get("response_format") or "b64_json"
    if response_format not in RESPONSE_FORMATS:
        raise ValidationFailed([error("response_format", "Input should be 'b64_json' or 'url'",
                                      "literal_error")])
    translated, offered = _generation_body(body)
    params = replace(validate(translated), offered=offered)

    def run():
        records = generate(params)
        first = records[0]
        if response_format == "url":
            data = [{"url": urljoin(request.host_url, record.url)} for record in records]
        else:
            data = [{"b64_json": stored_base64(record)} for record in records]
        return jsonify({
            "created": int(first.created_at.timestamp()),
            "data": data,
            "size": f"{first.width}x{first.height}",
            "output_format": FORMAT_NAMES.get(first.format, first.format),
        })

    return once_per_key(body, run)


def _generation_body(body: Mapping) -> tuple[dict, dict]:
    """OpenAI's fields as the common parameters (what the service then checks), and those that
    are options of some models (the service sends them where the model takes them)."""
    translated: dict = {"prompt": body.get("prompt")} if "prompt" in body else {}
    model = body.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise ValidationFailed([error("model", "Input should be a valid string", "string_type")])
        if model.strip():
            named = models.parse(model)
            translated["provider"] = named.provider
            if named.model:
                translated["model"] = named.model
    n = body.get("n")
    if n is not None and n != 1:
        translated["count"] = n
    size = body.get("size")
    if size is not None and size != "auto":
        match = SIZE.fullmatch(size) if isinstance(size, str) else None
        if match is None:
            raise ValidationFailed([error("size", "Input should be 'auto' or WIDTHxHEIGHT, "
                                                  "e.g. '1024x1024'", "string_pattern_mismatch")])
        translated["width"], translated["height"] = int(match[1]), int(match[2])
    offered = {name: body[name] for name in OPTION_FIELDS if body.get(name) is not None}
    return translated, offered


def register_error_shape(app: Flask) -> None:
    """Every error under /v1/ (ours, the rate limiter's, the token check's) in OpenAI's shape."""

    @app.after_request
    def openai_errors(response):
        if response.status_code < 400 or not request.path.startswith("/v1/"):
            return response
        try:
            body = json.loads(response.get_data())
        except ValueError:
            return response
        if not isinstance(body, dict) or "error" not in body or "detail" not in body:
            return response
        status, shape = openai_error(response.status_code, body["error"], body["detail"])
        response.set_data(json.dumps({"error": shape}))
        response.status_code = status
        response.mimetype = "application/json"
        return response


def openai_error(status: int, code: str, detail) -> tuple[int, dict]:
    """Our status, code and detail as OpenAI's status and error object."""
    param = None
    kind = "invalid_request_error"
    if code == "validation_error" and isinstance(detail, list):
        param, message, code = _validation(detail)
        status = 404 if code == "model_not_found" else 400
        if code == "model_not_found":
            message = _unknown_model_message()
    else:
        message = detail if isinstance(detail, str) else json.dumps(detail)
        if code == "content_moderation":
            status, kind, code = 400, "image_generation_user_error", "moderation_blocked"
        elif code == "provider_not_configured":
            status, code, param = 404, "model_not_found", "model"
            message = f"{_unknown_model_message()} {message}"
        elif status == 401:
            code = "invalid_api_key"
        elif status == 402:
            status, kind, code = 429, "insufficient_quota", "insufficient_quota"
        elif status == 429:
            kind, code = "requests", "rate_limit_exceeded"
        elif status == 415:
            status, code = 400, "invalid_json"
        elif status >= 500:
            kind = "server_error"
    return status, {"message": message, "type": kind, "param": param, "code": code}


def _unknown_model_message() -> str:
    body = request.get_json(silent=True)
    model = body.get("model") if isinstance(body, dict) else None
    return (f"The model '{model}' does not exist or cannot run here now; GET /v1/models lists "
            "the models that can.")


def _validation(problems: list) -> tuple[str | None, str, str]:
    """The first field at fault (as OpenAI names it), every problem in words, and a code."""
    named = []
    for problem in problems:
        loc = [str(part) for part in problem.get("loc", []) if part != "body"]
        if loc[:1] == ["options"]:
            loc = loc[1:]
        field = PARAM_OF.get(loc[0], loc[0]) if loc else None
        named.append((field, problem))
    param, first = named[0]
    message = "; ".join(f"{field}: {problem['msg']}" if field else problem["msg"]
                        for field, problem in named)
    if param == "model" and first.get("type") == "literal_error":
        code = "model_not_found"
    elif first.get("type") == "missing":
        code = "missing_required_parameter"
    else:
        code = "invalid_value"
    return param, message, code
