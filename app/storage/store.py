"""The image store the service talks to: stage, place or discard, open, delete, list, URLs.

It knows nothing of providers, and nothing of which backend holds the bytes. An image is
validated (decoded whole) before anything is written; the backend then writes ahead where it
can (a temporary file on disk: the file while the thumbnail is shrunk, the thumbnail while the
record is made), and the final names are given once the record's id is known, before the record
is committed. Whatever a failed generation wrote is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from .base import Backend, PendingWrite, StorageError
from .images import (
    CONTENT_TYPES,
    FORMATS,
    a1111_parameters,
    open_image,
    shrink_to_thumbnail,
    thumbnail_webp,
    with_png_text,
)

THUMBS = "thumbs/"

log = logging.getLogger(__name__)

# Decoding holds a full-size image in memory (4 MB at 1024x1024). It is done on a few threads of
# its own (about as many as there are cores, which is all the decoding can use): a burst of
# generations then neither multiplies a worker's memory nor leaves large freed buffers behind in
# the malloc arena of every request thread.
_IMAGE_WORK: ThreadPoolExecutor
_WRITES: ThreadPoolExecutor


def _per_process_state() -> None:
    """Made again in a forked child: the parent's threads do not exist there."""
    global _IMAGE_WORK, _WRITES
    _IMAGE_WORK = ThreadPoolExecutor(max_workers=min(4, max(2, os.cpu_count() or 2)),
                                     thread_name_prefix="image")
    _WRITES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="image-write")


_per_process_state()
os.register_at_fork(after_in_child=_per_process_state)


@dataclass
class StagedImage:
    """A validated image and its thumbnail, waiting for the record's id to get final names."""

    store: ImageStore
    format: str
    width: int
    height: int
    file_size: int
    sha256: str
    image: PendingWrite
    thumb: Future[PendingWrite]  # still being encoded and written ahead on an image thread
    # A unique stand-in for the record's filename until place() gives the real one.
    placeholder: str = field(default_factory=lambda: f".staged-{uuid.uuid4().hex}")
    filename: str | None = None
    _written: list[str] = field(default_factory=list)

    def place(self, stem: str, image_id: int) -> str:
        """Write (or rename) both under their final names; returns the image's filename."""
        filename, thumb_key = f"{stem}.{self.format}", self.store.thumb_key(image_id)
        self._written += [thumb_key, filename]  # discard() removes them should anything fail
        # Waited for here, not on a writer thread (which must never wait on the image threads).
        thumb = self.thumb.result()
        # Both at once: on S3 these are two uploads, and the generation waits for them.
        thumb_placed = _WRITES.submit(thumb.finish, thumb_key)
        try:
            self.image.finish(filename)
        finally:
            thumb_failed = thumb_placed.exception()
        if thumb_failed is not None:
            raise thumb_failed
        self.filename = filename
        return filename

    def discard(self, image_id: int | None = None) -> None:
        """Remove whatever this staging wrote, under temporary or final names."""
        self.image.abort()
        _abort(self.thumb)
        for key in self._written:
            try:
                self.store.backend.delete(key)
            except StorageError as exc:  # `images verify` finds what could not be removed
                log.warning("Could not remove %s after a failed generation: %s", key, exc.detail)


class ImageStore:
    def __init__(self, backend: Backend, base_url: str | None = None):
        self.backend = backend
        self.base_url = base_url.rstrip("/") + "/" if base_url else None

    @staticmethod
    def thumb_key(image_id: int) -> str:
        return f"{THUMBS}{image_id}.webp"

    def stage(self, data: bytes, description: dict | None) -> StagedImage:
        """Validate the image and shrink its thumbnail; the backend may start writing (the
        thumbnail is encoded and written ahead in the background; place() waits for it).

        `description` holds the a1111_parameters() arguments but the size (read from the image)
        and is written into a PNG's `parameters` text; its `generation`, when present, goes into the
        `imagegen` text chunk as JSON. None keeps the bytes exactly as given.
        """
        return _IMAGE_WORK.submit(self._prepare, data, description).result()

    def _prepare(self, data: bytes, description: dict | None) -> StagedImage:
        """Decode, start writing the file, make the thumbnail (on one of the image threads)."""
        image = open_image(data)
        fmt, (width, height) = FORMATS[image.format], image.size
        if fmt == "png" and description is not None:
            parameters = {k: v for k, v in description.items() if k != "generation"}
            text = a1111_parameters(width=width, height=height, **parameters)
            data = with_png_text(data, "parameters", text)
            if description.get("generation") is not None:
                data = with_png_text(data, "imagegen", json.dumps(
                    description["generation"], ensure_ascii=False, separators=(",", ":")))
        # The file is written (and synced, on disk) while the thumbnail is made; the thumbnail is
        # encoded and written, on an image thread again, while the record is made (place() waits
        # for it). Only the shrunk picture is kept for that, not the full-size one.
        pending = _WRITES.submit(self.backend.write_ahead, data, CONTENT_TYPES[fmt])
        try:
            digest = hashlib.sha256(data).hexdigest()
            thumb = _IMAGE_WORK.submit(self._write_thumbnail, shrink_to_thumbnail(image))
        except BaseException:
            _abort(pending)
            raise
        try:
            written = pending.result()
        except BaseException:
            # Not waited for: on this image thread that could wait for the other image thread.
            if not thumb.cancel():
                thumb.add_done_callback(_abort)
            raise
        return StagedImage(self, fmt, width, height, len(data), digest, written, thumb)

    def _write_thumbnail(self, small) -> PendingWrite:
        return self.backend.write_ahead(thumbnail_webp(small), CONTENT_TYPES["webp"])

    def open(self, filename: str) -> BinaryIO:
        """The stored image as a readable binary stream (close it); FileNotFoundError if gone."""
        return self.backend.open(filename)

    def delete(self, filename: str, image_id: int) -> None:
        self.backend.delete(filename)
        self.backend.delete(self.thumb_key(image_id))

    def files(self) -> list[str]:
        """Names of the stored images (not thumbnails or unfinished writes)."""
        return sorted(key for key in self.backend.list() if "/" not in key)

    def thumbnails(self) -> list[str]:
        """Keys of the stored thumbnails (`thumbs/<id>.webp`)."""
        return sorted(self.backend.list(THUMBS))

    def leftovers(self, older_than: float = 600) -> list[str]:
        """Keys of writes a killed process never finished."""
        return self.backend.leftovers(older_than)

    def url(self, filename: str) -> str:
        return self.base_url + filename if self.base_url else self.backend.url(filename)

    def thumbnail_url(self, image_id: int) -> str:
        key = self.thumb_key(image_id)
        return self.base_url + key if self.base_url else self.backend.url(key)

    @property
    def origin(self) -> str | None:
        """Where image URLs point when that is another site (for the page's image policy)."""
        if self.base_url and "://" in self.base_url:
            scheme, rest = self.base_url.split("://", 1)
            return f"{scheme}://{rest.split('/', 1)[0]}"
        return None if self.base_url else self.backend.origin

    def check(self) -> None:
        self.backend.check()


def _abort(pending: Future) -> None:
    """Abort a background write once it is done (nothing to do if it failed)."""
    with contextlib.suppress(Exception):
        pending.result().abort()
