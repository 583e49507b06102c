"""The application factory."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, send_from_directory
from sqlalchemy import event

from config import BASE_DIR, database_url, load_config, require_shared_secret

from .extensions import csrf, db, migrate
from .generation import GenerationService
from .providers import build_providers
from .security import named_tokens
from .spending import Spending
from .storage import store_from_config


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(BASE_DIR / "instance"),
        static_folder=str(BASE_DIR / "static"),
        template_folder=str(BASE_DIR / "templates"),
    )
    app.config.update(load_config(app.instance_path))
    app.config.update(overrides or {})
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    require_shared_secret(app.config)
    register_extensions(app)
    register_services(app)
    register_blueprints(app)
    register_rate_limit(app)
    register_error_handlers(app)
    register_security(app)
    register_cli(app)
    return app


def register_extensions(app: Flask) -> None:
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
        connect = options.setdefault("connect_args", {})
        connect.setdefault("connect_timeout", 5)
        # Every query here is short: compiling one with JIT costs more than it saves (8 ms on a
        # search that counts 70,000 matches).
        connect.setdefault("options", "-c jit=off")
    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    csrf.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            event.listen(db.engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL, a busy timeout and foreign keys on every connection (the Python 3.11-safe way)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def register_services(app: Flask) -> None:
    store = app.extensions["image_store"] = store_from_config(app.config)
    app.extensions["generation"] = GenerationService(build_providers(app.config), store, app.config)
    # API_TOKENS, PRICES, DAILY_BUDGET and TOKEN_BUDGETS: a malformed one stops the app here.
    app.config["API_TOKEN_NAMES"] = named_tokens(app.config["API_TOKENS"])
    app.extensions["spending"] = Spending(app.config, list(app.config["API_TOKEN_NAMES"]))

    # Images may live outside static/ (IMAGES_DIR); nginx serves them itself in production.
    @app.get("/static/images/<path:filename>", endpoint="image_file")
    def image_file(filename: str):
        return send_from_directory(Path(app.config["IMAGES_DIR"]), filename)


def register_blueprints(app: Flask) -> None:
    from .api import bp as api_bp
    from .api.routes import health
    from .web import bp as web_bp

    csrf.exempt(api_bp)
    app.register_blueprint(api_bp, url_prefix="/api")
    app.register_blueprint(web_bp)
    app.add_url_rule("/health", view_func=health)
    from .compat import register as register_compat

    register_compat(app)


def register_rate_limit(app: Flask) -> None:
    from .ratelimit import register

    register(app)


def register_error_handlers(app: Flask) -> None:
    from .errors import register

    register(app)


def register_security(app: Flask) -> None:
    from .security import register

    register(app)


def register_cli(app: Flask) -> None:
    from .cli import generate_command, images_group, usage_command

    app.cli.add_command(generate_command)
    app.cli.add_command(images_group)
    app.cli.add_command(usage_command)

