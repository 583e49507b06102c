"""The provider registry: adding a provider is one file and one line here."""

from __future__ import annotations

from .base import Provider
from .offline import OfflineProvider
from .openai import OpenAIProvider
from .replicate import ReplicateProvider
from .stability import StabilityProvider

PROVIDER_CLASSES: tuple[type[Provider], ...] = (
    StabilityProvider, ReplicateProvider, OpenAIProvider, OfflineProvider)


def build_providers(config) -> dict[str, Provider]:
    """One instance of every provider, configured from the app's settings."""
    return {cls.name: cls(config) for cls in PROVIDER_CLASSES}
