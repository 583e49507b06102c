"""The JSON API blueprint."""

from . import library  # noqa: F401  (its routes join the blueprint)
from .routes import bp

__all__ = ["bp"]
