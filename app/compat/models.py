"""How the compatible APIs name this app's models: `offline`, `stability/sd3.5-large`, ...

One id per provider and model that can run now. A bare provider name means its default model; a
bare name that is no provider (`gpt-image-2`) is an OpenAI model. Both APIs use these ids: OpenAI's
`model` and A1111's `sd_model_checkpoint`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..generation import service

OPENAI = "openai"
BARE = ("offline",)  # providers listed by their bare name alone (one model, nothing to choose)


@dataclass(frozen=True)
class ModelId:
    id: str
    provider: str
    model: str | None  # None: the provider's default


def sha256(model_id: str) -> str:
    """A stable stand-in for a checkpoint's hash, which A1111's clients show and compare."""
    return hashlib.sha256(model_id.encode()).hexdigest()


def short_hash(model_id: str) -> str:
    return sha256(model_id)[:10]


def runnable() -> list[ModelId]:
    """Every provider/model that can run now, the default provider's default model first."""
    generation = service()
    found = []
    for provider in generation.providers.values():
        if not provider.configured:
            continue
        if provider.name in BARE:
            found.append(ModelId(provider.name, provider.name, None))
            continue
        found += [ModelId(f"{provider.name}/{model.name}", provider.name, model.name)
                  for model in provider.models if not getattr(model, "unavailable", "")]
    default = default_id()
    return sorted(found, key=lambda entry: entry.id != default)


def default_id() -> str:
    generation = service()
    name = generation.default_provider
    provider = generation.providers.get(name)
    if name in BARE or provider is None:
        return name
    return f"{name}/{provider.default_model}"


def parse(text: str) -> ModelId:
    """The provider and model an id names (whether it can run is the service's to say)."""
    text = text.strip()
    providers = service().providers
    name, slash, model = text.partition("/")
    if name in providers:
        return ModelId(text, name, model if slash and model else None)
    return ModelId(text, OPENAI, text)
