"""Configuration read from the environment (and `.env`, which gunicorn does not read itself)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
DOTENV_PATH = BASE_DIR / ".env"

HOSTED_PROVIDERS = ("stability", "replicate", "openai")
DEFAULT_REPLICATE_MODEL = (
    "stability-ai/sdxl:39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
)


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it, and the app does not start."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def _csv(name: str) -> list[str]:
    return [item.strip() for item in (_env(name) or "").split(",") if item.strip()]


def _secret_key(instance_path: Path) -> str:
    """A random key kept in the instance folder, made once and shared by every worker."""
    path = instance_path / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        key = secrets.token_hex(32)
        handle.write(key)
    return key


def database_url(url: str) -> str:
    """The SQLAlchemy URL, with PostgreSQL's usual spellings sent to the psycopg 3 driver."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def shared_deployment(config) -> str | None:
    """What makes this one node of several (PostgreSQL, a bucket), or None for one machine."""
    if config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return "DATABASE_URL is PostgreSQL"
    if config.get("S3_BUCKET"):
        return "S3_BUCKET is set"
    return None


class ConfigurationError(RuntimeError):
    """A setting that the app cannot start without; the message says which and why."""


def require_shared_secret(config) -> None:
    """Every node of a deployment must sign sessions and CSRF tokens with the same key."""
    reason = shared_deployment(config)
    if reason and not config.get("SECRET_KEY"):
        raise ConfigurationError(
            f"SECRET_KEY must be set: {reason}, so this app may run as several nodes, and all "
            "of them must share one SECRET_KEY (a key made by one node is unknown to the others)."
        )


def load_config(instance_path: str | Path, dotenv_path: str | Path = DOTENV_PATH) -> dict:
    """Settings for one app, from the environment; create_app() applies overrides on top.

    The `.env` file fills in what the environment does not set (a variable set there wins).
    """
    load_dotenv(dotenv_path)
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    images_dir = Path(_env("IMAGES_DIR", "static/images"))
    if not images_dir.is_absolute():
        images_dir = BASE_DIR / images_dir
    config = {
        "SECRET_KEY": _env("SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": database_url(
            _env("DATABASE_URL", f"sqlite:///{instance / 'app.db'}")),
        "IMAGES_DIR": str(images_dir),
        "S3_BUCKET": _env("S3_BUCKET"),
        "S3_ENDPOINT_URL": _env("S3_ENDPOINT_URL"),
        "S3_REGION": _env("S3_REGION"),
        "S3_PREFIX": _env("S3_PREFIX", ""),
        "IMAGES_BASE_URL": _env("IMAGES_BASE_URL"),
        "STABILITY_API_KEY": _env("STABILITY_API_KEY"),
        "STABILITY_BASE_URL": _env("STABILITY_BASE_URL", "https://api.stability.ai"),
        "STABILITY_MODEL": _env("STABILITY_MODEL", "sd3.5-large"),
        "REPLICATE_API_TOKEN": _env("REPLICATE_API_TOKEN"),
        "REPLICATE_BASE_URL": _env("REPLICATE_BASE_URL", "https://api.replicate.com"),
        "REPLICATE_MODEL": _env("REPLICATE_MODEL", DEFAULT_REPLICATE_MODEL),
        "REPLICATE_MODELS": _env("REPLICATE_MODELS"),
        "OPENAI_API_KEY": _env("OPENAI_API_KEY"),
        "OPENAI_BASE_URL": _env("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        "OPENAI_MODEL": _env("OPENAI_MODEL", "gpt-image-2"),
        "GENERATION_TIMEOUT": float(_env("GENERATION_TIMEOUT", "120")),
        "API_TOKENS": _csv("API_TOKENS"),
        "DAILY_BUDGET": _env("DAILY_BUDGET"),
        "TOKEN_BUDGETS": _env("TOKEN_BUDGETS"),
        "PRICES": _env("PRICES"),
        "RATE_LIMIT": _env("RATE_LIMIT", "30 per minute"),
        "RATE_LIMIT_STORAGE_URI": _env("RATE_LIMIT_STORAGE_URI"),
        "CORS_ORIGINS": _csv("CORS_ORIGINS"),
        "PROXY_COUNT": int(_env("PROXY_COUNT", "1")),
        "MAX_CONTENT_LENGTH": int(_env("MAX_CONTENT_LENGTH", str(1024 * 1024))),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "SESSION_COOKIE_SAMESITE": "Lax",
    }
    if not config["SECRET_KEY"] and not shared_deployment(config):
        config["SECRET_KEY"] = _secret_key(instance)  # one machine: kept in the instance folder
    configured = [
        name
        for name, key in (("stability", "STABILITY_API_KEY"), ("replicate", "REPLICATE_API_TOKEN"),
                          ("openai", "OPENAI_API_KEY"))
        if config[key]
    ]
    config["DEFAULT_PROVIDER"] = _env("DEFAULT_PROVIDER", configured[0] if configured else "offline")
    return config
