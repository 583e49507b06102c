"""The JSON API blueprint."""

from .routes import bp

__all__ = ["bp"]
