"""Compatible APIs: OpenAI's Images API at /v1 and AUTOMATIC1111's web UI API at /sdapi/v1.

Each is a translator: a request in the other tool's shape becomes GenerationParams, the same
service makes the images, and the answer goes back in that tool's shape. No rule lives here.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

from flask import Flask, Response
from PIL import Image as PILImage

from .. import idempotency
from ..callers import caller, token_name
from ..generation import service
from ..models import Image
from ..params import GenerationParams
from ..storage import with_png_text


def register(app: Flask) -> None:
    from ..extensions import csrf
    from . import a1111, openai

    for blueprint, prefix in ((openai.bp, "/v1"), (a1111.bp, "/sdapi/v1")):
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint, url_prefix=prefix)
    openai.register_error_shape(app)


def generate(params: GenerationParams) -> list[Image]:
    """The images of one request (a batch when more than one is asked for), made for the token
    the request came with."""
    generation, created_by = service(), token_name("api")
    if params.count > 1:
        return generation.generate_batch(params, created_by=created_by).images
    return [generation.generate(params, created_by=created_by)]


def once_per_key(body, run: Callable[[], Response]) -> Response:
    """run() once per Idempotency-Key and caller, as POST /api/generate does."""
    key = idempotency.header_key()
    if key is None:
        return run()
    return idempotency.once(caller(), key, idempotency.fingerprint(body), run)


def stored_base64(record: Image, png: bool = False) -> str:
    """The stored file as it is kept (parameters chunk included), in base64; with `png`, a JPEG
    or WebP is sent as a PNG carrying the same parameters text (A1111's clients expect PNGs)."""
    with service().store.open(record.filename) as stored:
        data = stored.read()
    if png and record.format != "png":
        buffer = io.BytesIO()
        with PILImage.open(io.BytesIO(data)) as picture:
            picture.save(buffer, "PNG", compress_level=1)
        data = with_png_text(buffer.getvalue(), "parameters", record.parameters_text)
    return base64.b64encode(data).decode("ascii")
