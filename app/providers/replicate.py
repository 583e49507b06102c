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
from urllib.parse import unquote_to_bytes, urlsplit

import httpx
import replicate
from replicate.exceptions import ModelError, ReplicateError
from replicate.helpers import FileOutput
from replicate.prediction import Prediction

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

SDXL = "stability-ai/sdxl:39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
FLUX_SCHNELL = "black-forest-labs/flux-schnell"
FLUX_SIZES = {  # aspect ratio: the size FLUX.1 [schnell] makes for it at 1 megapixel
    "1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832),
    "2:3": (832, 1216), "4:5": (896, 1088), "5:4": (1088, 896), "3:4": (896, 1152),
    "4:3": (1152, 896), "9:16": (768, 1344), "9:21": (640, 1536),
}
SDXL_INPUTS = "width, height, num_inference_steps, guidance_scale, seed and negative_prompt"

MODELS = (
    Model(SDXL, "Stable Diffusion XL (stability-ai/sdxl)",
          notes="Run by version; makes any size asked for and takes every parameter. Its safety "
                "checker refuses NSFW results."),
    Model(FLUX_SCHNELL, "FLUX.1 [schnell] (black-forest-labs/flux-schnell)",
          honours=frozenset({"width", "height"}), sizes=tuple(FLUX_SIZES.values()),
          notes="Fast official model: width x height becomes the nearest of its aspect ratios; "
                "it runs a fixed 4 steps with no guidance and no negative prompt. PNG output."),
)

MAX_WAIT = 60  # the longest `Prefer: wait` Replicate accepts
POLL_INTERVAL = 0.5
HTTP_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
DOWNLOAD_TIMEOUT = 60.0
MAX_BYTES = 50 * 1024 * 1024
DEFAULT_RETRY_AFTER = 10
SEED_LOG = re.compile(r"Using seed: (\d+)")
SAFETY_REFUSAL = re.compile(r"nsfw|safety", re.IGNORECASE)
BEARER = re.compile(r"Bearer\s+\S+", re.IGNORECASE)


def custom_model(ref: str) -> Model:
    how = "its version" if ":" in ref else "its latest version"
    return Model(ref, ref, notes=f"Named by REPLICATE_MODEL and run by {how}; sent SDXL's "
                                 f"inputs ({SDXL_INPUTS}).")


def aspect_ratio(width: int, height: int) -> str:
    """The FLUX aspect ratio nearest to width:height, on a log scale (so 2:1 and 1:2 are alike)."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(FLUX_SIZES, key=distance)


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
    if isinstance(output, list | tuple):
        return output[0] if output else None
    return output or None


class ReplicateProvider(Provider):
    name = "replicate"
    label = "Replicate"

    def __init__(self, config: dict):
        super().__init__(config)
        self.token = config.get("REPLICATE_API_TOKEN") or ""
        base_url = (config.get("REPLICATE_BASE_URL") or "https://api.replicate.com").rstrip("/")
        self.base_url = base_url.removesuffix("/v1")
        self._default = config.get("REPLICATE_MODEL") or SDXL
        known = [m.name for m in MODELS]
        extra = [] if self._default in known else [custom_model(self._default)]
        self._models = [*extra, *MODELS]
        self._last_response = threading.local()
        self.client = None
        if self.token:  # given no token, the client would look for one in the environment
            transport = httpx.HTTPTransport()
            weakref.finalize(self, transport.close)  # its pooled connections go with the provider
            self.client = replicate.Client(
                api_token=self.token, base_url=self.base_url, timeout=HTTP_TIMEOUT,
                transport=transport, event_hooks={"response": [self._remember_retry_after]})

    @property
    def configured(self) -> bool:
        return bool(self.token)

    @property
    def models(self) -> list[Model]:
        return self._models

    @property
    def default_model(self) -> str:
        return self._default

    def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.client is None:
            raise NotConfigured("Provider 'replicate' is not configured: set REPLICATE_API_TOKEN.")
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
        match = SEED_LOG.search(prediction.logs or "")
        return GenerationResult(data=data, seed=int(match.group(1)) if match else request.seed)

    def _inputs(self, request: GenerationRequest) -> dict:
        if request.model == FLUX_SCHNELL:
            return {"prompt": request.prompt, "aspect_ratio": aspect_ratio(request.width,
                    request.height), "output_format": "png", "seed": request.seed}
        inputs = {"prompt": request.prompt, "width": request.width, "height": request.height,
                  "num_inference_steps": request.steps, "guidance_scale": request.cfg_scale,
                  "seed": request.seed}
        if request.negative_prompt:
            inputs["negative_prompt"] = request.negative_prompt
        return inputs

    def _create(self, request: GenerationRequest, deadline: float) -> Prediction:
        inputs = self._inputs(request)
        if request.model == FLUX_SCHNELL:
            return self.client.models.predictions.create(
                model=FLUX_SCHNELL, input=inputs, wait=self._wait(deadline))
        ref, _, version = request.model.partition(":")
        if not version:
            latest = self.client.models.get(ref).latest_version
            if latest is None:
                raise UpstreamError(f"Replicate lists no version of the model {ref}.")
            version = latest.id
        return self.client.predictions.create(version=version, input=inputs,
                                              wait=self._wait(deadline))

    @staticmethod
    def _wait(deadline: float) -> int:
        """Seconds for `Prefer: wait`: 1 to 60, and within the deadline when there is a second.

        Always at least 1: the client sends a create without `wait` with no timeout at all.
        """
        return max(1, min(MAX_WAIT, math.floor(deadline - time.monotonic())))

    @staticmethod
    def _await_output(prediction: Prediction, deadline: float):
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
        if prediction.status in ("starting", "processing"):
            with contextlib.suppress(ReplicateError, httpx.HTTPError, ValueError):
                prediction.cancel()

    def _download(self, output, deadline: float) -> bytes:
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
