"""The HTML blueprint."""

from .routes import bp

__all__ = ["bp"]
