"""What guards the app: API tokens, CORS, security headers, secure cookies, the proxy in front."""

from __future__ import annotations

import base64
import binascii
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
# Where API_TOKENS apply: the JSON API and the two compatible APIs.
TOKEN_PREFIXES = ("/api/", "/v1/", "/sdapi/")
# AUTOMATIC1111's clients authenticate as `--api-auth` users: HTTP Basic, the token as password.
BASIC_PREFIXES = ("/sdapi/",)


def presented_token(path: str) -> str | None:
    """The token the request carries: a Bearer token, or on the A1111 routes a Basic password."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        return value
    if scheme == "basic" and path.startswith(BASIC_PREFIXES):
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


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
        path = request.path
        if not tokens or not path.startswith(TOKEN_PREFIXES) or request.method == "OPTIONS":
            return None
        given_bytes = (presented_token(path) or "").encode()
        # Compare with every token (no early exit), so timing says nothing about which matched.
        matches = [name for name, token in tokens.items()
                   if hmac.compare_digest(given_bytes, token.encode())]
        if given_bytes and matches:
            g.api_token_name = matches[0]
            return None
        basic = path.startswith(BASIC_PREFIXES)
        how = "Authorization: Bearer <token>" + (", or Basic with the token as password" if basic
                                                 else "")
        return error_response(401, f"Missing or invalid API token ({how}).",
                              headers={"WWW-Authenticate": 'Basic realm="sdapi"' if basic
                                       else "Bearer"})

    # Images may come from the bucket or a CDN: that one origin is allowed for images.
    origin = app.extensions["image_store"].origin
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY.format(
        image_origin=f" {origin}" if origin else ""), **SECURITY_HEADERS}

    @app.after_request
    def security_headers(response):
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response
