"""The provider interface: what a provider is told, what it answers, and how it fails.

A provider knows nothing of Flask, the database or files: it turns a GenerationRequest into
image bytes, or raises one of the errors below, each carrying the contract's status and code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

# The common parameters a model may or may not honour (prompt is always honoured; seed by every
# model that takes one).
TUNABLE = ("negative_prompt", "width", "height", "steps", "cfg_scale")
OPTION_KINDS = ("string", "integer", "number", "boolean")
TRUE_TEXT, FALSE_TEXT = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class Option:
    """A setting of one model beyond the common parameters (Stability's style_preset, ...)."""

    name: str
    kind: str  # one of OPTION_KINDS
    default: Any = None
    description: str = ""
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None

    def describe(self) -> dict:
        described: dict[str, Any] = {"name": self.name, "type": self.kind,
                                     "default": self.default, "description": self.description}
        if self.choices:
            described["values"] = list(self.choices)
        if self.minimum is not None:
            described["minimum"] = self.minimum
        if self.maximum is not None:
            described["maximum"] = self.maximum
        return described

    def check(self, value: Any) -> tuple[Any, str | None, str | None]:
        """The value as it is sent, or (None, message, error type) for one it does not allow."""
        if self.kind == "boolean":
            if not isinstance(value, bool):
                return None, "Input should be a valid boolean", "bool_type"
        elif self.kind == "string":
            if not isinstance(value, str):
                return None, "Input should be a valid string", "string_type"
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                noun = "integer" if self.kind == "integer" else "number"
                return None, f"Input should be a valid {noun}", f"{self.kind[:3]}_type"
            if self.kind == "integer":
                if isinstance(value, float) and not value.is_integer():
                    return None, "Input should be a valid integer", "int_type"
                value = int(value)
            elif not math.isfinite(value):
                return None, "Input should be a finite number", "finite_number"
            if self.minimum is not None and value < self.minimum:
                return (None, f"Input should be greater than or equal to {self.minimum:g}",
                        "greater_than_equal")
            if self.maximum is not None and value > self.maximum:
                return (None, f"Input should be less than or equal to {self.maximum:g}",
                        "less_than_equal")
        if self.choices and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            return None, f"Input should be one of {allowed}", "literal_error"
        return value, None, None

    def from_text(self, text: str) -> Any:
        """A value typed as text (a form field, a CLI flag) in the option's own type.

        Text that does not convert is returned as it is, for check() to refuse with a message.
        """
        text = text.strip()
        if self.kind == "boolean":
            lowered = text.lower()
            return True if lowered in TRUE_TEXT else False if lowered in FALSE_TEXT else text
        if self.kind in ("integer", "number"):
            try:
                number = float(text)
            except ValueError:
                return text
            return int(number) if self.kind == "integer" and number.is_integer() else number
        return text


@dataclass(frozen=True)
class Model:
    """One model a provider offers, with what it honours and the limits it puts on values."""

    name: str
    label: str
    honours: frozenset[str] = frozenset(TUNABLE)
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    sizes: tuple[tuple[int, int], ...] = ()  # the exact sizes it makes, when it cannot make any
    notes: str = ""
    options: tuple[Option, ...] = ()
    takes_seed: bool = True
    unavailable: str = ""  # why the model cannot be used now (e.g. its schema could not be read)

    def ignores(self) -> list[str]:
        """The common parameters this model does not take ("seed" last, when it takes none)."""
        return [name for name in TUNABLE if name not in self.honours] + (
            [] if self.takes_seed else ["seed"])

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def check_options(self, given: Mapping[str, Any]) -> tuple[dict, list[tuple[str, str, str]]]:
        """The options as they are sent, and (name, message, type) for each one refused."""
        checked, problems = {}, []
        for name, value in given.items():
            option = self.option(name)
            if option is None:
                known = ", ".join(o.name for o in self.options) or "none"
                problems.append((name, f"Model '{self.name}' takes no option '{name}' "
                                       f"(its options: {known})", "extra_forbidden"))
                continue
            value, message, kind = option.check(value)
            if message:
                problems.append((name, message, kind))
            else:
                checked[name] = value
        order = [option.name for option in self.options]
        return dict(sorted(checked.items(), key=lambda item: order.index(item[0]))), problems

    def options_from_text(self, given: Mapping[str, str]) -> dict:
        """Options typed as text, each converted to its option's type where the model has it."""
        return {name: option.from_text(value) if (option := self.option(name)) else value
                for name, value in given.items()}

    def describe(self) -> dict:
        """The model as /api/providers and the form show it."""
        return {
            "name": self.name,
            "label": self.label,
            "honours": [name for name in TUNABLE if name in self.honours]
            + (["seed"] if self.takes_seed else []),
            "ignores": self.ignores(),
            "limits": {
                name: {"minimum": low, "maximum": high} for name, (low, high) in self.limits.items()
            },
            "sizes": [list(size) for size in self.sizes],
            "notes": self.notes,
            "options": [option.describe() for option in self.options],
            "available": not self.unavailable,
            **({"unavailable": self.unavailable} if self.unavailable else {}),
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
    options: Mapping[str, Any] = field(default_factory=dict)  # checked against the model's


@dataclass(frozen=True)
class GenerationResult:
    """The image as the provider gave it, and what the provider reported back."""

    data: bytes
    seed: int | None  # None for a model that takes no seed
    content_filtered: bool = False
    usage: dict | None = None  # the provider's token counts as it gave them (OpenAI's `usage`)


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
    # Calls of one batch made at once: well inside every provider's rate limit.
    max_concurrency: ClassVar[int] = 4

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
