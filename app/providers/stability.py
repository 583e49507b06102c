"""Stability AI (being written)."""

from __future__ import annotations

from .base import GenerationRequest, GenerationResult, Model, Provider, UpstreamError


class StabilityProvider(Provider):
    name = "stability"
    label = "Stability AI"

    @property
    def configured(self) -> bool:
        return bool(self.config.get("STABILITY_API_KEY"))

    @property
    def models(self) -> list[Model]:
        return [Model("placeholder", "Placeholder")]

    def generate(self, request: GenerationRequest) -> GenerationResult:
        raise UpstreamError("not written yet")
