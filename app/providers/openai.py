"""OpenAI's GPT image models through the official `openai` client.

One `images.generate` call per image, with retries off and a timeout inside the request's
deadline (the client's defaults would retry a paid call and outlive the worker). The models
take no seed, negative prompt, steps or guidance; the size is sent as WxH where the model takes
any size, else as the nearest of the three fixed ones. `response_format` is never sent: GPT
image models refuse it and always answer base64.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
import weakref
from typing import TYPE_CHECKING

from .base import (
    ContentModerated,
    CreditsExhausted,
    GenerationRequest,
    GenerationResult,
    Model,
    NotConfigured,
    Option,
    Provider,
    ProviderError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)

FIXED_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
ANY_SIZE = ("gpt-image-2", "gpt-image-2.5-sunburst", "gpt-image-2.5-flare")
MAX_RATIO = 3.0
MAX_SIDES = (3840, 2160)
DEFAULT_RETRY_AFTER = 20
BEARER = re.compile(r"(Bearer\s+|sk-)[A-Za-z0-9_\-]+")


def _options(*extra_quality: str) -> tuple[Option, ...]:
    return (
        Option("quality", "string", "auto", "Rendering quality (and cost).",
               ("low", "medium", "high", *extra_quality, "auto")),
        Option("background", "string", "auto", "A transparent background needs PNG or WebP.",
               ("transparent", "opaque", "auto")),
        Option("output_format", "string", "png", "The file format of the image (only PNG "
               "files carry the parameters text).", ("png", "jpeg", "webp")),
        Option("moderation", "string", "auto", "How strict the prompt moderation is.",
               ("low", "auto")),
    )


SIZE = frozenset({"width", "height"})
ANY_SIZE_NOTE = ("Any width x height (ratio up to 3:1); no seed, negative prompt, steps or "
                 "CFG scale. Billed by tokens.")
FIXED_NOTE = ("Width x height becomes the nearest of 1024x1024, 1536x1024 and 1024x1536; no "
              "seed, negative prompt, steps or CFG scale. Billed by tokens.")
MODELS = (
    Model("gpt-image-2", "GPT Image 2", SIZE, notes=ANY_SIZE_NOTE, options=_options(),
          takes_seed=False),
    Model("gpt-image-2.5-sunburst", "GPT Image 2.5 Sunburst", SIZE, notes=ANY_SIZE_NOTE,
          options=_options("xhigh", "max"), takes_seed=False),
    Model("gpt-image-2.5-flare", "GPT Image 2.5 Flare", SIZE, notes=ANY_SIZE_NOTE,
          options=_options("xhigh", "max"), takes_seed=False),
    Model("gpt-image-2.6-sunburst", "GPT Image 2.6 Sunburst", SIZE, sizes=FIXED_SIZES,
          notes=FIXED_NOTE, options=_options(), takes_seed=False),
    Model("gpt-image-2.6-flare", "GPT Image 2.6 Flare", SIZE, sizes=FIXED_SIZES,
          notes=FIXED_NOTE, options=_options(), takes_seed=False),
)


def size_for(model: str, width: int, height: int) -> str:
    """The `size` sent: WxH on models that take any size (ratio kept within 3:1), else the
    nearest fixed size by aspect ratio."""
    if model in ANY_SIZE:
        long_side, short_side = max(width, height), min(width, height)
        long_side = min(long_side, int(short_side * MAX_RATIO) // 16 * 16)
        w, h = (long_side, short_side) if width >= height else (short_side, long_side)
        limit_w, limit_h = MAX_SIDES if w >= h else MAX_SIDES[::-1]
        scale = min(1.0, limit_w / w, limit_h / h)
        return f"{int(w * scale) // 16 * 16}x{int(h * scale) // 16 * 16}"
    wanted = math.log(width / height)
    w, h = min(FIXED_SIZES, key=lambda s: abs(math.log(s[0] / s[1]) - wanted))
    return f"{w}x{h}"


class OpenAIProvider(Provider):
    name = "openai"
    label = "OpenAI"

    def __init__(self, config: dict):
        super().__init__(config)
        self.key = config.get("OPENAI_API_KEY") or ""
        wanted = config.get("OPENAI_MODEL") or "gpt-image-2"
        known = {model.name for model in MODELS}
        # A model id from configuration that the list here does not know yet: fixed sizes only.
        extra = [] if wanted in known else [
            Model(wanted, wanted, SIZE, sizes=FIXED_SIZES, options=_options(), takes_seed=False,
                  notes=f"Named by OPENAI_MODEL. {FIXED_NOTE}")]
        self._models = [*extra, *MODELS]
        self._default = wanted
        self.client = None
        if self.key:  # the client refuses to be built without a key
            import openai  # here: importing the client costs 0.6 s and 18 MB, unused without a key

            self.client = openai.OpenAI(
                api_key=self.key, base_url=config.get("OPENAI_BASE_URL") or None,
                max_retries=0, timeout=60.0)
            weakref.finalize(self, self.client.close)  # its pooled connections go with it

    @property
    def configured(self) -> bool:
        return bool(self.key)

    @property
    def models(self) -> list[Model]:
        return self._models

    @property
    def default_model(self) -> str:
        return self._default

    def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.client is None:
            raise NotConfigured("Provider 'openai' is not configured: set OPENAI_API_KEY.")
        import openai
        from openai.types import ImagesResponse

        try:
            answer = self.client.images.generate(
                prompt=request.prompt, model=request.model, n=1,
                size=size_for(request.model, request.width, request.height),
                timeout=request.timeout, **request.options)
        except openai.APIError as exc:
            raise self._failure(exc) from None
        if not isinstance(answer, ImagesResponse):  # a body that was not JSON
            raise UpstreamError("OpenAI answered with something that is not an image response.")
        try:
            data = base64.b64decode(answer.data[0].b64_json or "", validate=True)
        except (AttributeError, IndexError, TypeError, binascii.Error, ValueError):
            raise UpstreamError("OpenAI answered without a usable image.") from None
        if not data:
            raise UpstreamError("OpenAI answered without an image.")
        usage = answer.usage.model_dump(exclude_none=True) if answer.usage else None
        return GenerationResult(data=data, seed=None, usage=usage)

    def _failure(self, exc: openai.APIError) -> ProviderError:
        """The contract's error for what the client raised, quoting OpenAI (key scrubbed)."""
        import openai

        message = self._quote(getattr(exc, "message", "") or str(exc))
        code = getattr(exc, "code", None)
        logger.warning("OpenAI request failed: %s %s", type(exc).__name__, code or "")
        if isinstance(exc, openai.APITimeoutError):
            return UpstreamTimeout("OpenAI did not answer within GENERATION_TIMEOUT.")
        if isinstance(exc, openai.APIConnectionError):
            return UpstreamError("Could not reach OpenAI (the connection failed).")
        if isinstance(exc, openai.RateLimitError):
            if code == "insufficient_quota":
                return CreditsExhausted(f"OpenAI: the account is out of quota: {message}")
            return RateLimited(f"OpenAI's rate limit was reached: {message}",
                               retry_after=_retry_after(exc))
        if code == "moderation_blocked" or isinstance(exc, openai.BadRequestError) and (
                getattr(exc, "type", None) == "image_generation_user_error"):
            return ContentModerated(f"OpenAI's moderation refused the prompt: {message}")
        if isinstance(exc, openai.AuthenticationError):
            return UpstreamError("OpenAI rejected the API key (check OPENAI_API_KEY).")
        if isinstance(exc, openai.PermissionDeniedError):
            return UpstreamError(f"OpenAI refused access: {message}")
        if isinstance(exc, openai.APIStatusError):
            return UpstreamError(f"OpenAI failed (HTTP {exc.status_code}): {message}")
        return UpstreamError("OpenAI answered with something that is not an image response.")

    def _quote(self, text: str, limit: int = 300) -> str:
        text = " ".join(str(text).split())
        if self.key:
            text = text.replace(self.key, "[redacted]")
        text = BEARER.sub("[redacted]", text)
        return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(exc: openai.APIStatusError) -> int:
    value = (exc.response.headers.get("retry-after") or "").strip()
    try:
        return max(1, math.ceil(float(value)))
    except ValueError:
        return DEFAULT_RETRY_AFTER
