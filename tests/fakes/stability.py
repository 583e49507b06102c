"""A fake of the Stability AI REST API, as strict as the real one.

Serves:
- POST /v2beta/stable-image/generate/{sd3,core,ultra} (multipart/form-data only)
- POST /v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image (JSON only)
- GET  /v1/user/balance

Faults are chosen per request by markers in the prompt, e.g. "a cat [fault:402]":
  401 402 403 413 422 429 500   answer with that error (the real body shape)
  slow=SECONDS                  sleep, then answer normally
  hold                          answer normally once the test calls release()
  filtered                      200, finish reason CONTENT_FILTERED, a grey image
  garbage / truncated / bomb    200 whose image is not an image / cut in half /
                                a small PNG claiming 60000x60000 pixels
  echo-auth                     400 whose message repeats the Authorization header
  drop                          close the connection without answering

Run standalone: python -m tests.fakes.stability [--port N] [--key KEY]
"""

from __future__ import annotations

import base64
import math
import random
import re
import threading
import uuid

from .server import (
    DROP,
    MIME,
    FakeServer,
    Request,
    Response,
    corrupt,
    parse_faults,
    render_image,
    serve_from_command_line,
)

MIB = 1024 * 1024
MAX_SEED_V2 = 4294967294
MAX_SEED_V1 = 4294967295

# The sizes SD3 makes per aspect ratio; core and ultra use the same table (theirs are not
# published exactly).
ASPECT_SIZES = {
    "21:9": (1536, 640),
    "16:9": (1344, 768),
    "3:2": (1216, 832),
    "5:4": (1088, 896),
    "1:1": (1024, 1024),
    "4:5": (896, 1088),
    "2:3": (832, 1216),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
# The sd3-* names are older ones, rerouted to 3.5.
SD3_MODELS = tuple(
    "sd3.5-large sd3.5-large-turbo sd3.5-medium sd3.5-flash "
    "sd3-large sd3-large-turbo sd3-medium".split()
)
TURBO_MODELS = ("sd3.5-large-turbo", "sd3-large-turbo")
STYLE_PRESETS = tuple(
    "3d-model analog-film anime cinematic comic-book digital-art enhance fantasy-art "
    "isometric line-art low-poly modeling-compound neon-punk origami photographic pixel-art "
    "tile-texture".split()
)
V2_COMMON = ("prompt", "negative_prompt", "aspect_ratio", "seed", "output_format", "style_preset")
V2_FIELDS = {
    "sd3": V2_COMMON + ("mode", "model", "cfg_scale"),
    "core": V2_COMMON,
    "ultra": V2_COMMON,
}

SDXL_ENGINE = "stable-diffusion-xl-1024-v1-0"
# PROVIDERS.md lists eight; the real error message also lists 832x1216.
SDXL_SIZES = (
    (1024, 1024),
    (1152, 896),
    (896, 1152),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (1536, 640),
    (640, 1536),
)
V1_SAMPLERS = tuple(
    "DDIM DDPM K_DPMPP_2M K_DPMPP_2S_ANCESTRAL K_DPM_2 K_DPM_2_ANCESTRAL K_EULER "
    "K_EULER_ANCESTRAL K_HEUN K_LMS".split()
)
V1_CLIP_PRESETS = ("FAST_BLUE", "FAST_GREEN", "NONE", "SIMPLE", "SLOW", "SLOWER", "SLOWEST")
V1_FIELDS = tuple(
    "text_prompts width height steps cfg_scale seed samples sampler style_preset "
    "clip_guidance_preset extras".split()
)

ERROR_FAULTS = {
    "401": (401, "unauthorized", "authorization: invalid or missing"),
    "402": (
        402,
        "payment_required",
        "You lack sufficient credits to make this request. Please purchase more credits at "
        "https://platform.stability.ai/account/credits and try again.",
    ),
    "403": (
        403,
        "content_moderation",
        "Your request was flagged by our content moderation system, as a result your request "
        "was denied and you were not charged.",
    ),
    "413": (413, "payload_too_large", "body: payloads cannot be larger than 10MiB in size"),
    "422": (422, "invalid_language", "English is the only supported language for this service."),
    "429": (
        429,
        "rate_limit_exceeded",
        "You have exceeded the rate limit of 150 requests within a 10 second period, and have "
        "been timed out for 60 seconds.",
    ),
    "500": (
        500,
        "internal_error",
        "An unexpected server error has occurred, please try again later.",
    ),
}
FAULTS = set(ERROR_FAULTS) | {
    "slow",
    "hold",
    "filtered",
    "garbage",
    "truncated",
    "bomb",
    "echo-auth",
    "drop",
}


class _Invalid(Exception):
    def __init__(self, status: int, name: str, messages: list[str]):
        super().__init__(messages)
        self.status, self.name, self.messages = status, name, messages


def _error(status: int, name: str, messages: list[str], v1: bool = False) -> Response:
    body = {"id": uuid.uuid4().hex, "name": name}
    if v1:
        body["message"] = "; ".join(messages)  # v1 errors carry one `message`, not `errors`
    else:
        body["errors"] = messages
    return Response.json(status, body)


def _random_seed() -> int:
    return random.randint(1, MAX_SEED_V2)


def _accept(request: Request, allowed: dict[str, str]) -> str | None:
    """Map the Accept header to 'image' or 'json' (None when it is not one the API takes)."""
    value = (request.headers.get("accept") or "").split(",")[0].split(";")[0].strip().lower()
    return allowed.get(value)


class FakeStability(FakeServer):
    """Fake Stability AI server.

    FakeStability(api_key="sk-test-stability", host="127.0.0.1", port=0).start() -> listening;
    `.url` is the base URL to use as STABILITY_BASE_URL; `.stop()` shuts it down.

    Attributes: `api_key`, `delay` (seconds added to every generation, default 0),
    `credits` (what /v1/user/balance reports), `requests` (every request received),
    `reset()` (forgets requests, restores delay).
    """

    def __init__(self, api_key: str = "sk-test-stability", host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.api_key = api_key
        self.delay = 0.0
        self.credits = 100.0
        self._generations = 0
        self._count_lock = threading.Lock()

    @property
    def generations(self) -> int:
        """How many images the fake has delivered (successful generations)."""
        with self._count_lock:
            return self._generations

    def reset(self) -> None:
        super().reset()
        self.delay = 0.0
        with self._count_lock:
            self._generations = 0

    def handle(self, request: Request):
        path = request.path
        match = re.fullmatch(r"/v2beta/stable-image/generate/(sd3|core|ultra)", path)
        if match:
            if request.method != "POST":
                return _error(
                    405, "method_not_allowed", [f"method: {request.method} is not allowed"]
                )
            return self._v2(request, match.group(1))
        match = re.fullmatch(r"/v1/generation/([^/]+)/text-to-image", path)
        if match:
            if request.method != "POST":
                return _error(
                    405, "method_not_allowed", [f"method {request.method} is not allowed"], v1=True
                )
            return self._v1(request, match.group(1))
        if path == "/v1/user/balance" and request.method == "GET":
            if not self._authorized(request):
                return _error(401, "unauthorized", ["Missing or invalid API key"], v1=True)
            return Response.json(200, {"credits": self.credits})
        return _error(404, "not_found", [f"path: {path} not found"])

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    # --- v2beta ----------------------------------------------------------------------------

    def _v2(self, request: Request, service: str):
        if not self._authorized(request):
            return _error(401, "unauthorized", ["authorization: invalid or missing"])
        if len(request.raw) > 10 * MIB:
            return _error(
                413, "payload_too_large", ["body: payloads cannot be larger than 10MiB in size"]
            )
        if request.content_type != "multipart/form-data":
            return _error(400, "bad_request", ["content-type: must be multipart/form-data"])
        if request.form is None:
            return _error(400, "bad_request", ["body: malformed multipart/form-data"])
        try:
            params = self._validate_v2(request, service)
        except _Invalid as exc:
            return _error(exc.status, exc.name, exc.messages)
        kind = _accept(
            request, {"": "image", "*/*": "image", "image/*": "image", "application/json": "json"}
        )
        if kind is None:
            return _error(400, "bad_request", ["accept: must be image/* or application/json"])
        faults, unknown = parse_faults(params["prompt"], FAULTS)
        if unknown:
            return _error(400, "bad_request", [f"prompt: unknown fault marker {unknown[0]} (fake)"])
        answer = self._fault(request, faults, v1=False)
        if answer is not None:
            return answer

        width, height = ASPECT_SIZES[params["aspect_ratio"]]
        seed = params["seed"] or _random_seed()
        finish = "CONTENT_FILTERED" if "filtered" in faults else "SUCCESS"
        fmt = params["output_format"]
        data = corrupt(render_image(width, height, seed, fmt, grey="filtered" in faults), faults)
        self._delivered()
        if kind == "json":
            return Response.json(
                200,
                {"image": base64.b64encode(data).decode(), "finish_reason": finish, "seed": seed},
            )
        return Response(
            200, data, {"Content-Type": MIME[fmt], "finish-reason": finish, "seed": str(seed)}
        )

    def _validate_v2(self, request: Request, service: str) -> dict:
        fields = request.form
        allowed = V2_FIELDS[service]
        errors = [f"{name}: unknown parameter" for name in fields if name not in allowed]
        # The official examples add a dummy file part named "none" to force multipart.
        errors += [
            f"{name}: unexpected file part (text-to-image takes no files)"
            for name in request.files
            if name != "none"
        ]

        prompt = fields.get("prompt")
        if prompt is None:
            errors.append("prompt: is required")
        elif not prompt.strip():
            errors.append("prompt: cannot be empty")
        elif len(prompt) > 10000:
            errors.append("prompt: must be at most 10000 characters")
        if len(fields.get("negative_prompt", "")) > 10000:
            errors.append("negative_prompt: must be at most 10000 characters")

        aspect = fields.get("aspect_ratio", "1:1")
        if aspect not in ASPECT_SIZES:
            errors.append(f"aspect_ratio: must be one of {', '.join(ASPECT_SIZES)}")

        seed = 0
        raw_seed = fields.get("seed", "0")
        if re.fullmatch(r"\d{1,10}", raw_seed) and int(raw_seed) <= MAX_SEED_V2:
            seed = int(raw_seed)
        else:
            errors.append(f"seed: must be an integer between 0 and {MAX_SEED_V2}")

        formats = ("png", "jpeg") if service == "sd3" else ("png", "jpeg", "webp")
        fmt = fields.get("output_format", "png")
        if fmt not in formats:
            errors.append(f"output_format: must be one of {', '.join(formats)}")

        if "style_preset" in fields and fields["style_preset"] not in STYLE_PRESETS:
            errors.append(f"style_preset: must be one of {', '.join(STYLE_PRESETS)}")

        if service == "sd3":
            mode = fields.get("mode", "text-to-image")
            if mode == "image-to-image":
                errors.append("image: is required when mode is image-to-image")
            elif mode != "text-to-image":
                errors.append("mode: must be one of text-to-image, image-to-image")
            model = fields.get("model", "sd3.5-large")
            if model not in SD3_MODELS:
                errors.append(f"model: must be one of {', '.join(SD3_MODELS[:4])}")
            elif model in TURBO_MODELS and "negative_prompt" in fields:
                errors.append(f"negative_prompt: is not supported by {model}")
            if "cfg_scale" in fields:
                try:
                    cfg = float(fields["cfg_scale"])
                except ValueError:
                    cfg = math.nan
                if not 1 <= cfg <= 10:
                    errors.append("cfg_scale: must be a number between 1 and 10")

        if errors:
            raise _Invalid(400, "bad_request", errors)
        return {"prompt": prompt, "aspect_ratio": aspect, "seed": seed, "output_format": fmt}

    # --- v1 --------------------------------------------------------------------------------

    def _v1(self, request: Request, engine: str):
        if not self._authorized(request):
            return _error(401, "unauthorized", ["Missing or invalid API key"], v1=True)
        if engine != SDXL_ENGINE:
            return _error(404, "not_found", [f"engine: {engine} not found"], v1=True)
        if request.content_type != "application/json" or not isinstance(request.json, dict):
            return _error(
                400,
                "bad_request",
                ["body: must be a JSON object (content-type: application/json)"],
                v1=True,
            )
        try:
            params = self._validate_v1(request.json)
        except _Invalid as exc:
            return _error(exc.status, exc.name, exc.messages, v1=True)
        kind = _accept(
            request, {"": "json", "*/*": "json", "application/json": "json", "image/png": "image"}
        )
        if kind is None:
            return _error(
                400, "bad_request", ["accept: must be application/json or image/png"], v1=True
            )
        if kind == "image" and params["samples"] != 1:
            return _error(
                400, "bad_request", ["accept: image/png requires samples to be 1"], v1=True
            )
        faults, unknown = parse_faults(params["prompt"], FAULTS)
        if unknown:
            return _error(
                400,
                "bad_request",
                [f"text_prompts: unknown fault marker {unknown[0]} (fake)"],
                v1=True,
            )
        answer = self._fault(request, faults, v1=True)
        if answer is not None:
            return answer

        finish = "CONTENT_FILTERED" if "filtered" in faults else "SUCCESS"
        first = params["seed"] or _random_seed()
        seeds = [(first + i) % (MAX_SEED_V1 + 1) or 1 for i in range(params["samples"])]
        images = [
            corrupt(
                render_image(
                    params["width"], params["height"], s, "png", grey="filtered" in faults
                ),
                faults,
            )
            for s in seeds
        ]
        self._delivered()
        if kind == "image":
            return Response(
                200,
                images[0],
                {"Content-Type": "image/png", "finish-reason": finish, "seed": str(seeds[0])},
            )
        artifacts = [
            {"base64": base64.b64encode(data).decode(), "seed": s, "finishReason": finish}
            for data, s in zip(images, seeds, strict=True)
        ]
        return Response.json(200, {"artifacts": artifacts})

    def _validate_v1(self, body: dict) -> dict:
        errors = [f"{name}: unknown field" for name in body if name not in V1_FIELDS]

        def integer(name, low, high, default):
            value = body.get(name, default)
            if type(value) is not int or not low <= value <= high:
                errors.append(f"{name}: must be an integer between {low} and {high}")
                return default
            return value

        def number(name, low, high, default):
            value = body.get(name, default)
            if type(value) not in (int, float) or not low <= value <= high:
                errors.append(f"{name}: must be a number between {low} and {high}")
                return default
            return value

        def choice(name, options):
            if name in body and body[name] not in options:
                errors.append(f"{name}: must be one of {', '.join(options)}")

        prompts = body.get("text_prompts")
        texts = []
        before = len(errors)
        if not isinstance(prompts, list) or not prompts:
            errors.append("text_prompts: must be a non-empty array of {text, weight}")
        else:
            for i, item in enumerate(prompts):
                if not isinstance(item, dict) or set(item) - {"text", "weight"}:
                    errors.append(f"text_prompts[{i}]: must be an object with text and weight")
                    continue
                text, weight = item.get("text"), item.get("weight", 1.0)
                if not isinstance(text, str) or not text.strip() or len(text) > 2000:
                    errors.append(
                        f"text_prompts[{i}].text: must be a string of 1 to 2000 characters"
                    )
                if type(weight) not in (int, float):
                    errors.append(f"text_prompts[{i}].weight: must be a number")
                elif weight > 0 and isinstance(text, str):
                    texts.append(text)
            if not texts and len(errors) == before:
                errors.append("text_prompts: at least one prompt must have a positive weight")

        steps = integer("steps", 10, 50, 30)
        number("cfg_scale", 0, 35, 7)
        seed = integer("seed", 0, MAX_SEED_V1, 0)
        samples = integer("samples", 1, 10, 1)
        choice("sampler", V1_SAMPLERS)
        choice("style_preset", STYLE_PRESETS)
        choice("clip_guidance_preset", V1_CLIP_PRESETS)
        width, height = body.get("width", 1024), body.get("height", 1024)
        if errors:
            raise _Invalid(400, "bad_request", errors)
        if (width, height) not in SDXL_SIZES or type(width) is not int or type(height) is not int:
            allowed = ", ".join(f"{w}x{h}" for w, h in sorted(SDXL_SIZES))
            raise _Invalid(
                400,
                "invalid_sdxl_v1_dimensions",
                [
                    f"For the {SDXL_ENGINE} engine the allowed dimensions are {allowed}, "
                    f"but we received {width}x{height}"
                ],
            )
        return {
            "prompt": " ".join(texts),
            "width": width,
            "height": height,
            "steps": steps,
            "seed": seed,
            "samples": samples,
        }

    # --- faults ----------------------------------------------------------------------------

    def _fault(self, request: Request, faults: dict, v1: bool):
        """Sleep for delay/slow, then return the fault's answer (None: answer normally)."""
        self.sleep(self.delay + float(faults.get("slow") or 0))
        if "hold" in faults:
            self.hold()
        if "drop" in faults:
            return DROP
        if "echo-auth" in faults:
            received = request.headers.get("authorization", "")
            return _error(
                400, "bad_request", [f"authorization: unexpected value {received!r}"], v1=v1
            )
        for code, (status, name, message) in ERROR_FAULTS.items():
            if code in faults:
                return _error(status, name, [message], v1=v1)
        return None

    def _delivered(self) -> None:
        with self._count_lock:
            self._generations += 1


def main(argv=None) -> None:
    serve_from_command_line(
        lambda key, host, port: FakeStability(api_key=key, host=host, port=port),
        "Run the fake Stability AI API.", "key", "sk-test-stability", argv)


if __name__ == "__main__":
    main()
