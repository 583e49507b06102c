"""Image storage: the store the app uses, and the backend the configuration chooses."""

from __future__ import annotations

from flask import current_app

from .base import Backend, PendingWrite, StorageError
from .images import (
    CONTENT_TYPES,
    FORMATS,
    MAX_BYTES,
    MAX_PIXELS,
    THUMB_SIZE,
    InvalidImage,
    a1111_parameters,
    open_image,
    png_text_chunk,
    with_png_text,
)
from .local import LocalBackend
from .store import ImageStore, StagedImage

__all__ = [
    "CONTENT_TYPES", "FORMATS", "MAX_BYTES", "MAX_PIXELS", "THUMB_SIZE", "Backend",
    "ImageStore", "InvalidImage", "backend_from_config", "LocalBackend", "PendingWrite", "StagedImage", "StorageError",
    "a1111_parameters", "current_store", "open_image", "png_text_chunk", "store_from_config",
    "with_png_text",
]


def backend_from_config(config) -> Backend:
    """The S3 bucket when S3_BUCKET is set, else the images folder."""
    if not config.get("S3_BUCKET"):
        return LocalBackend(config["IMAGES_DIR"])
    from .s3 import S3Backend

    return S3Backend(
        config["S3_BUCKET"], prefix=config.get("S3_PREFIX") or "",
        endpoint_url=config.get("S3_ENDPOINT_URL"), region=config.get("S3_REGION"),
        # Usually unset here: boto3 then reads AWS_* the standard way (environment, files, role).
        access_key=config.get("AWS_ACCESS_KEY_ID"), secret_key=config.get("AWS_SECRET_ACCESS_KEY"),
    )


def store_from_config(config) -> ImageStore:
    return ImageStore(backend_from_config(config), base_url=config.get("IMAGES_BASE_URL"))


def current_store() -> ImageStore:
    """The store of the running app."""
    return current_app.extensions["image_store"]
