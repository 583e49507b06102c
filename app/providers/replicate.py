"""Replicate: SDXL by version, FLUX.1 [schnell] as an official model, or the REPLICATE_MODEL one.

A prediction is created with a bounded `Prefer: wait`, polled until it ends within the request's
deadline (and canceled when it does not, so it stops costing money), and its first output is
downloaded at once, because Replicate deletes outputs after about an hour.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import math
import re
import threading
import time
import weakref
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes, urlsplit

import httpx

from .base import (
    ContentModerated,
    CreditsExhausted,
    GenerationRequest,
    GenerationResult,
    Model,
    NotConfigured,
    Provider,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from .replicate_schema import (
    InputMap,
    SchemaError,
    build_inputs,
    describe_model,
    input_properties,
    nearest_ratio,
)

if TYPE_CHECKING:
    from replicate.exceptions import ReplicateError
    from replicate.prediction import Prediction

SDXL = "stability-ai/sdxl:39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
FLUX_SCHNELL = "black-forest-labs/flux-schnell"
FLUX_DEV = "black-forest-labs/flux-dev"
FLUX_PRO = "black-forest-labs/flux-1.1-pro"
SD35_LARGE = "stability-ai/stable-diffusion-3.5-large"
FLUX_SIZES = {  # aspect ratio: the size FLUX.1 makes for it at 1 megapixel
    "1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832),
    "2:3": (832, 1216), "4:5": (896, 1088), "5:4": (1088, 896), "3:4": (896, 1152),
    "4:3": (1152, 896), "9:16": (768, 1344), "9:21": (640, 1536),
}
SD_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "9:16", "9:21")


def _enum(default, values, description=""):
    return {"type": "string", "default": default, "enum": list(values), "description": description}


def _number(kind, default, low, high, description=""):
    return {"type": kind, "default": default, "minimum": low, "maximum": high,
            "description": description}


def _flag(default, description):
    return {"type": "boolean", "default": default, "description": description}


PROMPT = {"prompt": {"type": "string"}}
SEED = {"seed": {"type": "integer", "description": "Random seed."}}
FORMAT = {"output_format": _enum("webp", ["webp", "jpg", "png"], "Format of the output image.")}
FLUX_COMMON = {
    **PROMPT, "aspect_ratio": _enum("1:1", FLUX_SIZES), **SEED, **FORMAT,
    "megapixels": _enum("1", ["1", "0.25"], "Approximate number of megapixels."),
    "go_fast": _flag(True, "Faster predictions with an fp8-quantized model."),
}
# The inputs of the built-in models, as their schemas on Replicate name them.
BUILT_IN = (
    (SDXL, "Stable Diffusion XL (stability-ai/sdxl)", {
        **PROMPT, "negative_prompt": {"type": "string"}, "width": {"type": "integer"},
        "height": {"type": "integer"},
        "num_inference_steps": _number("integer", 50, 1, 500),
        "guidance_scale": _number("number", 7.5, 1, 50), **SEED,
        "scheduler": _enum("K_EULER", ["DDIM", "DPMSolverMultistep", "HeunDiscrete", "KarrasDPM",
                                       "K_EULER_ANCESTRAL", "K_EULER", "PNDM"], "Scheduler."),
        "refine": _enum("no_refiner", ["no_refiner", "expert_ensemble_refiner",
                                       "base_image_refiner"], "Which refine style to use."),
    }, dict(official=False, version=SDXL.partition(":")[2]),
        "Run by version; makes any size asked for and takes every parameter. Its safety "
        "checker refuses NSFW results."),
    (FLUX_SCHNELL, "FLUX.1 [schnell] (black-forest-labs/flux-schnell)",
     {**FLUX_COMMON, "num_inference_steps": _number("integer", 4, 1, 4)}, dict(official=True),
     "Fast official model: width x height becomes the nearest of its aspect ratios; it runs a "
     "fixed 4 steps with no guidance and no negative prompt. PNG output unless chosen."),
    (FLUX_DEV, "FLUX.1 [dev] (black-forest-labs/flux-dev)",
     {**FLUX_COMMON, "num_inference_steps": _number("integer", 28, 1, 50),
      "guidance": _number("number", 3, 0, 10)}, dict(official=True),
     "Official model: the nearest aspect ratio; steps, and CFG scale as its guidance (up to "
     "10); no negative prompt. $0.025 an image."),
    (FLUX_PRO, "FLUX1.1 [pro] (black-forest-labs/flux-1.1-pro)", {
        **PROMPT, "aspect_ratio": _enum("1:1", [*FLUX_SIZES, "custom"]), **SEED,
        "width": _number("integer", None, 256, 1440), "height": _number("integer", None, 256, 1440),
        **FORMAT, "output_quality": _number("integer", 80, 0, 100, "Quality of jpg/webp output."),
        "safety_tolerance": _number("integer", 2, 1, 6, "1 is the strictest, 6 the most "
                                                        "permissive."),
        "prompt_upsampling": _flag(False, "Let the model rewrite the prompt for more detail."),
    }, dict(official=True),
        "Official model: the nearest aspect ratio; no steps, guidance or negative prompt. "
        "$0.04 an image."),
    (SD35_LARGE, "Stable Diffusion 3.5 Large (stability-ai/stable-diffusion-3.5-large)", {
        **PROMPT, "aspect_ratio": _enum("1:1", SD_RATIOS), **SEED,
        "steps": _number("integer", 35, 1, 50), "cfg": _number("number", 3.5, 0, 20), **FORMAT,
    }, dict(official=True),
        "Official model: the nearest aspect ratio, steps and CFG scale; no negative prompt."),
)
BUILT_IN_OPTIONS = {SDXL: ("scheduler", "refine"),
                    FLUX_SCHNELL: ("output_format", "megapixels", "go_fast"),
                    FLUX_DEV: ("output_format", "megapixels", "go_fast"),
                    FLUX_PRO: ("output_format", "output_quality", "safety_tolerance",
                               "prompt_upsampling"),
                    SD35_LARGE: ("output_format",)}
# PNG unless another format is chosen: only PNG files carry the parameters text.
PNG_FIRST = {"output_format": "png"}


def _built_in() -> dict[str, tuple[Model, InputMap]]:
    table = {}
    for ref, label, properties, how, notes in BUILT_IN:
        table[ref] = describe_model(ref, label, properties, notes=notes,
                                    options=BUILT_IN_OPTIONS[ref], defaults=PNG_FIRST,
                                    sizes=FLUX_SIZES, **how)
    return table


BUILT_IN_MODELS = _built_in()
SCHEMA_RETRY = 60.0  # seconds before a schema that could not be read is asked for again
SCHEMA_TIMEOUT = httpx.Timeout(8.0, connect=3.0)

MAX_WAIT = 60  # the longest `Prefer: wait` Replicate accepts
POLL_INTERVAL = 0.5
HTTP_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
DOWNLOAD_TIMEOUT = 60.0
MAX_BYTES = 50 * 1024 * 1024
DEFAULT_RETRY_AFTER = 10
SEED_LOG = re.compile(r"Using seed: (\d+)")
SAFETY_REFUSAL = re.compile(r"nsfw|safety", re.IGNORECASE)
BEARER = re.compile(r"Bearer\s+\S+", re.IGNORECASE)


def aspect_ratio(width: int, height: int) -> str:
    """The FLUX aspect ratio nearest to width:height, on a log scale (so 2:1 and 1:2 are alike)."""
    return nearest_ratio(width, height, FLUX_SIZES)


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def output_url_allowed(url: str, base_url: str) -> bool:
    """https only, unless the API itself is on this machine (a local fake serving http)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return (parts.scheme == "http" and is_loopback(parts.hostname)
            and is_loopback(urlsplit(base_url).hostname))


def decode_data_url(url: str) -> bytes:
    header, comma, payload = url.removeprefix("data:").partition(",")
    if not comma or len(payload) > MAX_BYTES * 4 // 3 + 4:
        raise UpstreamError("Replicate's output is a malformed or oversized data: URL.")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise UpstreamError("Replicate's output is a data: URL that does not decode.") from None


def first_output(output):
    """The first file of an output of any shape: one URL, a list, an object holding one."""
    if isinstance(output, dict):
        return next((found for value in output.values()
                     if (found := first_output(value)) is not None), None)
    if isinstance(output, list | tuple):
        return next((found for item in output if (found := first_output(item)) is not None),
                    None)
    from replicate.helpers import FileOutput

    if isinstance(output, str | FileOutput):
        return output or None
    if output is not None and hasattr(output, "__next__"):  # a streamed (iterator) output
        return next((found for item in output if (found := first_output(item)) is not None),
                    None)
    return None


class SchemaModel:
    """A model named in REPLICATE_MODELS (or REPLICATE_MODEL): its schema read once per version.

    The schema is fetched lazily, then kept; a failure is kept for SCHEMA_RETRY seconds as the
    reason the model is unavailable, and the rest of the app works meanwhile.
    """

    def __init__(self, ref: str):
        self.ref = ref
        self._lock = threading.Lock()
        self._read: tuple[Model, InputMap] | None = None
        self._failed_at = -math.inf
        self._failure = ""

    def get(self, client) -> tuple[Model, InputMap | None]:
        if self._read is not None:
            return self._read
        from replicate.exceptions import ReplicateError

        with self._lock:
            if self._read is None and time.monotonic() - self._failed_at >= SCHEMA_RETRY:
                try:
                    self._read = self._fetch(client)
                except (SchemaError, ReplicateError, httpx.HTTPError, ValueError,
                        AttributeError, TypeError) as exc:
                    self._failed_at, self._failure = time.monotonic(), self._reason(exc)
        if self._read is not None:
            return self._read
        return Model(self.ref, self.ref, honours=frozenset(), takes_seed=False,
                     unavailable=f"unavailable: {self._failure}",
                     notes=f"Named in REPLICATE_MODELS; its schema could not be read "
                           f"({self._failure})."), None

    def _fetch(self, client) -> tuple[Model, InputMap]:
        if client is None:
            raise SchemaError("REPLICATE_API_TOKEN is not set")
        name, _, version_id = self.ref.partition(":")
        model = client.models.get(name)
        version = model.versions.get(version_id) if version_id else model.latest_version
        if version is None:
            raise SchemaError(f"Replicate lists no version of {name}")
        properties = input_properties(version.openapi_schema)
        how = "its version" if version_id else f"its latest version ({version.id[:12]})"
        return describe_model(self.ref, self.ref, properties, version=version.id,
                              notes=f"Read from its schema on Replicate and run by {how}.")

    @staticmethod
    def _reason(exc: Exception) -> str:
        from replicate.exceptions import ReplicateError

        if isinstance(exc, ReplicateError):
            return f"Replicate answered HTTP {exc.status} ({exc.title or 'error'})"
        if isinstance(exc, httpx.HTTPError):
            return f"could not reach Replicate ({type(exc).__name__})"
        if isinstance(exc, SchemaError):
            return str(exc)
        return "its schema is not one this app can read"


def _names(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


class ReplicateProvider(Provider):
    name = "replicate"
    label = "Replicate"

    def __init__(self, config: dict):
        super().__init__(config)
        self.token = config.get("REPLICATE_API_TOKEN") or ""
        base_url = (config.get("REPLICATE_BASE_URL") or "https://api.replicate.com").rstrip("/")
        self.base_url = base_url.removesuffix("/v1")
        self._default = config.get("REPLICATE_MODEL") or SDXL
        extra = [ref for ref in (self._default, *_names(config.get("REPLICATE_MODELS")))
                 if ref not in BUILT_IN_MODELS]
        self._extra = {ref: SchemaModel(ref) for ref in dict.fromkeys(extra)}
        self._last_response = threading.local()
        self.client = self.schema_client = None
        if self.token:  # given no token, the client would look for one in the environment
            import replicate  # here: the client and pydantic cost 17 MB, unused without a token

            transport = httpx.HTTPTransport()
            weakref.finalize(self, transport.close)  # its pooled connections go with the provider
            self.client = replicate.Client(
                api_token=self.token, base_url=self.base_url, timeout=HTTP_TIMEOUT,
                transport=transport, event_hooks={"response": [self._remember_retry_after]})
            # Schemas are read while a page or a listing waits: a short timeout of their own.
            self.schema_client = replicate.Client(
                api_token=self.token, base_url=self.base_url, timeout=SCHEMA_TIMEOUT,
                transport=transport)

    @property
    def configured(self) -> bool:
        return bool(self.token)

    @property
    def models(self) -> list[Model]:
        extra = [entry.get(self.schema_client)[0] for entry in self._extra.values()]
        defaults = [m for m in extra if m.name == self._default]
        others = [m for m in extra if m.name != self._default]
        return [*defaults, *(model for model, _ in BUILT_IN_MODELS.values()), *others]

    def model(self, name: str) -> Model | None:
        if name in BUILT_IN_MODELS:
            return BUILT_IN_MODELS[name][0]
        entry = self._extra.get(name)
        return entry.get(self.schema_client)[0] if entry else None

    def _input_map(self, name: str) -> InputMap:
        if name in BUILT_IN_MODELS:
            return BUILT_IN_MODELS[name][1]
        model, inputs = self._extra[name].get(self.schema_client)
        if inputs is None:
            raise UpstreamError(f"Model '{name}' cannot be used now: {model.unavailable}")
        return inputs

    @property
    def default_model(self) -> str:
        return self._default

    def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.client is None:
            raise NotConfigured("Provider 'replicate' is not configured: set REPLICATE_API_TOKEN.")
        from replicate.exceptions import ModelError, ReplicateError

        deadline = time.monotonic() + request.timeout
        try:
            prediction = self._create(request, deadline)
            try:
                output = self._await_output(prediction, deadline)
            except BaseException:
                self._cancel(prediction)
                raise
            data = self._download(output, deadline)
        except ModelError as exc:
            text = self._quote(exc.prediction.error or "no error text")
            if SAFETY_REFUSAL.search(text):
                raise ContentModerated(f"Replicate's model refused the prompt: {text}") from None
            raise UpstreamError(f"The model failed on Replicate: {text}") from None
        except ReplicateError as exc:
            raise self._http_error(exc) from None
        except httpx.TimeoutException:
            raise UpstreamTimeout("Replicate did not answer in time.") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Could not talk to Replicate ({type(exc).__name__}).") from None
        except ValueError:  # a body that is not JSON, or JSON that is not a prediction
            raise UpstreamError("Replicate answered with something that is not a prediction.") \
                from None
        if not self.model(request.model).takes_seed:
            return GenerationResult(data=data, seed=None)
        match = SEED_LOG.search(prediction.logs or "")
        return GenerationResult(data=data, seed=int(match.group(1)) if match else request.seed)

    def _create(self, request: GenerationRequest, deadline: float) -> Prediction:
        inputs = self._input_map(request.model)
        sent = build_inputs(request, inputs)
        if inputs.official:
            return self.client.models.predictions.create(
                model=request.model, input=sent, wait=self._wait(deadline))
        return self.client.predictions.create(version=inputs.version, input=sent,
                                              wait=self._wait(deadline))

    @staticmethod
    def _wait(deadline: float) -> int:
        """Seconds for `Prefer: wait`: 1 to 60, and within the deadline when there is a second.

        Always at least 1: the client sends a create without `wait` with no timeout at all.
        """
        return max(1, min(MAX_WAIT, math.floor(deadline - time.monotonic())))

    @staticmethod
    def _await_output(prediction: Prediction, deadline: float):
        from replicate.exceptions import ModelError

        while True:
            if prediction.status == "failed":
                raise ModelError(prediction)
            if prediction.status == "canceled":
                raise UpstreamError("The prediction was canceled on Replicate.")
            output = first_output(prediction.output)
            if output is not None:  # complete outputs can come while still `processing`
                return output
            if prediction.status == "succeeded":
                raise UpstreamError("Replicate's prediction succeeded without any output.")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamTimeout("Replicate did not finish the image in time; it was canceled.")
            time.sleep(min(POLL_INTERVAL, remaining))
            prediction.reload()

    @staticmethod
    def _cancel(prediction: Prediction) -> None:
        from replicate.exceptions import ReplicateError

        if prediction.status in ("starting", "processing"):
            with contextlib.suppress(ReplicateError, httpx.HTTPError, ValueError):
                prediction.cancel()

    def _download(self, output, deadline: float) -> bytes:
        from replicate.helpers import FileOutput

        url = output.url if isinstance(output, FileOutput) else output
        if not isinstance(url, str):
            raise UpstreamError("Replicate's output is not a file URL.")
        if url.startswith("data:"):
            return decode_data_url(url)
        if not output_url_allowed(url, self.base_url):
            raise UpstreamError("Replicate's output URL is not https; it was not downloaded.")
        timeout = min(DOWNLOAD_TIMEOUT, deadline - time.monotonic())
        if timeout <= 0:
            raise UpstreamTimeout("Replicate did not finish the image in time.")
        chunks, size = [], 0
        try:
            with httpx.stream("GET", url, timeout=timeout) as response:
                if response.status_code != 200:
                    raise UpstreamError(
                        f"Downloading the image from Replicate failed (HTTP {response.status_code}).")
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise UpstreamError("Replicate's output is larger than 50 MB.")
                    if time.monotonic() > deadline:
                        raise UpstreamTimeout("Downloading the image from Replicate took too long.")
                    chunks.append(chunk)
        except httpx.TimeoutException:
            raise UpstreamTimeout("Downloading the image from Replicate took too long.") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"Downloading the image from Replicate failed ({type(exc).__name__}).") from None
        return b"".join(chunks)

    def _http_error(self, exc: ReplicateError) -> UpstreamError:
        detail = self._quote(exc.detail or exc.title or "no detail")
        if exc.status == 401:
            return UpstreamError("Replicate rejected the API token (REPLICATE_API_TOKEN).")
        if exc.status == 402:
            return CreditsExhausted(f"Replicate says the account is out of credit: {detail}")
        if exc.status == 422:
            return UpstreamError(f"Replicate refused the inputs: {detail}")
        if exc.status == 429:
            return RateLimited("Replicate is throttling requests; try again shortly.",
                               retry_after=self._retry_after())
        return UpstreamError(f"Replicate answered HTTP {exc.status}: {detail}")

    def _remember_retry_after(self, response: httpx.Response) -> None:
        # The client's ReplicateError drops the headers: keep the last Retry-After per thread.
        self._last_response.retry_after = response.headers.get("Retry-After")

    def _retry_after(self) -> int:
        value = getattr(self._last_response, "retry_after", None) or ""
        return max(1, int(value)) if value.strip().isdigit() else DEFAULT_RETRY_AFTER

    def _quote(self, text: str, limit: int = 300) -> str:
        """Upstream text made safe to show: one line, no token, short."""
        text = BEARER.sub("Bearer [redacted]", " ".join(str(text).split()))
        if self.token:
            text = text.replace(self.token, "[redacted]")
        return text if len(text) <= limit else text[: limit - 1] + "…"
