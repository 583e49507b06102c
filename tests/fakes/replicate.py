"""A fake of the Replicate HTTP API, as strict as the real one, that the official client can use.

Point the client at it with `replicate.Client(api_token=..., base_url=fake.url)` (no /v1 suffix).
Models: `stability-ai/sdxl` (community: run by version) and `black-forest-labs/flux-schnell`
(official: run through /v1/models/{owner}/{name}/predictions, or by its version).

A prediction takes `run_time` seconds (default 0.2): the create call answers `starting`, polling
shows `processing`, then `succeeded` with output URLs served by the fake under /files/.
With `Prefer: wait[=N]` the create call holds up to N seconds (at most `max_wait`) and, like the
real service, answers a finished prediction as `processing` with its output filled in, and one
still running as `starting`.

Faults are chosen per prediction by markers in input.prompt, e.g. "a cat [fault:nsfw]":
  401 402 422 429 500   the create call fails with that HTTP error (429 with Retry-After)
  echo-auth             the create call fails with a 400 whose detail repeats the
                        Authorization header
  drop                  the create call's connection is closed without an answer
  nsfw / model-error    the prediction ends `failed` with the model's error text
  never                 the prediction stays `processing` until canceled
  slow=SECONDS          the prediction runs that long
  wait-empty            a `Prefer: wait` create returns `processing` with no output yet
  output-404            the output URLs answer 404
  garbage / truncated / bomb   the output files are not images / cut in half / a PNG bomb
  data-url              the output is `data:` URLs instead of http URLs

Run standalone: python -m tests.fakes.replicate [--port N] [--token TOKEN]
"""

from __future__ import annotations

import base64
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

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

PROBLEM = "application/problem+json"
SDXL = "stability-ai/sdxl"
SDXL_VERSION = "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
FLUX_SCHNELL = "black-forest-labs/flux-schnell"
# Official models hide their versions; any stable 64-hex id serves the fake.
FLUX_SCHNELL_VERSION = "f2ab8a5bfe79f02f0789a146cf5e73d2a4ff2684a98c2b303d1e1ff3814271db"

SDXL_INPUTS = {
    "prompt": {"type": "string", "default": "An astronaut riding a rainbow unicorn"},
    "negative_prompt": {"type": "string", "default": ""},
    "image": {"type": "string", "format": "uri"},
    "mask": {"type": "string", "format": "uri"},
    "width": {"type": "integer", "default": 1024},
    "height": {"type": "integer", "default": 1024},
    "num_outputs": {"type": "integer", "default": 1, "minimum": 1, "maximum": 4},
    "scheduler": {
        "type": "string",
        "default": "K_EULER",
        "enum": "DDIM DPMSolverMultistep HeunDiscrete KarrasDPM K_EULER_ANCESTRAL K_EULER "
        "PNDM".split(),
    },
    "num_inference_steps": {"type": "integer", "default": 50, "minimum": 1, "maximum": 500},
    "guidance_scale": {"type": "number", "default": 7.5, "minimum": 1, "maximum": 50},
    "prompt_strength": {"type": "number", "default": 0.8, "minimum": 0, "maximum": 1},
    "seed": {"type": "integer"},
    "refine": {
        "type": "string",
        "default": "no_refiner",
        "enum": ["no_refiner", "expert_ensemble_refiner", "base_image_refiner"],
    },
    "high_noise_frac": {"type": "number", "default": 0.8, "minimum": 0, "maximum": 1},
    "refine_steps": {"type": "integer"},
    "apply_watermark": {"type": "boolean", "default": True},
    "lora_scale": {"type": "number", "default": 0.6, "minimum": 0, "maximum": 1},
    "replicate_weights": {"type": "string"},
    "disable_safety_checker": {"type": "boolean", "default": False},
}

FLUX_SIZES = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
FLUX_SCHNELL_INPUTS = {
    "prompt": {"type": "string", "required": True},
    "aspect_ratio": {"type": "string", "default": "1:1", "enum": list(FLUX_SIZES)},
    "num_outputs": {"type": "integer", "default": 1, "minimum": 1, "maximum": 4},
    "num_inference_steps": {"type": "integer", "default": 4, "minimum": 1, "maximum": 4},
    "seed": {"type": "integer"},
    "output_format": {"type": "string", "default": "webp", "enum": ["webp", "jpg", "png"]},
    "output_quality": {"type": "integer", "default": 80, "minimum": 0, "maximum": 100},
    "disable_safety_checker": {"type": "boolean", "default": False},
    "go_fast": {"type": "boolean", "default": True},
    "megapixels": {"type": "string", "default": "1", "enum": ["1", "0.25"]},
}

FLUX_DEV = "black-forest-labs/flux-dev"
FLUX_DEV_INPUTS = {
    **FLUX_SCHNELL_INPUTS,
    "num_inference_steps": {"type": "integer", "default": 28, "minimum": 1, "maximum": 50},
    "guidance": {"type": "number", "default": 3, "minimum": 0, "maximum": 10},
}
FLUX_PRO = "black-forest-labs/flux-1.1-pro"
FLUX_PRO_INPUTS = {
    "prompt": {"type": "string", "required": True},
    "aspect_ratio": {"type": "string", "default": "1:1", "enum": [*FLUX_SIZES, "custom"]},
    "width": {"type": "integer", "minimum": 256, "maximum": 1440},
    "height": {"type": "integer", "minimum": 256, "maximum": 1440},
    "seed": {"type": "integer"},
    "output_format": {"type": "string", "default": "webp", "enum": ["webp", "jpg", "png"]},
    "output_quality": {"type": "integer", "default": 80, "minimum": 0, "maximum": 100},
    "safety_tolerance": {"type": "integer", "default": 2, "minimum": 1, "maximum": 6},
    "prompt_upsampling": {"type": "boolean", "default": False},
    "image_prompt": {"type": "string", "format": "uri"},
}
SD35_LARGE = "stability-ai/stable-diffusion-3.5-large"
SD_RATIOS = ["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "9:16", "9:21"]
SD35_LARGE_INPUTS = {
    "prompt": {"type": "string", "required": True},
    "aspect_ratio": {"type": "string", "default": "1:1", "enum": SD_RATIOS},
    "cfg": {"type": "number", "default": 3.5, "minimum": 0, "maximum": 20},
    "steps": {"type": "integer", "default": 35, "minimum": 1, "maximum": 50},
    "seed": {"type": "integer"},
    "image": {"type": "string", "format": "uri"},
    "prompt_strength": {"type": "number", "default": 0.85, "minimum": 0, "maximum": 1},
    "output_format": {"type": "string", "default": "webp", "enum": ["webp", "jpg", "png"]},
    "output_quality": {"type": "integer", "default": 90, "minimum": 0, "maximum": 100},
}
# Models offered through REPLICATE_MODELS in the tests: one with no seed and a single-URI
# output, one with no seed and an array, one community model by version whose output is an
# object holding the file.
RECRAFT = "recraft-ai/recraft-v3"
RECRAFT_SIZES = ["1024x1024", "1365x1024", "1024x1365", "1536x1024", "1024x1536", "1820x1024",
                 "1024x1820"]
RECRAFT_INPUTS = {
    "prompt": {"type": "string", "required": True},
    "size": {"type": "string", "default": "1024x1024", "enum": RECRAFT_SIZES},
    "aspect_ratio": {"type": "string", "default": "Not set",
                     "enum": ["Not set", "1:1", "4:3", "3:4", "16:9", "9:16"]},
    "style": {"type": "string", "default": "any",
              "enum": ["any", "realistic_image", "digital_illustration", "vector_illustration"]},
}
SEEDREAM = "bytedance/seedream-4"
SEEDREAM_INPUTS = {
    "prompt": {"type": "string", "required": True},
    "size": {"type": "string", "default": "2K", "enum": ["1K", "2K", "4K", "custom"]},
    "aspect_ratio": {"type": "string", "default": "match_input_image",
                     "enum": ["match_input_image", "1:1", "4:3", "3:4", "16:9", "9:16"]},
    "width": {"type": "integer", "default": 2048, "minimum": 1024, "maximum": 4096},
    "height": {"type": "integer", "default": 2048, "minimum": 1024, "maximum": 4096},
    "max_images": {"type": "integer", "default": 1, "minimum": 1, "maximum": 15},
    "image_input": {"type": "array", "items": {"type": "string", "format": "uri"}},
    "enhance_prompt": {"type": "boolean", "default": True},
}
PIXEL = "acme/pixel-art"
PIXEL_VERSION = "5d8c2b0e7a1f4b3c9e6d0a2b4c6e8f0a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e"
PIXEL_INPUTS = {
    "prompt": {"type": "string", "required": True},
    "negative_prompt": {"type": "string", "default": ""},
    "width": {"type": "integer", "default": 768, "minimum": 256, "maximum": 1536},
    "height": {"type": "integer", "default": 768, "minimum": 256, "maximum": 1536},
    "num_inference_steps": {"type": "integer", "default": 20, "minimum": 1, "maximum": 40},
    "guidance_scale": {"type": "number", "default": 4, "minimum": 0, "maximum": 8},
    "seed": {"type": "integer"},
    "palette": {"type": "string", "default": "nes", "enum": ["nes", "gameboy", "pico8"]},
    "pixel_size": {"type": "integer", "default": 4, "minimum": 1, "maximum": 16},
    "dither": {"type": "boolean", "default": False},
}
# A community fine-tune by version whose sampler input takes AUTOMATIC1111's names.
ANIME = "acme/anime-xl"
ANIME_VERSION = "7c1e3a5b9d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c"
ANIME_INPUTS = {
    "prompt": {"type": "string", "required": True},
    "negative_prompt": {"type": "string", "default": ""},
    "width": {"type": "integer", "default": 1024, "minimum": 512, "maximum": 2048},
    "height": {"type": "integer", "default": 1024, "minimum": 512, "maximum": 2048},
    "steps": {"type": "integer", "default": 28, "minimum": 1, "maximum": 60},
    "cfg_scale": {"type": "number", "default": 6, "minimum": 1, "maximum": 20},
    "seed": {"type": "integer"},
    "sampler": {"type": "string", "default": "Euler a",
                "enum": ["Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ SDE Karras",
                         "DDIM"]},
}

MODELS = {
    SDXL: {
        "version": SDXL_VERSION,
        "inputs": SDXL_INPUTS,
        "official": False,
        "description": "A text-to-image generative AI model that creates beautiful images",
    },
    FLUX_SCHNELL: {
        "version": FLUX_SCHNELL_VERSION,
        "inputs": FLUX_SCHNELL_INPUTS,
        "official": True,
        "description": "The fastest image generation model",
    },
    FLUX_DEV: {
        "version": "6e4a938f85952bdabcc15fa9b4b6b0a3bd2b4ae1d4f5c6a8b7a1e6f3d2c0b9a8",
        "inputs": FLUX_DEV_INPUTS,
        "official": True,
        "description": "A 12 billion parameter rectified flow transformer",
    },
    FLUX_PRO: {
        "version": "80a09d66baa990429c2f5ae8a4306bf778a1b3775afd01cc2cc8bdbe9033769c",
        "inputs": FLUX_PRO_INPUTS,
        "official": True,
        "output": "uri",
        "description": "Faster, better FLUX Pro",
    },
    SD35_LARGE: {
        "version": "e6c4657fe1b3f078fb26d68a1413bc8013e2b085504dd84a33e26e16fb95a593",
        "inputs": SD35_LARGE_INPUTS,
        "official": True,
        "description": "A text-to-image model that generates high-resolution images",
    },
    RECRAFT: {
        "version": "2b0e1d5c8a7f6e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
        "inputs": RECRAFT_INPUTS,
        "official": True,
        "output": "uri",
        "description": "Recraft V3",
    },
    SEEDREAM: {
        "version": "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
        "inputs": SEEDREAM_INPUTS,
        "official": True,
        "description": "Unified text-to-image generation and precise single-sentence editing",
    },
    PIXEL: {
        "version": PIXEL_VERSION,
        "inputs": PIXEL_INPUTS,
        "official": False,
        "output": "object",
        "description": "Pixel art from a prompt",
    },
    ANIME: {
        "version": ANIME_VERSION,
        "inputs": ANIME_INPUTS,
        "official": False,
        "description": "An anime fine-tune of SDXL",
    },
}
VERSIONS = {spec["version"]: name for name, spec in MODELS.items()}

NSFW_ERRORS = {
    SDXL: "NSFW content detected. Try running it again, or try a different prompt.",
    FLUX_SCHNELL: "All generated images contained NSFW content. "
    "Try running it again with a different prompt.",
}
MODEL_ERROR = "RuntimeError: CUDA error: an illegal memory access was encountered"

HTTP_FAULTS = {
    "401": (401, "Unauthenticated", "You did not pass a valid authentication token", {}),
    "402": (
        402,
        "Insufficient credit",
        "You have insufficient credit to run this model. Go to "
        "https://replicate.com/account/billing to purchase credit. Once you purchase credit, "
        "please wait a few minutes before trying again.",
        {},
    ),
    "429": (
        429,
        "Request was throttled",
        "Request was throttled. Expected available in 1 second.",
        {"Retry-After": "1"},
    ),
    "500": (
        500,
        "Internal Server Error",
        "An unexpected error occurred. Please try again later.",
        {},
    ),
}
FAULTS = set(HTTP_FAULTS) | set(
    "422 echo-auth drop nsfw model-error never slow wait-empty output-404 garbage truncated bomb "
    "data-url only-seed".split()
)
BODY_KEYS = ("input", "webhook", "webhook_completed", "webhook_events_filter", "stream")
JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array"}
JSON_TYPES.update({dict: "object", type(None): "null"})
EXT = {"png": "png", "jpg": "jpeg", "webp": "webp"}


def _problem(status: int, title: str, detail: str, headers=None, **extra) -> Response:
    return Response.json(
        status, {"title": title, "detail": detail, "status": status, **extra}, PROBLEM, headers
    )


def _invalid(fields: list[dict]) -> Response:
    detail = "".join(f"- {f['field']}: {f['description']}\n" for f in fields)
    return _problem(422, "Input validation failed", detail, invalid_fields=fields)


def _field(kind: str, where: str, description: str) -> dict:
    """One entry of a 422's `invalid_fields`."""
    return {"type": kind, "field": where, "description": description}


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    return base64.b32encode(os.urandom(16)).decode().lower().rstrip("=")[:26]


def _validate_input(values, inputs: dict) -> list[dict]:
    """Check a prediction input against a model's schema, reporting like the real API."""
    if not isinstance(values, dict):
        kind = JSON_TYPES.get(type(values), "unknown")
        return [_field("invalid_type", "input", f"Invalid type. Expected: object, given: {kind}")]
    problems = [
        _field("required", "input", f"{name} is required")
        for name, spec in inputs.items()
        if spec.get("required") and name not in values
    ]
    for name, value in values.items():
        spec = inputs.get(name)
        where = f"input.{name}"
        if spec is None:
            problems.append(_not_allowed("input", name))
            continue
        kind = JSON_TYPES.get(type(value), "unknown")
        wanted = spec["type"]
        ok = (
            kind == wanted
            or (wanted == "number" and kind == "integer")
            or (wanted == "integer" and kind == "number" and float(value).is_integer())
        )
        if not ok:
            description = f"Invalid type. Expected: {wanted}, given: {kind}"
            problems.append(_field("invalid_type", where, description))
        elif "enum" in spec and value not in spec["enum"]:
            options = ", ".join(f'"{option}"' for option in spec["enum"])
            description = f"{name} must be one of the following: {options}"
            problems.append(_field("enum", where, description))
        elif "minimum" in spec and value < spec["minimum"]:
            description = f"Must be greater than or equal to {spec['minimum']}"
            problems.append(_field("number_gte", where, description))
        elif "maximum" in spec and value > spec["maximum"]:
            description = f"Must be less than or equal to {spec['maximum']}"
            problems.append(_field("number_lte", where, description))
    return problems


def _output_size(values: dict) -> tuple[int, int]:
    """The size a model makes from its inputs: width/height, an aspect ratio or a size name."""
    aspect = values.get("aspect_ratio")
    if "width" in values and aspect in (None, "custom") and values["width"] is not None:
        return int(values["width"]), int(values["height"])
    if aspect in FLUX_SIZES:
        width, height = FLUX_SIZES[aspect]
        if values.get("megapixels") == "0.25":
            width, height = width // 32 * 16, height // 32 * 16
        return width, height
    size = str(values.get("size") or "")
    if "x" in size:
        width, height = size.split("x")
        return int(width), int(height)
    return 1024, 1024


def _not_allowed(where: str, name: str) -> dict:
    return _field(
        "additional_property_not_allowed", where, f"Additional property {name} is not allowed"
    )


OUTPUTS = {
    "array": {"type": "array", "title": "Output", "items": {"type": "string", "format": "uri"}},
    "uri": {"type": "string", "title": "Output", "format": "uri"},
    "object": {"type": "object", "title": "Output",
               "properties": {"image": {"type": "string", "format": "uri"}}},
}


def _openapi_schema(inputs: dict, output: str = "array") -> dict:
    """A Cog schema as Replicate serves it: each enum is a named schema behind allOf/$ref."""
    properties, named = {}, {}
    for order, (name, spec) in enumerate(inputs.items()):
        prop = {key: value for key, value in spec.items() if key != "required"}
        if "enum" in prop:
            named[name] = {"enum": prop.pop("enum"), "type": prop.pop("type"), "title": name,
                           "description": "An enumeration."}
            prop["allOf"] = [{"$ref": f"#/components/schemas/{name}"}]
        prop.update({"title": name.replace("_", " ").title(), "x-order": order})
        properties[name] = prop
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {
            "schemas": {
                "Input": {
                    "type": "object",
                    "title": "Input",
                    "required": [name for name, spec in inputs.items() if spec.get("required")],
                    "properties": properties,
                },
                "Output": OUTPUTS[output],
                **named,
            }
        },
    }


@dataclass
class _Prediction:
    id: str
    model: str
    version: str
    input: dict
    seed: int
    steps: int
    faults: dict
    run_time: float
    files: list[tuple[int, int, str]]  # (width, height, format) of each output
    error: str | None = None
    shape: str = "array"  # of the output: array, uri or object
    has_seed: bool = True
    created: float = field(default_factory=time.time)
    canceled: float | None = None

    def finished_at(self) -> float | None:
        if self.canceled is not None:
            return self.canceled
        if "never" in self.faults:
            return None
        return self.created + self.run_time

    def status(self, now: float) -> str:
        if self.canceled is not None:
            return "canceled"
        done = self.finished_at()
        if done is None or now < done:
            return "processing"
        return "failed" if self.error else "succeeded"


class FakeReplicate(FakeServer):
    """Fake Replicate server.

    FakeReplicate(api_token="r8_test_token", host="127.0.0.1", port=0).start() -> listening;
    `.url` is the base URL (REPLICATE_BASE_URL, no /v1); `.stop()` shuts it down.

    Attributes: `api_token`; `run_time` (seconds a prediction takes, default 0.2);
    `max_wait` (cap on how long a `Prefer: wait` create is held, default 5.0);
    `requests` (every request received); `cancels` (ids of predictions a cancel was received for);
    `predictions` (id -> prediction JSON as it stands now); `finish(id)` (ends a running
    prediction now); `reset()` (forgets all of it and restores run_time and max_wait).
    """

    def __init__(
        self,
        api_token: str = "r8_test_token",
        host: str = "127.0.0.1",
        port: int = 0,
        run_time: float = 0.2,
        max_wait: float = 5.0,
    ):
        super().__init__(host, port)
        self.api_token = api_token
        self._defaults = (run_time, max_wait)
        self.run_time, self.max_wait = run_time, max_wait
        self._state = threading.Condition()
        self._predictions: dict[str, _Prediction] = {}
        self._cancels: list[str] = []
        self._files: dict[tuple[str, int], bytes] = {}

    @property
    def cancels(self) -> list[str]:
        with self._state:
            return list(self._cancels)

    @property
    def predictions(self) -> dict[str, dict]:
        with self._state:
            return {pid: self._json(p) for pid, p in self._predictions.items()}

    def reset(self) -> None:
        super().reset()
        with self._state:
            self._predictions.clear()
            self._cancels.clear()
            self._files.clear()
        self.run_time, self.max_wait = self._defaults

    def finish(self, prediction_id: str) -> None:
        """End a running prediction now, as if its run time were up (a test's event, no clock)."""
        with self._state:
            prediction = self._predictions[prediction_id]
            prediction.run_time = max(time.time() - prediction.created, 0.001)
            self._state.notify_all()

    def stop(self) -> None:
        self.stopping.set()
        with self._state:
            self._state.notify_all()
        super().stop()

    # --- routing ---------------------------------------------------------------------------

    def handle(self, request: Request):
        path, method = request.path, request.method
        if path.startswith("/files/") and method == "GET":
            return self._file(path[len("/files/") :])  # public, like the real file host
        if request.headers.get("authorization") != f"Bearer {self.api_token}":
            return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")

        routes = [
            ("GET", r"/v1/account", self._account),
            ("GET", r"/v1/models/([^/]+/[^/]+)", self._model),
            ("GET", r"/v1/models/([^/]+/[^/]+)/versions", self._versions),
            ("GET", r"/v1/models/([^/]+/[^/]+)/versions/([^/]+)", self._version),
            ("POST", r"/v1/models/([^/]+/[^/]+)/predictions", self._create_for_model),
            ("POST", r"/v1/predictions", self._create_for_version),
            ("GET", r"/v1/predictions", self._list),
            ("GET", r"/v1/predictions/([^/]+)", self._get),
            ("POST", r"/v1/predictions/([^/]+)/cancel", self._cancel),
        ]
        allowed = False
        for route_method, pattern, view in routes:
            match = re.fullmatch(pattern, path)
            if match:
                if route_method == method:
                    return view(request, *match.groups())
                allowed = True
        if allowed:
            return _problem(405, "Method not allowed", f"{method} is not allowed on {path}")
        return _problem(404, "Not found", "Not found.")

    # --- models ----------------------------------------------------------------------------

    def _account(self, request):
        return Response.json(
            200, {"type": "user", "username": "test", "name": "Test User", "github_url": None}
        )

    def _version_json(self, model: str) -> dict:
        spec = MODELS[model]
        return {
            "id": spec["version"],
            "created_at": "2023-10-10T17:00:00.000000Z",
            "cog_version": "0.8.6",
            "openapi_schema": _openapi_schema(spec["inputs"], spec.get("output", "array")),
        }

    def _model(self, request, model):
        if model not in MODELS:
            return _problem(404, "Not found", "Not found.")
        owner, name = model.split("/")
        return Response.json(
            200,
            {
                "url": f"https://replicate.com/{model}",
                "owner": owner,
                "name": name,
                "description": MODELS[model]["description"],
                "visibility": "public",
                "github_url": None,
                "paper_url": None,
                "license_url": None,
                "run_count": 0,
                "cover_image_url": None,
                "default_example": None,
                "latest_version": self._version_json(model),
            },
        )

    def _versions(self, request, model):
        if model not in MODELS:
            return _problem(404, "Not found", "Not found.")
        return Response.json(
            200, {"next": None, "previous": None, "results": [self._version_json(model)]}
        )

    def _version(self, request, model, version):
        if model not in MODELS or MODELS[model]["version"] != version:
            return _problem(404, "Not found", "Not found.")
        return Response.json(200, self._version_json(model))

    # --- predictions -----------------------------------------------------------------------

    def _create_for_model(self, request, model):
        if model not in MODELS or not MODELS[model]["official"]:
            # Community models are run by version; only official ones have this endpoint.
            return _problem(
                404, "Not found", f"The model {model} does not exist or is not an official model."
            )
        return self._create(request, model, allow_version=False)

    def _create_for_version(self, request):
        return self._create(request, None, allow_version=True)

    def _create(self, request: Request, model: str | None, allow_version: bool):
        body = request.json
        if request.content_type != "application/json" or not isinstance(body, dict):
            return _problem(400, "Invalid request body", "The request body must be a JSON object.")
        allowed = BODY_KEYS + (("version",) if allow_version else ())
        problems = [_not_allowed("(root)", key) for key in body if key not in allowed]
        required = ("input", "version") if allow_version else ("input",)
        problems += [
            _field("required", "(root)", f"{key} is required")
            for key in required
            if key not in body
        ]
        if problems:
            return _invalid(problems)
        if allow_version:
            model = VERSIONS.get(body["version"]) if isinstance(body["version"], str) else None
            if model is None:
                return _problem(
                    422,
                    "Invalid version or not permitted",
                    "The specified version does not exist (or perhaps you don't have permission "
                    "to use it?)",
                )
        problems = _validate_input(body["input"], MODELS[model]["inputs"])
        if problems:
            return _invalid(problems)
        wait = self._parse_prefer(request.headers.get("prefer"))
        if isinstance(wait, Response):
            return wait

        faults, unknown = parse_faults(body["input"].get("prompt") or "", FAULTS)
        if unknown:
            return _problem(400, "Unknown fault marker", f"The fake does not know {unknown[0]}.")
        if "only-seed" in faults and str(body["input"].get("seed")) != faults["only-seed"]:
            faults = {}  # the markers concern another member of a batch
        if "drop" in faults:
            return DROP
        if "echo-auth" in faults:
            received = request.headers.get("authorization", "")
            return _problem(400, "Bad request", f"Malformed authorization header: {received}")
        if "422" in faults:
            return _invalid([_field("invalid", "input.prompt", "prompt was rejected")])
        for code, (status, title, detail, headers) in HTTP_FAULTS.items():
            if code in faults:
                return _problem(status, title, detail, headers)

        prediction = self._new_prediction(model, body["input"], faults)
        with self._state:
            self._predictions[prediction.id] = prediction
        if wait is None:
            return Response.json(201, self._json(prediction, status="starting"))
        return Response.json(201, self._hold(prediction, min(wait, self.max_wait)))

    @staticmethod
    def _parse_prefer(header):
        """Seconds asked for by `Prefer: wait[=N]`, None when absent, or an error Response."""
        for item in (header or "").split(","):
            item = item.strip()
            if item == "wait":
                return 60
            if item.startswith("wait="):
                value = item[len("wait=") :]
                if value.isdigit() and 1 <= int(value) <= 60:
                    return int(value)
                return _problem(
                    400,
                    "Invalid Prefer header",
                    "wait must be an integer between 1 and 60 seconds.",
                )
        return None

    def _new_prediction(self, model: str, given: dict, faults: dict) -> _Prediction:
        inputs = MODELS[model]["inputs"]
        values = {name: given.get(name, spec.get("default")) for name, spec in inputs.items()}
        seed = values.get("seed")
        seed = int(seed) if seed is not None else random.randint(0, 2**32 - 1)
        if model == SDXL:
            seed = int(values["seed"]) if values["seed"] is not None else random.randint(0, 65535)
        width, height = _output_size(values)
        fmt = values.get("output_format", "png")
        error = None
        if "nsfw" in faults:
            error = NSFW_ERRORS.get(model, NSFW_ERRORS[FLUX_SCHNELL])
        elif "model-error" in faults:
            error = MODEL_ERROR
        elif width % 8 or height % 8 or width <= 0 or height <= 0:
            error = (
                "ValueError: `height` and `width` have to be divisible by 8 "
                f"but are {height} and {width}."
            )
        elif width * height > 4096 * 4096:
            error = "torch.OutOfMemoryError: CUDA out of memory."
        run_time = float(faults["slow"]) if faults.get("slow") else self.run_time
        return _Prediction(
            id=_new_id(),
            model=model,
            version=MODELS[model]["version"],
            input=given,
            seed=seed,
            steps=int(values.get("num_inference_steps") or values.get("steps") or 1),
            faults=faults,
            run_time=run_time,
            files=[(width, height, fmt)] * int(values.get("num_outputs") or 1),
            shape=MODELS[model].get("output", "array"),
            has_seed="seed" in inputs,
            error=error,
        )

    def _hold(self, prediction: _Prediction, seconds: float) -> dict:
        deadline = time.time() + seconds
        with self._state:
            while not self.stopping.is_set():
                now = time.time()
                if prediction.status(now) != "processing" or now >= deadline:
                    break
                done = prediction.finished_at()
                until = deadline if done is None else min(deadline, done)
                self._state.wait(max(0.0, until - now) + 0.001)
            status = prediction.status(time.time())
            if status == "processing":
                # Still running when the wait ends: the real API answers "starting".
                return self._json(prediction, status="starting")
            if status == "succeeded":
                if "wait-empty" in prediction.faults:
                    return self._json(prediction, status="processing", output=None)
                return self._json(prediction, status="processing")
            return self._json(prediction)

    def _get(self, request, pid):
        with self._state:
            prediction = self._predictions.get(pid)
            if prediction is None:
                return _problem(404, "Not found", "Not found.")
            return Response.json(200, self._json(prediction))

    def _list(self, request):
        with self._state:
            results = [self._json(p) for p in reversed(self._predictions.values())]
        return Response.json(200, {"next": None, "previous": None, "results": results})

    def _cancel(self, request, pid):
        with self._state:
            prediction = self._predictions.get(pid)
            if prediction is None:
                return _problem(404, "Not found", "Not found.")
            self._cancels.append(pid)
            if prediction.status(time.time()) == "processing":
                prediction.canceled = time.time()
                self._state.notify_all()
            return Response.json(200, self._json(prediction))

    def _json(self, p: _Prediction, status: str | None = None, **override) -> dict:
        now = time.time()
        actual = p.status(now)
        status = status or actual
        logs = f"Using seed: {p.seed}\n" if p.has_seed else ""
        if status != "starting":
            fraction = min(1.0, (now - p.created) / p.run_time) if p.run_time else 1.0
            if actual == "canceled" or "never" in p.faults:
                fraction = min(fraction, 0.5)
            current = int(fraction * p.steps)
            bar = "█" * int(fraction * 10)
            logs += f"{int(fraction * 100):3d}%|{bar:<10}| {current}/{p.steps} [00:01<00:00]\n"
        output = None
        if actual == "succeeded" and status != "starting":
            output = [self._output_url(p, i) for i in range(len(p.files))]
            if p.shape == "uri":
                output = output[0]
            elif p.shape == "object":
                output = {"image": output[0]}
        finished = actual in ("succeeded", "failed", "canceled")
        completed = p.finished_at() if finished else None
        body = {
            "id": p.id,
            "model": p.model,
            "version": p.version,
            "input": p.input,
            "logs": logs,
            "output": output,
            "data_removed": False,
            "error": p.error if actual == "failed" else None,
            "status": status,
            "source": "api",
            "created_at": _iso(p.created),
            "started_at": None if status == "starting" else _iso(p.created + 0.01),
            "completed_at": _iso(completed) if completed else None,
            "urls": {
                "get": f"{self.url}/v1/predictions/{p.id}",
                "cancel": f"{self.url}/v1/predictions/{p.id}/cancel",
                "web": f"https://replicate.com/p/{p.id}",
            },
            "metrics": {
                "predict_time": round(completed - p.created, 3),
                "image_count": len(p.files),
            }
            if actual == "succeeded"
            else {},
        }
        body.update(override)
        return body

    # --- output files ----------------------------------------------------------------------

    def _output_url(self, p: _Prediction, index: int) -> str:
        fmt = p.files[index][2]
        if "data-url" in p.faults:
            data = self._file_bytes(p, index)
            return f"data:{MIME[EXT[fmt]]};base64,{base64.b64encode(data).decode()}"
        return f"{self.url}/files/{p.id}/out-{index}.{fmt}"

    def _file_bytes(self, p: _Prediction, index: int) -> bytes:
        key = (p.id, index)
        if key not in self._files:
            width, height, fmt = p.files[index]
            data = render_image(width, height, (p.seed + index) % 2**32, EXT[fmt])
            self._files[key] = corrupt(data, p.faults)
        return self._files[key]

    def _file(self, rest: str):
        match = re.fullmatch(r"([a-z0-9]+)/out-(\d+)\.(png|jpg|webp)", rest)
        with self._state:
            p = self._predictions.get(match.group(1)) if match else None
            index = int(match.group(2)) if match else -1
            if (
                p is None
                or index >= len(p.files)
                or p.files[index][2] != match.group(3)
                or p.status(time.time()) != "succeeded"
                or "output-404" in p.faults
            ):
                return Response(404, b"Not Found", {"Content-Type": "text/plain"})
            data = self._file_bytes(p, index)
            return Response(200, data, {"Content-Type": MIME[EXT[p.files[index][2]]]})


def main(argv=None) -> None:
    serve_from_command_line(
        lambda token, host, port: FakeReplicate(api_token=token, host=host, port=port),
        "Run the fake Replicate API.", "token", "r8_test_token", argv)


if __name__ == "__main__":
    main()
