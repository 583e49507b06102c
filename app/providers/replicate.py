"""Replicate (being written)."""

from __future__ import annotations

from .base import GenerationRequest, GenerationResult, Model, Provider, UpstreamError


class ReplicateProvider(Provider):
    name = "replicate"
    label = "Replicate"

    @property
    def configured(self) -> bool:
        return bool(self.config.get("REPLICATE_API_TOKEN"))

    @property
    def models(self) -> list[Model]:
        return [Model("placeholder", "Placeholder")]

    def generate(self, request: GenerationRequest) -> GenerationResult:
        raise UpstreamError("not written yet")
