"""One shape for every API error: {"detail": <message or list>, "error": <code>}."""

from __future__ import annotations

from flask import jsonify

CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "credits_exhausted",
    409: "conflict",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_error",
    503: "database_unavailable",
    504: "upstream_timeout",
}


def error_response(status: int, detail, code: str | None = None, headers: dict | None = None):
    response = jsonify({"detail": detail, "error": code or CODES.get(status, "error")})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def provider_error_response(exc):
    """A failed generation (a ProviderError) as its contract status, code and message."""
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
    return error_response(exc.status, exc.detail, exc.code, headers)
