"""The WSGI entry point for gunicorn (`wsgi:app`) and `flask --app wsgi`."""

from app import create_app
from config import ConfigurationError

try:
    app = create_app()
except ConfigurationError as exc:
    # A setting the app cannot start without: one clear line, not a traceback.
    raise SystemExit(f"imagegen cannot start: {exc}") from None
