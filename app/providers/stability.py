"""Stability AI: SD 3.5, Core and Ultra through the v2beta API, SDXL 1.0 through v1.

v2beta takes multipart form fields and an aspect ratio (no width, height or steps) and answers
with the raw image; v1 takes JSON with exact sizes, steps and CFG and answers with base64.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import textwrap
import time

import requests

from .base import (
    ContentModerated,
    CreditsExhausted,
    GenerationRequest,
    GenerationResult,
    Model,
    Option,
    Provider,
    ProviderError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)

logger = logging.getLogger(__name__)

# The size each v2beta aspect ratio gives (SD3's, about 1 MP; Core and Ultra are close to it).
ASPECT_SIZES = {
    "21:9": (1536, 640), "16:9": (1344, 768), "3:2": (1216, 832), "5:4": (1088, 896),
    "1:1": (1024, 1024), "4:5": (896, 1088), "2:3": (832, 1216), "9:16": (768, 1344),
    "9:21": (640, 1536),
}
SDXL_SIZES = ((1024, 1024), (1152, 896), (896, 1152), (1216, 832), (1344, 768), (768, 1344),
              (1536, 640), (640, 1536))
ENDPOINTS = {
    "sd3": "/v2beta/stable-image/generate/sd3",
    "core": "/v2beta/stable-image/generate/core",
    "ultra": "/v2beta/stable-image/generate/ultra",
    "v1": "/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image",
}

STYLE_PRESETS = (
    "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance",
    "fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk",
    "origami", "photographic", "pixel-art", "tile-texture",
)
STYLE = Option("style_preset", "string", None, "Guides the image towards a style.",
               STYLE_PRESETS)
V1_SAMPLERS = ("DDIM", "DDPM", "K_DPMPP_2M", "K_DPMPP_2S_ANCESTRAL", "K_DPM_2", "K_DPM_2_ANCESTRAL",
               "K_EULER", "K_EULER_ANCESTRAL", "K_HEUN", "K_LMS")
SAMPLER = Option("sampler", "string", None, "Which sampler to use (Stability picks one when "
                 "unset).", V1_SAMPLERS)


def _format(*formats: str) -> Option:
    return Option("output_format", "string", "png", "The file format of the image (only PNG "
                  "files carry the parameters text).", formats)


SD3_OPTIONS = (STYLE, _format("png", "jpeg"))
CORE_OPTIONS = (STYLE, _format("png", "jpeg", "webp"))

V2_SIZES = tuple(ASPECT_SIZES.values())
SIZE = frozenset({"width", "height"})
SD3 = SIZE | {"negative_prompt", "cfg_scale"}
SD3_CFG = {"cfg_scale": (1.0, 10.0)}
RATIO_NOTE = "Width x height picks the nearest aspect ratio"

# name: (endpoint, Model)
MODELS = {model.name: (endpoint, model) for endpoint, model in (
    ("sd3", Model("sd3.5-large", "SD 3.5 Large", SD3, SD3_CFG, V2_SIZES,
                  f"{RATIO_NOTE}; 6.5 credits an image.", SD3_OPTIONS)),
    ("sd3", Model("sd3.5-large-turbo", "SD 3.5 Large Turbo", SD3 - {"negative_prompt"}, SD3_CFG,
                  V2_SIZES, f"{RATIO_NOTE}; no negative prompt; best with a low CFG; 4 credits.",
                  SD3_OPTIONS)),
    ("sd3", Model("sd3.5-medium", "SD 3.5 Medium", SD3, SD3_CFG, V2_SIZES,
                  f"{RATIO_NOTE}; 3.5 credits an image.", SD3_OPTIONS)),
    ("sd3", Model("sd3.5-flash", "SD 3.5 Flash", SD3, SD3_CFG, V2_SIZES,
                  f"{RATIO_NOTE}; 2.5 credits an image.", SD3_OPTIONS)),
    ("core", Model("core", "Stable Image Core", SIZE | {"negative_prompt"}, {}, V2_SIZES,
                   f"{RATIO_NOTE} (about 1.5 MP, sizes approximate); 3 credits an image.",
                   CORE_OPTIONS)),
    ("ultra", Model("ultra", "Stable Image Ultra", SIZE | {"negative_prompt"}, {}, V2_SIZES,
                    f"{RATIO_NOTE}; 8 credits an image.", CORE_OPTIONS)),
    ("v1", Model("sdxl-1.0", "SDXL 1.0", SD3 | {"steps"}, {}, SDXL_SIZES,
                 "Exact sizes from a fixed list (the nearest is used), steps and CFG scale.",
                 (STYLE, SAMPLER))),
)}

CONNECT_TIMEOUT = 10.0
MAX_BODY = 64 * 1024 * 1024
RATE_LOCKOUT = 60  # seconds Stability locks a client out after its rate limit
MAX_QUOTE = 300
BALANCE_TIMEOUT = (2.0, 3.0)  # connect, read: the form waits for it
BALANCE_CACHE = 60.0  # seconds a balance (or the failure to read one) is kept


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The v2beta aspect ratio closest to width:height (compared as log ratios)."""
    wanted = math.log(width / height)
    return min(ASPECT_SIZES, key=lambda r: abs(math.log(_ratio(r)) - wanted))


def _ratio(name: str) -> float:
    w, h = name.split(":")
    return int(w) / int(h)


def nearest_sdxl_size(width: int, height: int) -> tuple[int, int]:
    """The SDXL size closest to width x height in aspect ratio, then in area."""
    wanted = math.log(width / height)
    return min(SDXL_SIZES, key=lambda s: (round(abs(math.log(s[0] / s[1]) - wanted), 9),
                                          abs(s[0] * s[1] - width * height)))


def _int(value, fallback: int) -> int:
    """A positive integer from a header or field, else the fallback."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return fallback
    return number if number > 0 else fallback


class StabilityProvider(Provider):
    """Stability AI's hosted models, called over HTTPS with the account's API key."""

    name = "stability"
    label = "Stability AI"

    @property
    def configured(self) -> bool:
        return bool(self.config.get("STABILITY_API_KEY"))

    @property
    def models(self) -> list[Model]:
        return [model for _, model in MODELS.values()]

    @property
    def default_model(self) -> str:
        wanted = self.config.get("STABILITY_MODEL")
        return wanted if wanted in MODELS else "sd3.5-large"

    def balance(self) -> float | None:
        """The account's credits (GET /v1/user/balance), cached; None when it cannot be read."""
        now = time.monotonic()
        cached = getattr(self, "_balance", None)
        if cached is not None and now - cached[0] < BALANCE_CACHE:
            return cached[1]
        credits = None
        try:
            response = requests.get(
                self.config["STABILITY_BASE_URL"].rstrip("/") + "/v1/user/balance",
                headers={"Authorization": f"Bearer {self.config['STABILITY_API_KEY']}",
                         "Accept": "application/json"}, timeout=BALANCE_TIMEOUT)
            if response.status_code == 200:
                value = response.json().get("credits")
                if isinstance(value, int | float) and not isinstance(value, bool):
                    credits = float(value)
            else:
                logger.warning("Stability AI's balance answered HTTP %s", response.status_code)
        except (requests.RequestException, ValueError, AttributeError) as exc:
            logger.warning("Could not read Stability AI's balance: %s", type(exc).__name__)
        self._balance = (now, credits)
        return credits

    def generate(self, request: GenerationRequest) -> GenerationResult:
        endpoint, model = MODELS[request.model]
        if endpoint == "v1":
            return self._v1(request)
        fields = {
            "prompt": request.prompt,
            "aspect_ratio": nearest_aspect_ratio(request.width, request.height),
            "seed": str(request.seed),
            "output_format": request.options.get("output_format", "png"),
        }
        if "style_preset" in request.options:
            fields["style_preset"] = request.options["style_preset"]
        if endpoint == "sd3":
            fields.update(model=model.name, mode="text-to-image", cfg_scale=f"{request.cfg_scale:g}")
        if request.negative_prompt and "negative_prompt" in model.honours:
            fields["negative_prompt"] = request.negative_prompt
        # The empty file part makes requests build multipart/form-data, as Stability's examples do.
        response, body = self._post(ENDPOINTS[endpoint], request.timeout, data=fields,
                                    files={"none": ""}, headers={"Accept": "image/*"})
        if not response.headers.get("Content-Type", "").startswith("image/") or not body:
            raise UpstreamError("Stability AI answered without an image.")
        return self._result(body, response.headers.get("finish-reason"),
                            _int(response.headers.get("seed"), request.seed))

    def _v1(self, request: GenerationRequest) -> GenerationResult:
        width, height = nearest_sdxl_size(request.width, request.height)
        prompts = [{"text": request.prompt, "weight": 1.0}]
        if request.negative_prompt:
            prompts.append({"text": request.negative_prompt, "weight": -1.0})
        payload = {"text_prompts": prompts, "width": width, "height": height,
                   "steps": request.steps, "cfg_scale": request.cfg_scale, "seed": request.seed,
                   "samples": 1, **request.options}
        _, body = self._post(ENDPOINTS["v1"], request.timeout, json=payload,
                             headers={"Accept": "application/json"})
        try:
            artifact = json.loads(body)["artifacts"][0]
            data = base64.b64decode(artifact["base64"], validate=True)
            finish, seed = artifact.get("finishReason"), _int(artifact.get("seed"), request.seed)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise UpstreamError("Stability AI answered without a usable image.") from None
        if not data:
            raise UpstreamError("Stability AI answered without an image.")
        return self._result(data, finish, seed)

    def _result(self, data: bytes, finish: str | None, seed: int) -> GenerationResult:
        if finish == "ERROR":
            raise UpstreamError("Stability AI reported an error while generating the image.")
        return GenerationResult(data=data, seed=seed, content_filtered=finish == "CONTENT_FILTERED")

    def _post(self, path: str, timeout: float, *, headers: dict, **kwargs):
        """POST and read the whole answer within `timeout` seconds; raise on any failure."""
        url = self.config["STABILITY_BASE_URL"].rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.config['STABILITY_API_KEY']}", **headers}
        deadline = time.monotonic() + timeout
        body = bytearray()
        try:
            with requests.Session() as session, session.post(
                url, headers=headers, timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
                stream=True, **kwargs,
            ) as response:
                for chunk in response.iter_content(256 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise UpstreamError("Stability AI's answer is too large.")
                    if time.monotonic() > deadline:
                        raise requests.Timeout()
        except requests.RequestException as exc:
            # A read timeout in the middle of a body surfaces as a ConnectionError.
            timed_out = isinstance(exc, requests.Timeout) or time.monotonic() >= deadline
            logger.warning("Stability AI request to %s failed: %s", path, type(exc).__name__)
            if timed_out:
                raise UpstreamTimeout(f"Stability AI did not answer within {timeout:.3g} s "
                                      "(GENERATION_TIMEOUT).") from None
            raise UpstreamError("Could not reach Stability AI (the connection failed).") from None
        if response.status_code != 200:
            raise self._failure(response, bytes(body))
        return response, bytes(body)

    def _failure(self, response: requests.Response, body: bytes) -> ProviderError:
        """The contract's error for an error answer, quoting Stability's message (key scrubbed)."""
        status, message = response.status_code, self._quote(body)
        logger.warning("Stability AI answered HTTP %s: %s", status, message or "(no message)")
        said = f": {message}" if message else "."
        if status == 401:
            return UpstreamError("Stability AI rejected the API key (check STABILITY_API_KEY).")
        if status == 402:
            return CreditsExhausted(f"Stability AI: the account is out of credits{said}")
        if status == 403:  # Stability's moderation answer (not charged)
            return ContentModerated(message or "Stability AI's content moderation refused the prompt.")
        if status == 429:
            retry_after = _int(response.headers.get("Retry-After"), RATE_LOCKOUT)
            return RateLimited(f"Stability AI's rate limit was reached{said}",
                               retry_after=retry_after)
        if status in (400, 413, 422):
            return UpstreamError(f"Stability AI refused the request{said}")
        return UpstreamError(f"Stability AI failed (HTTP {status}){said}")

    def _quote(self, body: bytes) -> str:
        """Stability's error text ({"errors": [...]} or v1's {"message"}), short and key-free."""
        try:
            data = json.loads(body)
        except ValueError:
            return ""
        if not isinstance(data, dict):
            return ""
        errors = data.get("errors")
        text = "; ".join(map(str, errors)) if isinstance(errors, list) else data.get("message")
        text = str(text or data.get("name") or "")
        key = self.config.get("STABILITY_API_KEY")
        if key:
            text = text.replace(key, "[redacted]")
        return textwrap.shorten(text, MAX_QUOTE, placeholder=" …")
