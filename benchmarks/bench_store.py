"""Storing a provider's 1024x1024 PNG, against the naive path that re-encodes it with Pillow.

Both paths validate (decode) the image, write it and a WebP thumbnail atomically and embed the
AUTOMATIC1111 `parameters` text; the store adds a PNG chunk to the bytes it was given, the naive
path decodes and saves the PNG again with the text in it.
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from common import machine, print_rows, summary  # noqa: E402
from PIL import Image, PngImagePlugin  # noqa: E402

from app.providers.offline import render  # noqa: E402
from app.storage import THUMB_SIZE, ImageStore, a1111_parameters, open_image  # noqa: E402

N = 30
TARGET_RATIO = 0.25
DESCRIPTION = dict(prompt="a lighthouse on a cliff at sunset, oil painting, highly detailed",
                   negative_prompt="blurry, watermark", steps=30, cfg_scale=7.0, seed=1234,
                   model="sd3.5-large")


def provider_png() -> bytes:
    """A 1024x1024 PNG with the detail (and so the size) of a model's output.

    The offline renderer gives the composition; grain makes it as hard to compress as a photo.
    """
    smooth = Image.open(io.BytesIO(render("lighthouse on a cliff at sunset", seed=7,
                                          negative_prompt="", width=1024, height=1024, steps=30,
                                          cfg_scale=7.0))).convert("RGB")
    pixels = np.asarray(smooth, dtype=np.int16)
    grain = np.random.default_rng(7).normal(0, 6, pixels.shape).astype(np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def naive_store(store: ImageStore, data: bytes, description: dict) -> tuple[Path, Path]:
    """Decode, then save the PNG again with its text chunk, and the same thumbnail."""
    image = open_image(data)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", a1111_parameters(width=image.width, height=image.height,
                                                 **description))
    encoded = io.BytesIO()
    image.save(encoded, "PNG", pnginfo=info)
    thumb = io.BytesIO()
    image.thumbnail(THUMB_SIZE)
    image.convert("RGB").save(thumb, "WEBP", quality=80, method=2)
    return (store._write_temp(store.root, encoded.getvalue()),
            store._write_temp(store.thumbs, thumb.getvalue()))


def _time(action, n: int) -> list[float]:
    action()  # warm-up
    times = []
    for _ in range(n):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return times


def run(n: int = N) -> list[dict]:
    data = provider_png()
    with tempfile.TemporaryDirectory() as folder:
        store = ImageStore(folder)

        def staged():
            store.stage(data, DESCRIPTION).discard()

        def naive():
            for path in naive_store(store, data, DESCRIPTION):
                path.unlink()

        # Interleave the two so that both see the same machine conditions.
        ours, theirs = [], []
        for _ in range(3):
            ours += _time(staged, n // 3)
            theirs += _time(naive, n // 3)
    ratio = statistics.median(ours) / statistics.median(theirs)
    size = f"{len(data) / 1e6:.2f} MB PNG"
    return [
        {"what": "store a 1024x1024 PNG (validate, write, thumbnail, embed parameters)",
         **summary(ours), "other": f"{ratio:.0%} of the naive path; {size}",
         "target": f"<= {TARGET_RATIO:.0%} of naive", "ok": ratio <= TARGET_RATIO},
        {"what": "naive path: decode and re-encode with Pillow (same run)", **summary(theirs),
         "other": size, "target": "none: the yardstick of the row above", "ok": None},
    ]


def main() -> None:
    print(f"machine: {machine()}")
    print(f"parameters: median of {N} stores of one 1024x1024 provider-like PNG, each path "
          f"interleaved in 3 blocks; files fsynced to a temporary folder")
    print()
    print_rows(run())


if __name__ == "__main__":
    main()
