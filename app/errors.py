"""App-wide error handlers: JSON under /api/ (and /health), friendly pages elsewhere."""

from __future__ import annotations

import contextlib
import math
import time

import sqlalchemy as sa
from flask import Flask, render_template, request
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException, InternalServerError

from .api.errors import error_response, provider_error_response
from .extensions import db
from .params import ValidationFailed
from .providers.base import ProviderError
from .ratelimit import current_limiter
from .storage import StorageError

MESSAGES = {
    404: "Not found.",
    405: "Method not allowed.",
    413: "Request body too large.",
    500: "Internal server error.",
}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/api", "/health")


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
        if wants_json():
            custom = exc.description != type(exc).description
            detail = exc.description if custom else MESSAGES.get(status, exc.name + ".")
            return error_response(status, detail, headers=headers)
        return render_template("error.html", status=status, title=exc.name,
                               message=exc.description), status, headers

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded):
        current = current_limiter().current_limit
        wait = max(1, math.ceil(current.reset_at - time.time())) if current else 60
        detail = f"Rate limit of {exc.description} exceeded; try again in {wait} s."
        if wants_json():
            return error_response(429, detail, headers={"Retry-After": str(wait)})
        return render_template("error.html", status=429, title="Too many requests",
                               message=detail), 429, {"Retry-After": str(wait)}

    @app.errorhandler(ValidationFailed)
    def validation_failed(exc: ValidationFailed):
        return error_response(422, exc.errors)

    @app.errorhandler(ProviderError)
    def provider_error(exc: ProviderError):
        return provider_error_response(exc)

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    def database_unavailable(exc: sa.exc.DBAPIError):
        """The database went away (or is locked): a 503 the client may retry, no details."""
        app.logger.warning("Database unavailable on %s %s: %s", request.method, request.path,
                           type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__)
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            db.session.rollback()
        detail = "The database is unavailable; try again shortly."
        headers = {"Retry-After": "5"}
        if wants_json():
            return error_response(503, detail, headers=headers)
        return render_template("error.html", status=503, title="Service unavailable",
                               message=detail), 503, headers

    @app.errorhandler(StorageError)
    def storage_error(exc: StorageError):
        if wants_json():
            return error_response(exc.status, exc.detail, exc.code)
        return render_template("error.html", status=exc.status, title="Image storage unavailable",
                               message=exc.detail), exc.status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return error_response(500, MESSAGES[500])
        error = InternalServerError()
        return render_template("error.html", status=500, title=error.name,
                               message=error.description), 500
