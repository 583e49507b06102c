"""What guards the app: API tokens, CORS, security headers, secure cookies, the proxy in front."""

from __future__ import annotations

import hmac
import re

from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from config import ConfigError

from .api.errors import error_response

TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:{image_origin}",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
}


def named_tokens(entries: list[str]) -> dict[str, str]:
    """API_TOKENS entries (`name:token` or a bare token, named token-N by its place) by name."""
    named: dict[str, str] = {}
    for place, entry in enumerate(entries, start=1):
        name, sep, token = entry.partition(":")
        name, token = (name.strip(), token.strip()) if sep else (f"token-{place}", entry.strip())
        if not token or not TOKEN_NAME.fullmatch(name):
            raise ConfigError(f"API_TOKENS: entry {place} should be a token or name:token, the "
                              "name 1-64 letters, digits or ._@- and the token not empty.")
        if name in named:
            raise ConfigError(f"API_TOKENS: the name {name!r} is given twice.")
        if token in named.values():
            raise ConfigError(f"API_TOKENS: entry {place} repeats another entry's token.")
        named[name] = token
    return named


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def register(app: Flask) -> None:
    count = app.config["PROXY_COUNT"]
    if count:
        # Trust X-Forwarded-* from exactly the proxies in front, no more (else clients spoof them).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    app.session_interface = SessionInterface()
    if app.config["CORS_ORIGINS"]:
        CORS(app, resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}},
             allow_headers=["Authorization", "Content-Type"],
             expose_headers=["Location", "Link", "X-Total-Count", "Retry-After"], max_age=600)

    @app.before_request
    def require_api_token():
        tokens = app.config["API_TOKEN_NAMES"]
        if not tokens or not request.path.startswith("/api/") or request.method == "OPTIONS":
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given_bytes = given.strip().encode()
        # Compare with every token (no early exit), so timing says nothing about which matched.
        matches = [name for name, token in tokens.items()
                   if hmac.compare_digest(given_bytes, token.encode())]
        if scheme.lower() == "bearer" and matches:
            g.api_token_name = matches[0]
            return None
        return error_response(401, "Missing or invalid API token (Authorization: Bearer <token>).",
                              headers={"WWW-Authenticate": "Bearer"})

    # Images may come from the bucket or a CDN: that one origin is allowed for images.
    origin = app.extensions["image_store"].origin
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY.format(
        image_origin=f" {origin}" if origin else ""), **SECURITY_HEADERS}

    @app.after_request
    def security_headers(response):
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response
