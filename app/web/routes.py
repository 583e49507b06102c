"""The pages: the generation form, the gallery, one image and the API docs."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from swagger_ui_bundle import swagger_ui_path

from .. import gallery, idempotency
from ..api.routes import described_providers
from ..callers import caller
from ..generation import service
from ..models import Image
from ..params import BY_NAME, ValidationFailed, validate
from ..providers.base import ProviderError
from ..ratelimit import generation_limit
from ..spending import dollars, spending
from ..storage import StorageError
from .chart import usage_chart
from .forms import GenerateForm

bp = Blueprint("web", __name__)
bp.add_app_template_filter(dollars, "dollars")

PREFILL = ("prompt", "negative_prompt", "provider", "model", "width", "height", "steps",
           "cfg_scale", "seed")
OPTION_FIELD = "option|{provider}|{model}|{name}"  # one set of fields per model
GALLERY_PAGE = 48
BANNER_TITLES = {
    "provider_not_configured": "This provider is not configured",
    "credits_exhausted": "The provider account is out of credits",
    "content_moderation": "The provider refused this prompt",
    "rate_limited": "Too many requests",
    "upstream_error": "The provider failed",
    "upstream_timeout": "The generation timed out",
    "budget_exceeded": "Today's budget does not cover this request",
    "storage_error": "The image could not be stored",
}


def _form(**prefill) -> GenerateForm:
    generation = service()
    form = GenerateForm(**prefill)
    form.provider.choices = [
        (p.name, p.label + ("" if p.configured else " (not configured)"))
        for p in generation.providers.values()
    ]
    form.model.choices = {
        "": [("", "Provider's default")],
        **{p.label: [(m.name, m.label) for m in p.models] for p in generation.providers.values()},
    }
    if not form.provider.data:
        form.provider.data = generation.default_provider
    if not form.is_submitted():
        form.random_seed.data = not form.seed.data
        if not form.seed.data:
            form.seed.data = None
    return form


def _limits(form: GenerateForm, providers: list[dict]) -> dict:
    """The chosen model (or the provider's default) as the form shows it before any script runs."""
    provider = next((p for p in providers if p["name"] == form.provider.data), providers[-1])
    name = form.model.data or provider["default_model"]
    model = next((m for m in provider["models"] if m["name"] == name), provider["models"][0])
    return {"provider": provider, "model": model}


def _chosen(form: GenerateForm) -> tuple[str, str]:
    """The provider and model the form names, defaults filled in."""
    generation = service()
    provider = generation.providers.get(form.provider.data or generation.default_provider)
    if provider is None:
        return form.provider.data or "", form.model.data or ""
    return provider.name, form.model.data or provider.default_model


def _submitted_options(form: GenerateForm) -> dict:
    """The option fields of the chosen model that were filled in, typed by the model."""
    provider, model_name = _chosen(form)
    prefix = OPTION_FIELD.format(provider=provider, model=model_name, name="")
    raw = {key[len(prefix):]: value for key, value in request.form.items()
           if key.startswith(prefix) and value.strip()}
    model = service().find_model(provider, model_name)
    return model.options_from_text(raw) if model else raw


def _option_groups(providers: list[dict], form: GenerateForm, values: dict) -> list[dict]:
    """Every model's option fields; the chosen model's are shown, the script swaps the rest."""
    chosen = _chosen(form)
    groups, number = [], 0
    for provider in providers:
        for model in provider["models"]:
            key = (provider["name"], model["name"])
            fields = []
            for option in model["options"]:
                number += 1
                name = OPTION_FIELD.format(provider=key[0], model=key[1], name=option["name"])
                value = request.form.get(name) if form.is_submitted() else (
                    values.get(option["name"]) if key == chosen else None)
                if isinstance(value, bool):
                    value = "true" if value else "false"
                fields.append({"id": f"option-{number}", "name": name, "option": option,
                               "value": "" if value is None else str(value),
                               "error": form.option_errors.get(option["name"])
                               if key == chosen else None})
            if fields:
                groups.append({"key": "|".join(key), "label": model["label"],
                               "current": key == chosen, "fields": fields})
    return groups


def _render_form(form: GenerateForm, banner: ProviderError | StorageError | None = None,
                 status: int = 200, options: dict | None = None):
    recent = gallery.newest(12)
    providers = described_providers()
    current = _limits(form, providers)
    form.idempotency_key.data = secrets.token_urlsafe(18)
    per_image = current["model"]["price"]["per_image"]
    headers = {}
    if banner is not None and banner.retry_after:
        headers["Retry-After"] = str(banner.retry_after)
    return render_template(
        "index.html", form=form, recent=recent, providers=providers, params=BY_NAME,
        current=current, banner=banner,
        estimate=dollars(per_image) if per_image is not None else "unknown",
        option_groups=_option_groups(providers, form, options or {}),
        banner_title=BANNER_TITLES.get(banner.code, "The generation failed") if banner else None,
    ), status, headers


def _prefill_from(image: Image, keep_prompt: bool, whole_batch: bool = False) -> dict:
    values = {name: getattr(image, name) for name in PREFILL}
    values.update(width=image.requested.get("width", image.width),
                  height=image.requested.get("height", image.height))
    if image.seed is None:
        values["seed"] = 0
    if whole_batch:  # the batch again: its count, and the seed its first image had
        values["count"] = image.requested.get("count", 1)
        if image.seed is not None:
            values["seed"] = image.seed - (image.batch_index or 0)
    if not keep_prompt:
        values.update(prompt="", negative_prompt="")
    return values


@bp.get("/")
def index():
    """The generation form and the newest images."""
    prefill, options = {}, {}
    source = request.args.get("from", type=int)
    batch = request.args.get("batch")
    images = gallery.batch_images(batch) if batch else []
    if batch and not images:
        abort(404)
    if images or source is not None:
        image = images[0] if images else gallery.get_or_404(source)
        prefill = _prefill_from(image, keep_prompt=request.args.get("keep") != "seed",
                                whole_batch=bool(images))
        options = image.options or {}
    else:
        prefill = {name: request.args[name] for name in PREFILL if request.args.get(name)}
    return _render_form(_form(**prefill), options=options)


@bp.post("/")
@generation_limit
def generate():
    """Run a generation from the form and show the image, or the form again with the error."""
    form = _form()
    if not form.validate():
        return _render_form(form, status=422)
    key = form.idempotency_key.data or ""
    try:
        params = validate({**form.parameters(), "options": _submitted_options(form)})

        def run():
            if params.count == 1:
                record = service().generate(params, created_by="web")
                return redirect(url_for("web.image", image_id=record.id), code=303)
            batch = service().generate_batch(params, created_by="web")
            for problem in batch.errors:
                flash(f"Image {problem.index + 1} of {params.count} failed: "
                      f"{problem.error.detail}")
            return redirect(url_for("web.batch", batch_id=batch.batch_id), code=303)

        if not idempotency.VISIBLE.fullmatch(key):
            return run()
        # A repeat of the same submission waits for the first and ends on the same page.
        return idempotency.once(caller(), key, idempotency.fingerprint(params.as_dict()), run,
                                store_errors=False, wait=True)
    except ValidationFailed as exc:
        form.add_errors(exc.errors)
        return _render_form(form, status=422)
    except (ProviderError, StorageError) as exc:
        return _render_form(form, banner=exc, status=exc.status)


@bp.get("/batches/<batch_id>")
def batch(batch_id: str):
    """Every image of one batch."""
    images = gallery.batch_images(batch_id)
    if not images:
        abort(404, description=f"Batch {batch_id} not found.")
    first = images[0]
    return render_template("batch.html", images=images, first=first, batch_id=batch_id,
                           asked=first.requested.get("count", len(images)))


@bp.get("/images")
def images():
    """The gallery: thumbnails, search, provider filter and pages."""
    q = request.args.get("q", "").strip()
    provider = request.args.get("provider") or None
    if provider not in (None, *BY_NAME["provider"].choices):
        provider = None
    batch = request.args.get("batch") or None
    before = request.args.get("before") or None
    after = None if before else request.args.get("after") or None
    try:
        result = gallery.page(GALLERY_PAGE, before, q or None, provider, after=after,
                              batch=batch)
    except gallery.BadCursor:
        abort(404)
    return render_template("gallery.html", page=result, q=q, provider=provider, batch=batch,
                           providers=list(service().providers.values()),
                           paged=bool(before or after))


def _rows(image: Image) -> list[dict]:
    """Each parameter with the value used, and the value asked for when that differs."""
    asked = image.requested or {}
    size = (image.width, image.height)
    asked_size = (asked.get("width", image.width), asked.get("height", image.height))
    asked_seed = asked.get("seed", image.seed)
    rows = [
        ("Provider", image.provider, asked.get("provider", image.provider), []),
        ("Model", image.model, asked.get("model", image.model), []),
        ("Size", "{}×{}".format(*size), "{}×{}".format(*asked_size), ["width", "height"]),
        ("Steps", image.steps, asked.get("steps", image.steps), ["steps"]),
        ("CFG scale", f"{image.cfg_scale:g}", f"{asked.get('cfg_scale', image.cfg_scale):g}",
         ["cfg_scale"]),
        ("Seed", "none (the model takes none)" if image.seed is None else image.seed,
         "random" if asked_seed == 0 else asked_seed, ["seed"]),
    ]
    return [
        {"label": label, "used": used, "asked": asked_value if asked_value != used else None,
         "ignored": any(name in image.ignored for name in names)}
        for label, used, asked_value, names in rows
    ]


@bp.get("/images/<int:image_id>")
def image(image_id: int):
    """One image with every parameter."""
    record = gallery.get_or_404(image_id)
    provider = service().providers.get(record.provider)
    siblings = gallery.batch_images(record.batch_id) if record.batch_id else []
    return render_template("image.html", image=record, rows=_rows(record), siblings=siblings,
                           provider_label=provider.label if provider else record.provider,
                           ignored=[BY_NAME[n].label if n in BY_NAME else n
                                    for n in record.ignored])


@bp.post("/images/<int:image_id>/delete")
def delete(image_id: int):
    """Delete an image (the form carries the CSRF token)."""
    service().delete(gallery.get_or_404(image_id))
    flash("Image deleted.")
    return redirect(url_for("web.images"), code=303)


@bp.get("/usage")
def usage():
    """Spending over the last 30 days: a chart by provider, totals by model and token."""
    ledger = spending()
    first, rows = ledger.chart_rows(30)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return render_template("usage.html", chart=usage_chart(first, rows, 30), first=first,
                           by_model=ledger.usage(since, None, "model"),
                           by_token=ledger.usage(since, None, "token"), budget=ledger.today())


@bp.get("/docs")
def docs():
    """Interactive API docs (Swagger UI, served by the app itself)."""
    return render_template("docs.html")


@bp.get("/docs/assets/<path:filename>")
def docs_asset(filename: str):
    """Swagger UI's files, from the swagger_ui_bundle package (no CDN)."""
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
