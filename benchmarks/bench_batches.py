"""Batches and model schemas, in one process through the Flask test client and the fakes.

- a batch of 4 against the fake OpenAI API answering after 1 s, against one image (the ratio
  shows the members run at once: 1.0 is perfect, 4.0 would be one after another);
- the app's own time per image in a batch of 8 against a single image, with the fake answering
  at once (its own time, read from its log, subtracted);
- GET /api/providers with five extra Replicate models configured: their schemas are read once
  (the first call, reported apart) and kept, so the median is that of a cached listing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine, print_rows, summary  # noqa: E402

LATENCY = 1.0
ROUNDS = 5
OVERHEAD_ROUNDS = 15
LISTINGS = 200
PROMPT = "a lighthouse on a cliff at sunset, oil painting"


def _app(folder: Path, **settings):
    import shutil

    import flask_migrate

    from app import create_app
    from app.extensions import db

    template = folder / "template.db"
    if not template.exists():
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{template}", "TESTING": True})
        with app.app_context():
            flask_migrate.upgrade()
            db.engine.dispose()
    path = folder / f"app-{len(list(folder.glob('app-*.db')))}.db"
    shutil.copy(template, path)
    return create_app({"TESTING": True, "SECRET_KEY": "bench", "RATELIMIT_ENABLED": False,
                       "RATELIMIT_STORAGE_URI": "memory://",
                       "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
                       "IMAGES_DIR": str(folder / f"images-{path.stem}"), **settings})


def _post(client, **fields) -> float:
    started = time.perf_counter()
    response = client.post("/api/generate", json={"prompt": PROMPT, "provider": "openai",
                                                  **fields})
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 201:
        raise RuntimeError(f"generation failed: {response.status_code} {response.get_json()}")
    return elapsed


def _fake_ms(fake) -> float:
    """The fake's own time for the requests since its last reset, summed (ms)."""
    return sum((answered - arrived) * 1000 for arrived, answered in fake.spans)


def batch_rows(folder: Path) -> list[dict]:
    from tests.fakes.openai import FakeOpenAI

    with FakeOpenAI() as fake:
        app = _app(folder, OPENAI_API_KEY=fake.api_key, OPENAI_BASE_URL=fake.url + "/v1")
        client = app.test_client()
        _post(client)  # warm up: connections, templates, the first PNG
        fake.latency = LATENCY
        single = [_post(client) for _ in range(ROUNDS)]
        batch = [_post(client, count=4) for _ in range(ROUNDS)]
        ratio = statistics.median(batch) / statistics.median(single)
        rows = [{
            "what": "batch of 4 vs one image (fake OpenAI answering after 1 s)",
            **summary(batch),
            "other": f"{ROUNDS} batches; one image median {statistics.median(single):.0f} ms; "
                     f"ratio {ratio:.2f}",
            "target": "ratio <= 1.3", "ok": ratio <= 1.3,
        }]
        fake.latency = 0.0
        per_single, per_batch = [], []
        for _ in range(OVERHEAD_ROUNDS):
            fake.reset()
            per_single.append(_post(client) - _fake_ms(fake))
            fake.reset()
            # Members overlap at the fake, so its summed time overstates what it added: the
            # difference is a lower bound on the app's own time per image.
            per_batch.append((_post(client, count=8) - _fake_ms(fake) / 4) / 8)
        rows.append({
            "what": "app overhead per image: in a batch of 8 vs alone",
            **summary(per_batch),
            "other": f"{OVERHEAD_ROUNDS} rounds; alone median {statistics.median(per_single):.1f} ms "
                     "(1024x1024 PNG from the fake OpenAI API, which answers at once; its own "
                     "time subtracted)",
            "target": "report", "ok": True,
        })
    return rows


def providers_rows(folder: Path) -> list[dict]:
    from tests.fakes.replicate import MODELS, PIXEL, PIXEL_VERSION, RECRAFT, SEEDREAM, FakeReplicate

    flux_dev = "black-forest-labs/flux-dev"
    extra = [f"{PIXEL}:{PIXEL_VERSION}", RECRAFT, SEEDREAM, "stability-ai/sdxl",
             f"{flux_dev}:{MODELS[flux_dev]['version']}"]
    with FakeReplicate() as fake:
        app = _app(folder, REPLICATE_API_TOKEN=fake.api_token, REPLICATE_BASE_URL=fake.url,
                   REPLICATE_MODELS=",".join(extra))
        client = app.test_client()
        started = time.perf_counter()
        first = client.get("/api/providers")
        cold = (time.perf_counter() - started) * 1000
        listed = [m for p in first.get_json() if p["name"] == "replicate" for m in p["models"]]
        available = sum(1 for m in listed if m["name"] in extra and m["available"])
        reads = len([r for r in fake.requests if r.method == "GET"])
        times = []
        for _ in range(LISTINGS):
            started = time.perf_counter()
            client.get("/api/providers")
            times.append((time.perf_counter() - started) * 1000)
        reads_after = len([r for r in fake.requests if r.method == "GET"])
    stats = summary(times)
    return [{
        "what": "GET /api/providers with 5 extra Replicate models",
        **stats,
        "other": f"{LISTINGS} requests; {available} of 5 read from their schemas; the first "
                 f"call (which reads them: {reads} schema requests) {cold:.0f} ms; "
                 f"{reads_after - reads} schema requests after it",
        "target": "median < 10 ms", "ok": stats["median_ms"] < 10 and reads_after == reads
        and available == 5,
    }]


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        return batch_rows(Path(folder)) + providers_rows(Path(folder))


if __name__ == "__main__":
    print(f"machine: {machine()}")
    print_rows(run())
