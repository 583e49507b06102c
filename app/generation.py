"""The synchronous generation service that the form, the API and the CLI all call.

Resolve provider, model and options, draw a real seed, ask the provider (several calls at once
for a batch), hand the bytes to the store, then commit the records. Provider calls run on worker
threads that know nothing of Flask or the database; every file and record is made afterwards in
the calling thread, so a member that fails or comes too late leaves nothing behind.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from flask import current_app

from .extensions import db
from .models import Image, utcnow
from .params import MAX_SEED, GenerationParams, ValidationFailed, error
from .providers.base import (
    GenerationRequest,
    GenerationResult,
    Model,
    NotConfigured,
    Provider,
    ProviderError,
    UpstreamError,
    UpstreamTimeout,
)
from .spending import spending
from .storage import ImageStore, InvalidImage, StagedImage, StorageError

SETTINGS = {"stability": "STABILITY_API_KEY", "replicate": "REPLICATE_API_TOKEN",
            "openai": "OPENAI_API_KEY"}
# After the batch's deadline, how long members still running get to report their own timeout
# (a provider cancels its prediction before it gives up).
CANCEL_GRACE = 2.0


@dataclass
class BatchError:
    """One member of a batch that failed: its index and the contract's error."""

    index: int
    error: ProviderError

    def to_dict(self) -> dict:
        return {"index": self.index, "status": self.error.status, "error": self.error.code,
                "detail": self.error.detail}


@dataclass
class Batch:
    batch_id: str
    images: list[Image]
    errors: list[BatchError] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"batch_id": self.batch_id, "images": [image.to_dict() for image in self.images],
                "errors": [problem.to_dict() for problem in self.errors]}


@dataclass
class Plan:
    """A checked request: what each member sends, and what every record of it shares."""

    params: GenerationParams
    provider: Provider
    model: Model
    options: dict
    ignored: list[str]
    requests: list[GenerationRequest]
    deadline: float


class GenerationService:
    def __init__(self, providers: dict[str, Provider], store: ImageStore, config):
        self.providers = providers
        self.store = store
        self.config = config

    @property
    def default_provider(self) -> str:
        return self.config["DEFAULT_PROVIDER"]

    def find_model(self, provider_name: str | None, model_name: str | None) -> Model | None:
        """The model a request would use, or None (for front ends that type options as text)."""
        provider = self.providers.get(provider_name or self.default_provider)
        if provider is None:
            return None
        return provider.model(model_name or provider.default_model)

    def resolve(self, params: GenerationParams) -> tuple[Provider, Model, dict]:
        """The provider, model and checked options a request names, checked against limits."""
        name = params.provider or self.default_provider
        provider = self.providers.get(name)
        if provider is None or not provider.configured:
            hint = f": set {SETTINGS[name]}" if name in SETTINGS else ""
            raise NotConfigured(f"Provider '{name}' is not configured{hint}.")
        model = provider.model(params.model or provider.default_model)
        if model is None:
            names = ", ".join(f"'{m.name}'" for m in provider.models)
            raise ValidationFailed(
                [error("model", f"Input should be one of {names} for provider '{name}'",
                       "literal_error")]
            )
        if model.unavailable:
            raise UpstreamError(f"Model '{model.name}' cannot be used now: {model.unavailable}")
        problems = [
            error(field, f"Input should be between {low:g} and {high:g} for model '{model.name}'",
                  "model_range")
            for field, (low, high) in model.limits.items()
            if field in model.honours and not low <= getattr(params, field) <= high
        ]
        given = {**{name: value for name, value in params.offered.items() if model.option(name)},
                 **params.options}
        options, refused = model.check_options(given)
        problems += [{"loc": ["body", "options", option], "msg": msg, "type": kind}
                     for option, msg, kind in refused]
        if problems:
            raise ValidationFailed(problems)
        return provider, model, options

    def plan(self, params: GenerationParams) -> Plan:
        """Everything checked and decided before the first provider call."""
        provider, model, options = self.resolve(params)
        # A later budget check (the cost of params.count images) belongs here, before any call.
        first_seed = params.seed or secrets.randbelow(MAX_SEED - params.count + 1) + 1
        ignored = [
            name for name in model.ignores() if name != "negative_prompt" or params.negative_prompt
        ]
        ignored += [name for name in (*params.offered, *params.ignored)
                    if name not in ignored and not (name in params.offered and model.option(name))]
        timeout = float(self.config["GENERATION_TIMEOUT"])
        requests = [
            GenerationRequest(
                prompt=params.prompt,
                negative_prompt="" if "negative_prompt" in ignored else params.negative_prompt,
                model=model.name, width=params.width, height=params.height, steps=params.steps,
                cfg_scale=params.cfg_scale, seed=first_seed + index, timeout=timeout,
                options=options,
            )
            for index in range(params.count)
        ]
        return Plan(params, provider, model, options, ignored, requests,
                    time.monotonic() + timeout)

    def generate(self, params: GenerationParams, created_by: str = "api") -> Image:
        """One image (params.count is taken as 1); a failure raises the provider's error."""
        if params.count != 1:
            params = replace(params, count=1)
        batch = self._run(self.plan(params), batch_id=None, created_by=created_by)
        return batch.images[0]

    def generate_batch(self, params: GenerationParams,
                       on_done: Callable[[int], None] | None = None,
                       created_by: str = "api") -> Batch:
        """params.count images at once within one GENERATION_TIMEOUT.

        Every image that was made is kept; each failure is reported by index. When none was
        made, the first failure is raised as for a single image. `on_done(index)` is called in
        this thread as each member finishes, made or not.
        """
        return self._run(self.plan(params), batch_id=uuid.uuid4().hex, on_done=on_done,
                         created_by=created_by)

    def _run(self, plan: Plan, batch_id: str | None,
             on_done: Callable[[int], None] | None = None, created_by: str = "api") -> Batch:
        # The whole request's estimate is held against the budgets before any provider call;
        # what the images really cost is settled with their records (in the same commit), and
        # the rest given back.
        with spending().reservation(created_by, plan.provider.name, plan.model.name,
                                    plan.params, len(plan.requests)) as charge:
            # The provider's time starts once the budget is held.
            plan = replace(plan, deadline=time.monotonic() + float(
                self.config["GENERATION_TIMEOUT"]))
            return self._run_reserved(plan, batch_id, on_done, created_by, charge)

    def _run_reserved(self, plan: Plan, batch_id: str | None, on_done, created_by: str,
                      charge) -> Batch:
        started = time.monotonic()
        staged: dict[int, tuple[GenerationResult, StagedImage]] = {}
        failed: dict[int, ProviderError] = {}
        costs: dict[int, tuple[float, str]] = {}

        def finish(index: int, outcome: GenerationResult | ProviderError) -> None:
            if isinstance(outcome, ProviderError):
                failed[index] = outcome
            else:
                costs[index] = charge.add(outcome)
                try:
                    staged[index] = (outcome, self._stage(plan, index, outcome))
                except ProviderError as exc:
                    failed[index] = exc
            if on_done:
                on_done(index)

        try:
            if len(plan.requests) == 1:
                finish(0, _call(plan.provider, plan.requests[0], plan.deadline))
            else:
                self._concurrently(plan, finish)
            if not staged:
                raise failed[min(failed)]
            images = self._commit(plan, staged, batch_id, started, costs, created_by, charge)
        except BaseException:
            for _, files in staged.values():
                files.discard()
            raise
        errors = [BatchError(index, failed[index]) for index in sorted(failed)]
        return Batch(batch_id or "", images, errors)

    @staticmethod
    def _concurrently(plan: Plan, finish: Callable) -> None:
        """Each member on a worker thread, at most the provider's concurrency at once."""
        workers = min(len(plan.requests), plan.provider.max_concurrency)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="generate")
        pending: dict[Future, int] = {
            pool.submit(_call, plan.provider, request, plan.deadline): index
            for index, request in enumerate(plan.requests)
        }
        try:
            while pending:
                remaining = plan.deadline + CANCEL_GRACE - time.monotonic()
                if remaining <= 0:
                    break
                done, _ = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
                for future in done:
                    finish(pending.pop(future), future.result())
        finally:
            # Members still running at this point have outlived the deadline: what they make
            # is never stored (the providers stop and cancel their own calls at the deadline).
            pool.shutdown(wait=False, cancel_futures=True)
        for index in sorted(pending.values()):
            finish(index, UpstreamTimeout(
                "The image was not finished within GENERATION_TIMEOUT; it was canceled."))

    @staticmethod
    def _seed(plan: Plan, index: int, result: GenerationResult) -> int | None:
        """The seed the image was made with: the provider's word for it, else the one sent."""
        return (result.seed or plan.requests[index].seed) if plan.model.takes_seed else None

    def _stage(self, plan: Plan, index: int, result: GenerationResult) -> StagedImage:
        params, model = plan.params, plan.model
        seed = self._seed(plan, index, result)
        generation = {"provider": plan.provider.name, "model": model.name, "seed": seed,
                      "options": plan.options, "requested": self._requested(plan)}
        try:
            return self.store.stage(result.data, dict(
                prompt=params.prompt, negative_prompt=params.negative_prompt, steps=params.steps,
                cfg_scale=params.cfg_scale, seed=seed, model=model.name, options=plan.options,
                generation=generation))
        except InvalidImage as exc:
            raise UpstreamError(f"The provider answered with an unusable image: {exc}.") from exc

    @staticmethod
    def _requested(plan: Plan) -> dict:
        requested = {**plan.params.as_dict(), "provider": plan.provider.name,
                     "model": plan.model.name}
        del requested["prompt"], requested["negative_prompt"]
        if requested["count"] == 1:  # a single image's record reads as it always did
            del requested["count"]
        if not requested["options"]:
            del requested["options"]
        return requested

    def _commit(self, plan: Plan, staged: dict, batch_id: str | None, started: float,
                costs: dict, created_by: str, charge) -> list:
        """The records of the staged images, in index order, committed together with the
        settling of their charge."""
        params, model = plan.params, plan.model
        duration_ms = round((time.monotonic() - started) * 1000)
        records = []
        created_at = utcnow()
        try:
            for index in sorted(staged):
                result, files = staged[index]
                record = Image(
                    filename=files.placeholder, prompt=params.prompt,
                    negative_prompt=params.negative_prompt, provider=plan.provider.name,
                    model=model.name, seed=self._seed(plan, index, result),
                    width=files.width, height=files.height, steps=params.steps,
                    cfg_scale=params.cfg_scale, requested=self._requested(plan),
                    ignored=plan.ignored, content_filtered=result.content_filtered,
                    format=files.format, file_size=files.file_size, sha256=files.sha256,
                    duration_ms=duration_ms,
                    created_at=created_at, options=plan.options, batch_id=batch_id,
                    batch_index=index if batch_id else None,
                    cost=costs[index][0], cost_detail=costs[index][1], created_by=created_by,
                    collections=[],  # a new image is in none: nothing to load for to_dict()
                )
                db.session.add(record)
                db.session.flush()
                records.append(record)
                files.place(f"{created_at:%Y%m%d_%H%M%S}_{record.id}", record.id)
                record.filename = files.filename
            charge.settle_in(db.session.connection())
            db.session.commit()
            charge.committed()
        except BaseException:
            db.session.rollback()
            for record in records:
                staged[record.batch_index or 0][1].discard(record.id)
            raise
        return records

    def delete(self, record: Image) -> None:
        """Remove the record, then its files (a leftover file is what `images verify` finds)."""
        filename, image_id = record.filename, record.id
        db.session.delete(record)
        db.session.commit()
        try:
            self.store.delete(filename, image_id)
        except StorageError as exc:
            current_app.logger.warning("Image %s deleted; its files stay until `flask images "
                                       "verify --fix`: %s", image_id, exc.detail)


def _call(provider: Provider, request: GenerationRequest,
          deadline: float) -> GenerationResult | ProviderError:
    """One provider call within what is left of the deadline; its error is returned, not raised."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return UpstreamTimeout("The image was not started within GENERATION_TIMEOUT.")
    try:
        return provider.generate(replace(request, timeout=remaining))
    except ProviderError as exc:
        return exc


def service() -> GenerationService:
    return current_app.extensions["generation"]
