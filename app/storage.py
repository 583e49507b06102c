"""Image files: validation, atomic writes, thumbnails, embedded parameters, deletion.

The store knows nothing of providers: it takes bytes, refuses anything that is not a complete,
sensibly sized PNG, JPEG or WebP, and writes the file and its thumbnail so that a reader never
sees a partial file. A PNG keeps its pixel data byte for byte; only a `parameters` chunk is added.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import tempfile
import time
import warnings
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

MAX_PIXELS = 40_000_000  # far above any model's output, far below a decompression bomb
MAX_BYTES = 50 * 1024 * 1024
THUMB_SIZE = (384, 384)
FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
TEMP_PREFIX = ".tmp-"

Image.MAX_IMAGE_PIXELS = MAX_PIXELS

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


class InvalidImage(Exception):
    """The bytes are not an image this store accepts."""


@dataclass
class StagedImage:
    """An image written under temporary names, waiting for its record's id to get final ones."""

    store: ImageStore
    format: str
    width: int
    height: int
    file_size: int
    temp_file: Path
    temp_thumb: Path
    sha256: str = ""
    filename: str | None = None

    def place(self, stem: str, image_id: int) -> str:
        """Give the files their final names; returns the image's filename."""
        self.filename = f"{stem}.{self.format}"
        os.replace(self.temp_thumb, self.store.thumb_path(image_id))
        os.replace(self.temp_file, self.store.root / self.filename)
        return self.filename

    def discard(self, image_id: int | None = None) -> None:
        """Remove whatever this staging wrote, under temporary or final names."""
        paths = [self.temp_file, self.temp_thumb]
        if self.filename:
            paths.append(self.store.root / self.filename)
        if image_id is not None:
            paths.append(self.store.thumb_path(image_id))
        for path in paths:
            path.unlink(missing_ok=True)


class ImageStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.thumbs = self.root / "thumbs"

    def thumb_path(self, image_id: int) -> Path:
        return self.thumbs / f"{image_id}.webp"

    def stage(self, data: bytes, description: dict | None = None) -> StagedImage:
        """Validate the image, then write it and its thumbnail under temporary names.

        `description` holds the a1111_parameters() arguments but the size, read from the image;
        without one the bytes are kept exactly as given (an imported image).
        """
        prepared = _IMAGE_WORK.submit(self._prepare, data, description).result()
        fmt, width, height, size, thumb, pending, digest = prepared
        try:
            temp_thumb = self._write_temp(self.thumbs, thumb)
        except BaseException:
            _discard(pending)
            raise
        try:
            temp_file = pending.result()
        except BaseException:
            temp_thumb.unlink(missing_ok=True)
            raise
        return StagedImage(self, fmt, width, height, size, temp_file, temp_thumb, digest)

    def _prepare(self, data: bytes, description: dict | None):
        """Decode, start writing the file, make the thumbnail (on one of the image threads)."""
        image = open_image(data)
        fmt, (width, height) = FORMATS[image.format], image.size
        if fmt == "png" and description is not None:
            text = a1111_parameters(width=width, height=height, **description)
            data = with_png_text(data, "parameters", text)
        # The file is written (and synced) while the thumbnail is made.
        pending = _WRITES.submit(self._write_temp, self.root, data)
        try:
            thumb = _thumbnail(image)
        except BaseException:
            _discard(pending)
            raise
        return fmt, width, height, len(data), thumb, pending, hashlib.sha256(data).hexdigest()

    def open(self, filename: str) -> BinaryIO:
        """The stored file, for reading (FileNotFoundError when it is gone)."""
        return (self.root / filename).open("rb")

    def delete(self, filename: str, image_id: int) -> None:
        (self.root / filename).unlink(missing_ok=True)
        self.thumb_path(image_id).unlink(missing_ok=True)

    def files(self) -> list[str]:
        """Names of the image files in the folder (not thumbnails or temporary files)."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_file() and not entry.name.startswith(".")
        )

    def temp_files(self, older_than: float = 600) -> list[Path]:
        """Leftovers of writes that a killed process never finished (not ones still running)."""
        cutoff = time.time() - older_than
        return [
            path
            for folder in (self.root, self.thumbs)
            if folder.is_dir()
            for path in folder.glob(f"{TEMP_PREFIX}*")
            if path.stat().st_mtime < cutoff
        ]

    @staticmethod
    def _write_temp(folder: Path, data: bytes) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(name, 0o644)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)


def _thumbnail(image: Image.Image) -> bytes:
    """The WebP thumbnail (the image is shrunk in place)."""
    # A box reduction by a whole factor first, then one bilinear pass: a third of the time of
    # bicubic from full size, and the same picture to the eye (about 1/255 apart on average).
    image.thumbnail(THUMB_SIZE, Image.Resampling.BILINEAR, reducing_gap=1.0)
    thumb = io.BytesIO()
    # method 1: the same size as method 2 at this quality (within 1%), a quarter faster.
    image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB").save(
        thumb, "WEBP", quality=80, method=1
    )
    return thumb.getvalue()


def _discard(pending: Future) -> None:
    """Remove the file a background write made, once it is done (or nothing, if it failed)."""
    with contextlib.suppress(OSError):
        pending.result().unlink(missing_ok=True)


def open_image(data: bytes) -> Image.Image:
    """Decode the whole image once, refusing garbage, truncation, bombs and other formats."""
    if len(data) > MAX_BYTES:
        raise InvalidImage(f"image is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise InvalidImage(f"unsupported image format {image.format}")
            if image.width * image.height > MAX_PIXELS:
                raise InvalidImage(f"image claims {image.width}x{image.height} pixels")
            image.load()
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage("image claims too many pixels") from exc
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error, EOFError) as exc:
        raise InvalidImage(f"not a complete image ({exc.__class__.__name__})") from exc
    return image


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_text_chunk(key: str, text: str) -> bytes:
    """tEXt when the text is Latin-1, as AUTOMATIC1111 writes it; iTXt (UTF-8) otherwise."""
    try:
        return _chunk(b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        body = key.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")
        return _chunk(b"iTXt", body)


def with_png_text(data: bytes, key: str, text: str) -> bytes:
    """The same PNG with one text chunk under `key` after IHDR, replacing any it had."""
    if not data.startswith(PNG_SIGNATURE):
        raise InvalidImage("not a PNG")
    keyword = key.encode("latin-1") + b"\0"
    parts = [PNG_SIGNATURE]
    offset = len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        end = offset + 12 + length
        body = data[offset + 8 : end - 4]
        is_ours = kind in (b"tEXt", b"iTXt", b"zTXt") and body.startswith(keyword)
        if not is_ours:
            parts.append(data[offset:end])
        if kind == b"IHDR":
            parts.append(png_text_chunk(key, text))
        offset = end
        if kind == b"IEND":
            break
    return b"".join(parts)


def a1111_parameters(
    *,
    prompt: str, negative_prompt: str, steps: int | None, cfg_scale: float | None,
    seed: int | None, width: int, height: int, model: str,
) -> str:
    """The text AUTOMATIC1111's PNG Info reads back (an unknown value is left out)."""
    settings = [
        ("Steps", steps), ("CFG scale", None if cfg_scale is None else f"{cfg_scale:g}"),
        ("Seed", seed), ("Size", f"{width}x{height}"), ("Model", model or None),
    ]
    line = ", ".join(f"{name}: {value}" for name, value in settings if value is not None)
    return f"{prompt}\nNegative prompt: {negative_prompt}\n{line}"
