"""JSON API routes: a superset of the original FastAPI tutorial's API."""

from __future__ import annotations

import json

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request, url_for
from werkzeug.exceptions import UnsupportedMediaType

from .. import gallery, idempotency
from ..callers import caller, token_name
from ..extensions import db
from ..generation import service
from ..params import PROVIDER_NAMES, ValidationFailed, error, validate
from ..ratelimit import generation_limit, store_status
from ..spending import GROUPINGS, parse_time, spending
from ..storage import StorageError, current_store

bp = Blueprint("api", __name__)


def json_body():
    """The decoded JSON body; 415 when it is declared as something else or does not parse."""
    mimetype = request.mimetype
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("Request body must be JSON (Content-Type: application/json).")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ValidationFailed([error(None, "Field required", "missing")])
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsupportedMediaType(f"Request body is not valid JSON: {exc}.") from exc


@bp.post("/generate")
@generation_limit
def generate():
    """Generate one image and return its record, or a batch of them (count > 1); once per
    Idempotency-Key."""
    key = idempotency.header_key()
    body = json_body()
    params = validate(body)
    created_by = token_name("api")

    def run():
        if params.count > 1:
            batch = service().generate_batch(params, created_by=created_by)
            response = jsonify(batch.to_dict())
            response.headers["Location"] = url_for("api.list_images", batch=batch.batch_id)
        else:
            record = service().generate(params, created_by=created_by)
            response = jsonify(record.to_dict())
            response.headers["Location"] = url_for("api.get_image", image_id=record.id)
        response.status_code = 201
        return response

    if key is None:
        return run()
    return idempotency.once(caller(), key, idempotency.fingerprint(body), run)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(
            [{"loc": ["query", name], "msg": "Input should be a valid integer", "type": "int_parsing"}]
        ) from None
    if not low <= value <= high:
        raise ValidationFailed([{"loc": ["query", name],
                                 "msg": f"Input should be between {low} and {high}",
                                 "type": "range"}])
    return value


@bp.get("/images")
def list_images():
    """Records, newest first, with cursor paging, word search and a provider filter."""
    limit = _int_arg("limit", 50, 1, 200)
    provider = request.args.get("provider") or None
    if provider and provider not in PROVIDER_NAMES:
        options = ", ".join(PROVIDER_NAMES)
        raise ValidationFailed([{"loc": ["query", "provider"],
                                 "msg": f"Input should be one of {options}",
                                 "type": "literal_error"}])
    q = request.args.get("q") or None
    batch = request.args.get("batch") or None
    try:
        result = gallery.page(limit, request.args.get("before") or None, q, provider, batch=batch)
    except gallery.BadCursor:
        raise ValidationFailed([{"loc": ["query", "before"], "msg": "Invalid cursor",
                                 "type": "value_error"}]) from None
    response = jsonify([image.to_dict() for image in result.items])
    response.headers["X-Total-Count"] = str(result.total)
    if result.next_cursor:
        args = {"limit": limit, "q": q, "provider": provider, "batch": batch,
                "before": result.next_cursor}
        next_url = url_for("api.list_images", _external=True, **{k: v for k, v in args.items() if v})
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


@bp.get("/images/<int:image_id>")
def get_image(image_id: int):
    """One image record."""
    return jsonify(gallery.get_or_404(image_id).to_dict())


@bp.delete("/images/<int:image_id>")
def delete_image(image_id: int):
    """Delete the record, the file and the thumbnail."""
    service().delete(gallery.get_or_404(image_id))
    return "", 204


@bp.get("/providers")
def providers():
    """Every provider, whether it is configured, its models and what each honours."""
    return jsonify(described_providers())


def described_providers() -> list[dict]:
    """/api/providers' list: each provider and model with its price, Stability's balance."""
    generation, prices = service(), spending()
    described = []
    for provider in generation.providers.values():
        entry = prices.describe_models(
            provider.describe(default=provider.name == generation.default_provider))
        balance = getattr(provider, "balance", None)
        credits = balance() if balance is not None and provider.configured else None
        if credits is not None:
            entry["balance"] = credits
        described.append(entry)
    return described


def _time_arg(name: str, end: bool = False):
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return parse_time(raw, end=end)
    except ValueError:
        raise ValidationFailed([{"loc": ["query", name],
                                 "msg": "Input should be an ISO 8601 date or date-time",
                                 "type": "datetime_parsing"}]) from None


@bp.get("/usage")
def usage():
    """Spending (settled charges) by day, provider, model or token, and today's budget."""
    by = request.args.get("by") or "day"
    if by not in GROUPINGS:
        raise ValidationFailed([{"loc": ["query", "by"],
                                 "msg": "Input should be " + ", ".join(f"'{g}'" for g in GROUPINGS),
                                 "type": "literal_error"}])
    return jsonify(spending().usage(_time_arg("since"), _time_arg("until", end=True), by))


def health():
    """Liveness, which keys are configured (never their values), the database and storage."""
    config = current_app.config
    try:
        db.session.execute(sa.text("SELECT 1"))
        database = "ok"
    except sa.exc.SQLAlchemyError:
        database = "error"
    storage = _storage_state()
    healthy = database == storage == "ok"
    body = {
        "status": "ok" if healthy else "degraded",
        "stability_key": bool(config["STABILITY_API_KEY"]),
        "replicate_key": bool(config["REPLICATE_API_TOKEN"]),
        "openai_key": bool(config.get("OPENAI_API_KEY")),
        "database": database,
        "storage": storage,
    }
    rate_limit_store = store_status()
    if rate_limit_store:
        body["rate_limit_store"] = rate_limit_store
    return jsonify(body), 200 if healthy else 503


def _storage_state() -> str:
    try:
        current_store().check()
    except StorageError:
        return "error"
    return "ok"


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document, generated from the parameter rules."""
    from .openapi import document

    # Not jsonify(): it sorts keys, and the document reads best in its own order.
    return current_app.response_class(json.dumps(document(), ensure_ascii=False),
                                      mimetype="application/json")
