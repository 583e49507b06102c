"""Who is asking: the API token's name (set by app.security), or the client's address."""

from __future__ import annotations

from flask import g, request


def token_name(default: str = "api") -> str:
    """The name of the API token this request came with, or `default` when none is needed."""
    return g.get("api_token_name") or default


def caller() -> str:
    """Who an Idempotency-Key belongs to: the token's name, else the client's address."""
    name = g.get("api_token_name")
    return f"token:{name}" if name else f"address:{request.remote_addr}"
