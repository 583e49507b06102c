"""A fake of OpenAI's Images API (`POST /v1/images/generations`), as strict as the real one.

Point the official client at it with `OpenAI(api_key=..., base_url=fake.url + "/v1")`.
It checks the bearer key, refuses unknown fields, refuses `response_format` for the GPT image
models (400 `unknown_parameter`), checks model, size, quality, background, output_format,
moderation and n, and answers base64 images with `usage` and an `x-request-id` header.

Faults are chosen per request by markers in the prompt, e.g. "a cat [fault:moderation]":
  moderation       400 moderation_blocked (type image_generation_user_error)
  quota            429 insufficient_quota (out of money, not a rate limit)
  rate             429 rate_limit_exceeded with Retry-After: 7
  403 500 503      that status, in OpenAI's error shape
  garbage          200 whose body is HTML, not JSON
  no-image         200 JSON whose data holds no b64_json
  slow=SECONDS     sleep, then answer normally
  drop             close the connection without answering

`latency` adds seconds to every generation; `spans` lists (arrived, answered) per generation.

Run standalone: python -m tests.fakes.openai [--port N] [--key KEY]
"""

from __future__ import annotations

import base64
import time
import uuid

from .server import (
    DROP,
    FakeServer,
    Request,
    Response,
    parse_faults,
    render_image,
    serve_from_command_line,
)

MODELS = ("gpt-image-2", "gpt-image-2.5-sunburst", "gpt-image-2.5-flare",
          "gpt-image-2.6-sunburst", "gpt-image-2.6-flare")
RETIRED = ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5")
ANY_SIZE = ("gpt-image-2", "gpt-image-2.5-sunburst", "gpt-image-2.5-flare")
FIXED_SIZES = ("1024x1024", "1536x1024", "1024x1536")
FIELDS = ("prompt", "model", "n", "size", "quality", "output_format", "output_compression",
          "background", "moderation", "safety_identifier", "user", "response_format", "stream",
          "partial_images")
QUALITY = ("low", "medium", "high", "auto")
QUALITY_25 = QUALITY + ("xhigh", "max")
FORMATS = {"png": "png", "jpeg": "jpeg", "webp": "webp"}
FAULTS = {"moderation", "quota", "rate", "403", "500", "503", "garbage", "no-image", "slow",
          "drop"}
OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "auto": 1056, "xhigh": 6240,
                 "max": 8320}


def _error(status: int, message: str, kind: str, code: str | None, param: str | None = None,
           headers=None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Response.json(status, body, headers={"x-request-id": f"req_{uuid.uuid4().hex}",
                                                **(headers or {})})


def _invalid(message: str, param: str | None, code: str | None = "invalid_value") -> Response:
    return _error(400, message, "invalid_request_error", code, param)


def parse_size(size: str) -> tuple[int, int] | None:
    width, sep, height = size.partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        return None
    return int(width), int(height)


def size_problem(model: str, size) -> str | None:
    if not isinstance(size, str):
        return "size must be a string"
    if size == "auto" or size in FIXED_SIZES:
        return None
    parsed = parse_size(size)
    if model not in ANY_SIZE or parsed is None:
        return f"Invalid size '{size}'. Supported sizes are 1024x1024, 1024x1536, 1536x1024, " \
               "and auto."
    width, height = parsed
    if width % 16 or height % 16:
        return f"Invalid size '{size}': both sides must be multiples of 16."
    if max(width, height) / min(width, height) > 3:
        return f"Invalid size '{size}': the aspect ratio must be between 1:3 and 3:1."
    if max(width, height) > 3840 or min(width, height) > 2160:
        return f"Invalid size '{size}': at most 3840x2160."
    return None


class FakeOpenAI(FakeServer):
    """FakeOpenAI(api_key="sk-test-openai").start(); `.url` + "/v1" is the client's base URL."""

    def __init__(self, api_key: str = "sk-test-openai", host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.api_key = api_key
        self.latency = 0.0
        self._spans: list[tuple[float, float]] = []

    @property
    def spans(self) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._spans)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._spans.clear()
        self.latency = 0.0

    def handle(self, request: Request):
        if request.path != "/v1/images/generations":
            return _error(404, f"Invalid URL ({request.method} {request.path})",
                          "invalid_request_error", None)
        if request.method != "POST":
            return _error(405, "Method not allowed.", "invalid_request_error", None)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            given = (request.headers.get("authorization") or "").removeprefix("Bearer ")
            return _error(401, f"Incorrect API key provided: {given[:3]}***{given[-4:]}. You "
                          "can find your API key at https://platform.openai.com/account/api-keys.",
                          "invalid_request_error", "invalid_api_key")
        body = request.json
        if request.content_type != "application/json" or not isinstance(body, dict):
            return _invalid("We could not parse the JSON body of your request.", None, None)
        for key in body:
            if key not in FIELDS:
                return _invalid(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
        model = body.get("model", "gpt-image-2")
        if model in RETIRED or model not in MODELS:
            return _error(404, f"The model '{model}' does not exist or you do not have access "
                          "to it.", "invalid_request_error", "model_not_found", "model")
        if "response_format" in body:  # DALL-E only; GPT image models always answer base64
            return _invalid("Unknown parameter: 'response_format'.", "response_format",
                            "unknown_parameter")
        problem = self._check(model, body)
        if problem is not None:
            return problem
        faults, unknown = parse_faults(body["prompt"], FAULTS)
        if unknown:
            return _invalid(f"The fake does not know {unknown[0]}.", "prompt")
        arrived = request.received_at
        self.sleep(self.latency + float(faults.get("slow") or 0))
        answer = self._answer(model, body, faults)
        with self._lock:
            self._spans.append((arrived, time.monotonic()))
        return answer

    @staticmethod
    def _check(model: str, body: dict) -> Response | None:
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return _invalid("Missing required parameter: 'prompt'.", "prompt",
                            "missing_required_parameter")
        if len(prompt) > 32000:
            return _invalid("Invalid 'prompt': string too long.", "prompt", "string_above_max_length")
        n = body.get("n", 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
            return _invalid("Invalid 'n': must be an integer from 1 to 10.", "n")
        problem = size_problem(model, body.get("size", "auto"))
        if problem:
            return _invalid(problem, "size")
        quality = QUALITY_25 if model.startswith("gpt-image-2.5") else QUALITY
        for name, allowed in (("quality", quality), ("output_format", tuple(FORMATS)),
                              ("background", ("transparent", "opaque", "auto")),
                              ("moderation", ("low", "auto"))):
            if name in body and body[name] not in allowed:
                return _invalid(f"Invalid value: '{body[name]}'. Supported values are: "
                                + ", ".join(f"'{a}'" for a in allowed) + ".", name)
        if body.get("background") == "transparent" and body.get("output_format") == "jpeg":
            return _invalid("Transparent background is not supported for jpeg.", "background")
        return None

    def _answer(self, model: str, body: dict, faults: dict):
        if "drop" in faults:
            return DROP
        if "moderation" in faults:
            return _error(400, "Your request was rejected by the safety system. "
                          "safety_violations=[sexual].", "image_generation_user_error",
                          "moderation_blocked")
        if "quota" in faults:
            return _error(429, "You exceeded your current quota, please check your plan and "
                          "billing details.", "insufficient_quota", "insufficient_quota")
        if "rate" in faults:
            return _error(429, "Rate limit reached for gpt-image-2 on images per minute.",
                          "requests", "rate_limit_exceeded", headers={"retry-after": "7"})
        for status in ("403", "500", "503"):
            if status in faults:
                kind = "invalid_request_error" if status == "403" else "server_error"
                return _error(int(status), f"The fake answers {status}.", kind, None)
        if "garbage" in faults:
            return Response(200, b"<html><body>502 Bad Gateway</body></html>",
                            {"Content-Type": "text/html"})
        size = body.get("size", "auto")
        width, height = parse_size(size) or (1024, 1024)
        fmt = body.get("output_format", "png")
        quality = body.get("quality", "auto")
        data = [] if "no-image" in faults else [
            {"b64_json": base64.b64encode(render_image(width, height, 7 + i, FORMATS[fmt])).decode()}
            for i in range(body.get("n", 1))]
        text_tokens = max(1, len(body["prompt"]) // 4)
        output = OUTPUT_TOKENS[quality] * body.get("n", 1)
        return Response.json(200, {
            "created": int(time.time()), "data": data, "size": f"{width}x{height}",
            "quality": "medium" if quality == "auto" else quality, "output_format": fmt,
            "background": body.get("background", "opaque") if body.get("background") != "auto"
            else "opaque",
            "usage": {"input_tokens": text_tokens,
                      "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
                      "output_tokens": output, "total_tokens": text_tokens + output},
        }, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})


def main(argv=None) -> None:
    serve_from_command_line(
        lambda key, host, port: FakeOpenAI(api_key=key, host=host, port=port),
        "Run the fake OpenAI Images API.", "key", "sk-test-openai", argv)


if __name__ == "__main__":
    main()
