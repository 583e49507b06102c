"""The provider interface: what a provider is told, what it answers, and how it fails.

A provider knows nothing of Flask, the database or files: it turns a GenerationRequest into
image bytes, or raises one of the errors below, each carrying the contract's status and code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

# The common parameters a model may or may not honour (prompt and seed are always honoured).
TUNABLE = ("negative_prompt", "width", "height", "steps", "cfg_scale")


@dataclass(frozen=True)
class Model:
    """One model a provider offers, with what it honours and the limits it puts on values."""

    name: str
    label: str
    honours: frozenset[str] = frozenset(TUNABLE)
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    sizes: tuple[tuple[int, int], ...] = ()  # the exact sizes it makes, when it cannot make any
    notes: str = ""

    def ignores(self) -> list[str]:
        return [name for name in TUNABLE if name not in self.honours]

    def describe(self) -> dict:
        """The model as /api/providers and the form show it."""
        return {
            "name": self.name,
            "label": self.label,
            "honours": [name for name in TUNABLE if name in self.honours] + ["seed"],
            "ignores": self.ignores(),
            "limits": {
                name: {"minimum": low, "maximum": high} for name, (low, high) in self.limits.items()
            },
            "sizes": [list(size) for size in self.sizes],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class GenerationRequest:
    """Validated parameters, with a real seed (never 0) and the seconds left to finish in."""

    prompt: str
    negative_prompt: str
    model: str
    width: int
    height: int
    steps: int
    cfg_scale: float
    seed: int
    timeout: float


@dataclass(frozen=True)
class GenerationResult:
    """The image as the provider gave it, and what the provider reported back."""

    data: bytes
    seed: int
    content_filtered: bool = False


class ProviderError(Exception):
    """A generation failed; `status` and `code` are the contract's, `detail` is safe to show."""

    status: ClassVar[int] = 502
    code: ClassVar[str] = "upstream_error"

    def __init__(self, detail: str, *, retry_after: int | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class NotConfigured(ProviderError):
    status, code = 400, "provider_not_configured"


class CreditsExhausted(ProviderError):
    status, code = 402, "credits_exhausted"


class ContentModerated(ProviderError):
    status, code = 422, "content_moderation"


class RateLimited(ProviderError):
    status, code = 429, "rate_limited"


class UpstreamError(ProviderError):
    status, code = 502, "upstream_error"


class UpstreamTimeout(ProviderError):
    status, code = 504, "upstream_timeout"


class Provider:
    """Base of every provider. Subclasses set the class attributes and implement generate()."""

    name: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, config: dict):
        self.config = config

    @property
    def configured(self) -> bool:
        return True

    @property
    def models(self) -> list[Model]:
        raise NotImplementedError

    @property
    def default_model(self) -> str:
        return self.models[0].name

    def model(self, name: str) -> Model | None:
        return next((m for m in self.models if m.name == name), None)

    def describe(self, default: bool = False) -> dict:
        """The provider as /api/providers lists it (never with its key)."""
        return {
            "name": self.name,
            "label": self.label,
            "configured": self.configured,
            "default": default,
            "default_model": self.default_model,
            "models": [model.describe() for model in self.models],
        }

    def generate(self, request: GenerationRequest) -> GenerationResult:
        raise NotImplementedError
