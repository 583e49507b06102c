"""Curating the library: import of 1,000 A1111 PNGs, a 1,000-image zip export (throughput and
worker memory), gallery pages with each filter at 100,000 records, a bulk favourite of 1,000 ids.
"""

from __future__ import annotations

import io
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, PngImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, ROOT, copy_of_library, flask_env, machine, print_rows, summary  # noqa: E402
from server import Gunicorn  # noqa: E402

IMPORTS = 1000
N = 50  # requests per gallery case
BULK_RUNS = 10


def _png(rng: random.Random, index: int) -> bytes:
    patch = Image.frombytes("RGB", (128, 128), rng.randbytes(128 * 128 * 3))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"a lighthouse number {index}, oil painting\n"
                  "Negative prompt: blurry\nSteps: 25, Sampler: Euler a, CFG scale: 7, "
                  f"Seed: {index + 1}, Size: 512x512, Model hash: 31e35c80fc, Model: sd15")
    buffer = io.BytesIO()
    patch.resize((512, 512), Image.Resampling.NEAREST).save(buffer, "PNG", pnginfo=info,
                                                              compress_level=1)
    return buffer.getvalue()


def import_and_export() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        sources, images, database = folder / "a1111", folder / "images", folder / "app.db"
        sources.mkdir()
        rng = random.Random(7)
        size = 0
        for index in range(IMPORTS):
            data = _png(rng, index)
            size += len(data)
            (sources / f"{index:05}.png").write_bytes(data)
        env = flask_env(database, IMAGES_DIR=str(images))
        subprocess.run([PYTHON, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                       env=env, check=True, capture_output=True)
        started = time.perf_counter()
        done = subprocess.run([PYTHON, "-m", "flask", "--app", "wsgi", "images", "import",
                               str(sources)], cwd=ROOT, env=env, check=True,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
        rows.append({"what": f"flask images import of {IMPORTS:,} A1111 PNGs (512x512)",
                     "other": f"{IMPORTS / seconds:.0f} images/s; {done.stdout.strip()}",
                     "target": "(measured)", "ok": "imported 1000" in done.stdout})
        with Gunicorn(database, images) as server:
            client = server.client()
            before = max(server.peak_rss_mb())
            times, length = [], 0
            for _ in range(3):
                status, _headers, body, ms = client.request(
                    "GET", "/api/images/export?since=2000-01-01")
                assert status == 200, status
                times.append(ms)
                length = len(body)
            after = max(server.peak_rss_mb())
            client.close()
        stats = summary(times)
        rows.append({"what": f"zip export of {IMPORTS:,} images (GET /api/images/export)",
                     **stats,
                     "other": f"{length / 1048576:.0f} MB zip, "
                              f"{length / 1048576 / (stats['median_ms'] / 1000):.0f} MB/s; "
                              f"worker peak RSS +{after - before:.1f} MB over idle "
                              f"({before:.0f} -> {after:.0f} MB)",
                     "target": "RSS < +50 MB", "ok": after - before < 50})
    return rows


def prepare(database: Path) -> dict:
    """Favourites (1 in 20) and a 1,000-image collection in the large library."""
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("UPDATE image SET favorite = (id % 20 = 0)")
        connection.execute("INSERT INTO collection (name, description, created_at) "
                           "VALUES ('bench', '', '2026-01-01 00:00:00')")
        connection.execute("INSERT INTO collection_image (collection_id, image_id, added_at) "
                           "SELECT 1, id, '2026-01-01 00:00:00' FROM image WHERE id % 100 = 7")
    connection.execute("ANALYZE")
    connection.close()
    return {"collection": 1}


def _timed(client, method, path, n, body=None, headers=None) -> list[float]:
    client.request(method, path, body, headers)
    times = []
    for _ in range(n):
        status, _h, _b, ms = client.request(method, path, body, headers)
        if status != 200:
            raise RuntimeError(f"{method} {path} answered {status}")
        times.append(ms)
    return times


def filters_and_bulk(server, database: Path) -> list[dict]:
    prepare(database)
    client = server.client()
    rows = []
    cases = (("favourites", "/images?favorite=true"),
             ("model", "/images?model=sd3.5-large"),
             ("collection", "/images?collection=1"),
             ("one month", "/images?since=2026-03-01&until=2026-03-31"),
             ("favourites + model + search", "/images?favorite=true&model=sdxl-1.0&q=lighthouse"),
             ("collection + provider (API)", "/api/images?collection=1&provider=stability"))
    for name, path in cases:
        _s, headers, _b, _ms = client.request("GET", path)
        stats = summary(_timed(client, "GET", path, N))
        total = headers.get("X-Total-Count") or ""
        rows.append({"what": f"gallery filter: {name} ({path})", **stats,
                     "other": f"{total} matching" if total else "",
                     "target": "median < 30 ms", "ok": stats["median_ms"] < 30})
    ids = list(range(1, 100_001, 100))
    for action in ("favorite",):
        body = json.dumps({"action": action, "ids": ids}).encode()
        stats = summary(_timed(client, "POST", "/api/images/bulk", BULK_RUNS, body,
                               {"Content-Type": "application/json"}))
        rows.append({"what": "bulk favourite of 1,000 ids (POST /api/images/bulk)", **stats,
                     "target": "median < 1000 ms", "ok": stats["median_ms"] < 1000})
    client.close()
    return rows


def run(server=None, database=None) -> list[dict]:
    rows = import_and_export()
    if server is not None:
        return rows + filters_and_bulk(server, database)
    with tempfile.TemporaryDirectory() as folder:
        database = copy_of_library(Path(folder))
        with Gunicorn(database, Path(folder) / "images") as started:
            return rows + filters_and_bulk(started, database)


if __name__ == "__main__":
    print(f"machine: {machine()}")
    print_rows(run())
