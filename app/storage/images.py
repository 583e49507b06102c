"""What is done to image bytes whatever the backend: validation, thumbnails, embedded text.

Refuses anything that is not a complete, sensibly sized PNG, JPEG or WebP. A PNG keeps its pixel
data byte for byte; only text chunks are added.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zlib

from PIL import Image

MAX_PIXELS = 40_000_000  # far above any model's output, far below a decompression bomb
MAX_BYTES = 50 * 1024 * 1024
THUMB_SIZE = (384, 384)
FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class InvalidImage(Exception):
    """The bytes are not an image this store accepts."""


def shrink_to_thumbnail(image: Image.Image) -> Image.Image:
    """The image shrunk in place to the thumbnail's size (and returned)."""
    # A box reduction by a whole factor first, then one bilinear pass: a third of the time of
    # bicubic from full size, and the same picture to the eye (about 1/255 apart on average).
    image.thumbnail(THUMB_SIZE, Image.Resampling.BILINEAR, reducing_gap=1.0)
    return image


def thumbnail_webp(small: Image.Image) -> bytes:
    """The WebP of an image shrink_to_thumbnail() made."""
    thumb = io.BytesIO()
    # method 1: the same size as method 2 at this quality (within 1%), a quarter faster.
    small.convert("RGBA" if small.mode in ("RGBA", "LA", "P") else "RGB").save(
        thumb, "WEBP", quality=80, method=1
    )
    return thumb.getvalue()


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


def _infotext_value(value) -> str:
    """A value as AUTOMATIC1111 writes it: quoted (JSON) when it holds a comma, colon or quote."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return json.dumps(text) if any(c in text for c in ',:"\n') else text


def a1111_parameters(
    *,
    prompt: str, negative_prompt: str, steps: int | None, cfg_scale: float | None,
    seed: int | None, width: int, height: int, model: str, options: dict | None = None,
) -> str:
    """The text AUTOMATIC1111's PNG Info reads back; a model's options follow as `Name: value`.

    An unknown value (None: a model without a seed, an imported image that does not say) is
    left out.
    """
    pairs = [] if steps is None else [f"Steps: {steps}"]
    if cfg_scale is not None:
        pairs.append(f"CFG scale: {cfg_scale:g}")
    if seed is not None:
        pairs.append(f"Seed: {seed}")
    pairs.append(f"Size: {width}x{height}")
    if model:
        pairs.append(f"Model: {_infotext_value(model)}")
    pairs += [f"{name}: {_infotext_value(value)}" for name, value in (options or {}).items()]
    return f"{prompt}\nNegative prompt: {negative_prompt}\n" + ", ".join(pairs)
