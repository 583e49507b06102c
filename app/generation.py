"""The synchronous generation service that the form, the API and the CLI all call.

Resolve provider and model, draw a real seed, ask the provider, hand the bytes to the store,
then commit the record. Nothing is left behind when any step fails.
"""

from __future__ import annotations

import secrets
import time

from flask import current_app

from .extensions import db
from .models import Image, utcnow
from .params import MAX_SEED, GenerationParams, ValidationFailed, error
from .providers.base import GenerationRequest, Model, NotConfigured, Provider, UpstreamError
from .storage import ImageStore, InvalidImage


class GenerationService:
    def __init__(self, providers: dict[str, Provider], store: ImageStore, config):
        self.providers = providers
        self.store = store
        self.config = config

    @property
    def default_provider(self) -> str:
        return self.config["DEFAULT_PROVIDER"]

    def resolve(self, params: GenerationParams) -> tuple[Provider, Model]:
        """The provider and model a request names (or the defaults), checked against limits."""
        name = params.provider or self.default_provider
        provider = self.providers.get(name)
        if provider is None or not provider.configured:
            setting = {"stability": "STABILITY_API_KEY", "replicate": "REPLICATE_API_TOKEN"}
            hint = f": set {setting[name]}" if name in setting else ""
            raise NotConfigured(f"Provider '{name}' is not configured{hint}.")
        model = provider.model(params.model or provider.default_model)
        if model is None:
            names = ", ".join(f"'{m.name}'" for m in provider.models)
            raise ValidationFailed(
                [error("model", f"Input should be one of {names} for provider '{name}'",
                       "literal_error")]
            )
        problems = [
            error(field, f"Input should be between {low:g} and {high:g} for model '{model.name}'",
                  "model_range")
            for field, (low, high) in model.limits.items()
            if field in model.honours and not low <= getattr(params, field) <= high
        ]
        if problems:
            raise ValidationFailed(problems)
        return provider, model

    def generate(self, params: GenerationParams) -> Image:
        provider, model = self.resolve(params)
        seed = params.seed or secrets.randbelow(MAX_SEED) + 1
        ignored = [
            name for name in model.ignores() if name != "negative_prompt" or params.negative_prompt
        ]
        started = time.monotonic()
        result = provider.generate(
            GenerationRequest(
                prompt=params.prompt,
                negative_prompt="" if "negative_prompt" in ignored else params.negative_prompt,
                model=model.name,
                width=params.width,
                height=params.height,
                steps=params.steps,
                cfg_scale=params.cfg_scale,
                seed=seed,
                timeout=float(self.config["GENERATION_TIMEOUT"]),
            )
        )
        seed = result.seed or seed
        description = dict(
            prompt=params.prompt, negative_prompt=params.negative_prompt, steps=params.steps,
            cfg_scale=params.cfg_scale, seed=seed, model=model.name,
        )
        try:
            staged = self.store.stage(result.data, description)
        except InvalidImage as exc:
            raise UpstreamError(f"The provider answered with an unusable image: {exc}.") from exc
        created_at = utcnow()
        record = Image(
            filename=staged.temp_file.name,
            provider=provider.name,
            width=staged.width,
            height=staged.height,
            requested={**params.as_dict(), "provider": provider.name, "model": model.name},
            ignored=ignored,
            content_filtered=result.content_filtered,
            format=staged.format,
            file_size=staged.file_size,
            sha256=staged.sha256,
            duration_ms=round((time.monotonic() - started) * 1000),
            created_at=created_at,
            **description,
        )
        del record.requested["prompt"], record.requested["negative_prompt"]
        try:
            db.session.add(record)
            db.session.flush()
            record.filename = staged.place(f"{created_at:%Y%m%d_%H%M%S}_{record.id}", record.id)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            staged.discard(record.id)
            raise
        return record

    def delete(self, record: Image) -> None:
        """Remove the record, then its files (a leftover file is what `images verify` finds)."""
        filename, image_id = record.filename, record.id
        db.session.delete(record)
        db.session.commit()
        self.store.delete(filename, image_id)


def service() -> GenerationService:
    return current_app.extensions["generation"]
