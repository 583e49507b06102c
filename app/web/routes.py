"""The pages: the generation form, the gallery and one image."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from .. import gallery
from ..extensions import db
from ..generation import service
from ..ratelimit import generation_limit
from ..models import Image
from ..params import BY_NAME, ValidationFailed, validate
from ..providers.base import ProviderError
from .forms import GenerateForm

bp = Blueprint("web", __name__)

PREFILL = ("prompt", "negative_prompt", "provider", "model", "width", "height", "steps",
           "cfg_scale", "seed")


def _form(**prefill) -> GenerateForm:
    generation = service()
    form = GenerateForm(**prefill)
    form.provider.choices = [
        (p.name, p.label + ("" if p.configured else " (not configured)"))
        for p in generation.providers.values()
    ]
    form.model.choices = {
        p.label: [(m.name, m.label) for m in p.models] for p in generation.providers.values()
    }
    form.model.choices = {"": [("", "Provider's default")], **form.model.choices}
    if not form.provider.data:
        form.provider.data = generation.default_provider
    return form


def _render_form(form: GenerateForm, banner: str | None = None, status: int = 200):
    recent = gallery.page(limit=12).items
    providers = [p.describe(default=p.name == service().default_provider)
                 for p in service().providers.values()]
    return render_template("index.html", form=form, recent=recent, banner=banner,
                           providers=providers), status


def _prefill_from(image: Image, keep_prompt: bool) -> dict:
    values = {name: getattr(image, name) for name in PREFILL}
    values.update(width=image.requested.get("width", image.width),
                  height=image.requested.get("height", image.height))
    if not keep_prompt:
        values.update(prompt="", negative_prompt="")
    return values


@bp.get("/")
def index():
    """The generation form and the newest images."""
    prefill = {}
    source = request.args.get("from", type=int)
    if source is not None:
        image = db.get_or_404(Image, source)
        prefill = _prefill_from(image, keep_prompt=request.args.get("keep") != "seed")
    else:
        prefill = {name: request.args[name] for name in PREFILL if request.args.get(name)}
    return _render_form(_form(**prefill))


@bp.post("/")
@generation_limit
def generate():
    """Run a generation from the form and show the image, or the form again with the error."""
    form = _form()
    if not form.validate():
        return _render_form(form, status=422)
    try:
        record = service().generate(validate(form.parameters()))
    except ValidationFailed as exc:
        form.add_errors(exc.errors)
        return _render_form(form, status=422)
    except ProviderError as exc:
        return _render_form(form, banner=exc.detail, status=exc.status)
    return redirect(url_for("web.image", image_id=record.id), code=303)


@bp.get("/images")
def images():
    """The gallery: thumbnails, search, provider filter and pages."""
    q = request.args.get("q", "").strip()
    provider = request.args.get("provider") or None
    if provider not in (None, *BY_NAME["provider"].choices):
        provider = None
    try:
        result = gallery.page(48, request.args.get("before") or None, q or None, provider)
    except gallery.BadCursor:
        abort(404)
    return render_template("gallery.html", page=result, q=q, provider=provider,
                           providers=list(service().providers.values()))


@bp.get("/images/<int:image_id>")
def image(image_id: int):
    """One image with every parameter."""
    return render_template("image.html", image=db.get_or_404(Image, image_id))


@bp.post("/images/<int:image_id>/delete")
def delete(image_id: int):
    """Delete an image (the form carries the CSRF token)."""
    service().delete(db.get_or_404(Image, image_id))
    flash("Image deleted.")
    return redirect(url_for("web.images"), code=303)
