"""The app's own cost per generation: POST /api/generate through gunicorn against a provider that
answers at once with a fixed PNG, minus the provider's own time; then 8 concurrent clients.

The provider is the fake Stability API (tests/fakes/stability.py, in its own process, a fixed
seed so that it answers with the same PNG every time) when the Stability provider is available;
otherwise the offline renderer, whose render time is measured and subtracted instead.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (  # noqa: E402
    PYTHON,
    ROOT,
    copy_of_library,
    machine,
    percentile,
    print_rows,
    summary,
)
from server import GUNICORN_SETUP, Gunicorn, memory_row  # noqa: E402

SEQUENTIAL = 200
CLIENTS = 8
CONCURRENT = 400
TARGET_MS = 15.0
KEY = "sk-benchmark"
MODEL = "sd3.5-large"
SEED = 123456
PROMPTS = ("a lighthouse on a cliff at sunset, oil painting", "a red fox in the snow, 35mm",
           "a neon noodle bar in the rain, cinematic lighting", "an owl on a branch, watercolor")


def stability_available() -> bool:
    from app.providers.stability import StabilityProvider

    provider = StabilityProvider({"STABILITY_API_KEY": KEY, "STABILITY_MODEL": MODEL})
    return any(model.name == MODEL for model in provider.models)


class Provider:
    """What the generation requests name, the app's settings for it, and how long the provider
    itself takes to answer one (`own_ms(index)`, measured the same way each time)."""

    def __init__(self, name: str, env: dict, own_ms, description: str):
        self.name, self.env, self.own_ms, self.description = name, env, own_ms, description
        self.own_medians: list[float] = []

    def body(self, index: int) -> bytes:
        request = {"prompt": PROMPTS[index % len(PROMPTS)], "negative_prompt": "blurry",
                   "width": 1024, "height": 1024, "seed": SEED, "provider": self.name}
        if self.name == "stability":
            request["model"] = MODEL
        else:
            request.update(steps=30, cfg_scale=7.0)
        return json.dumps(request).encode()

    @property
    def note(self) -> str:
        own = statistics.median(self.own_medians) if self.own_medians else float("nan")
        return f"{self.description}; its own time (median {own:.1f} ms) subtracted"


def _fake_timer(url: str):
    """Milliseconds of the fake answering the provider's request directly (a new connection each
    time, as the provider makes)."""
    import requests

    fields = {"prompt": (None, PROMPTS[0]), "negative_prompt": (None, "blurry"),
              "aspect_ratio": (None, "1:1"), "seed": (None, str(SEED)),
              "output_format": (None, "png"), "model": (None, MODEL), "cfg_scale": (None, "7")}

    def own_ms(_index: int) -> float:
        started = time.perf_counter()
        response = requests.post(f"{url}/v2beta/stable-image/generate/sd3", files=fields,
                                 headers={"Authorization": f"Bearer {KEY}", "Accept": "image/*"},
                                 timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"the fake answered {response.status_code}: {response.text[:200]}")
        return elapsed

    return own_ms


def _offline_timer(index: int) -> float:
    """Milliseconds of the offline renderer making the same picture."""
    from app.providers.offline import render

    started = time.perf_counter()
    render(PROMPTS[index % len(PROMPTS)], negative_prompt="blurry", seed=SEED, width=1024,
           height=1024, steps=30, cfg_scale=7.0)
    return (time.perf_counter() - started) * 1000


@contextmanager
def provider():
    """The fake Stability server in its own process, or the offline renderer."""
    if not stability_available():
        yield Provider("offline", {"DEFAULT_PROVIDER": "offline"}, _offline_timer,
                       "the offline renderer (the Stability provider was not available)")
        return
    fake = subprocess.Popen([PYTHON, "-m", "tests.fakes.stability", "--port", "0", "--key", KEY],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = fake.stdout.readline().strip()
        yield Provider("stability", {"STABILITY_API_KEY": KEY, "STABILITY_BASE_URL": url,
                                     "STABILITY_MODEL": MODEL}, _fake_timer(url),
                       f"the fake Stability API ({MODEL}, tests/fakes/stability.py), which "
                       f"answers a flat-colour 1024x1024 PNG (quick to decode; a detailed 2 MB "
                       f"one takes longer to store, see the store row)")
    finally:
        fake.terminate()
        fake.wait(10)


def _post(client, body: bytes) -> float:
    status, _headers, data, ms = client.request(
        "POST", "/api/generate", body, {"Content-Type": "application/json"})
    if status != 201:
        raise RuntimeError(f"POST /api/generate answered {status}: {data[:300]!r}")
    return ms


def measure(server, chosen: Provider) -> list[dict]:
    client = server.client()
    for index in range(5):
        chosen.own_ms(index)
        _post(client, chosen.body(index))
    # Each generation is paired with a direct call of the provider just before it, so that both
    # see the same conditions on the machine; the overhead is the difference of each pair.
    times, own, overhead = [], [], []
    for index in range(SEQUENTIAL):
        own.append(chosen.own_ms(index))
        times.append(_post(client, chosen.body(index)))
        overhead.append(times[-1] - own[-1])
    client.close()
    chosen.own_medians.append(statistics.median(own))
    median = statistics.median(overhead)
    rows = [{"what": "app overhead per generation (POST /api/generate, sequential)",
             **summary(overhead),
             "other": f"{SEQUENTIAL} requests; whole request median "
                      f"{statistics.median(times):.1f} ms; {chosen.note}",
             "target": f"median < {TARGET_MS:g} ms", "ok": median < TARGET_MS}]

    latencies, errors, lock = [], [], threading.Lock()

    def worker(offset: int) -> None:
        own = server.client()
        for index in range(offset, CONCURRENT, CLIENTS):
            try:
                ms = _post(own, chosen.body(index))
                with lock:
                    latencies.append(ms)
            except (RuntimeError, OSError) as exc:
                with lock:
                    errors.append(str(exc))
        own.close()

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    rows.append({"what": f"generation throughput ({CLIENTS} concurrent clients, 2 workers)",
                 **(summary(latencies) if latencies else {}),
                 "other": f"{len(latencies) / wall:.1f} requests/s; p95 "
                          f"{percentile(latencies, 0.95):.1f} ms; {len(errors)} errors of "
                          f"{CONCURRENT}" + (f" (first: {errors[0]})" if errors else ""),
                 "target": "report requests/s and p95; no errors", "ok": not errors})
    return rows


def run(server=None, chosen: Provider | None = None) -> list[dict]:
    if server is not None:
        return measure(server, chosen)
    with provider() as chosen, tempfile.TemporaryDirectory() as folder:
        database = copy_of_library(Path(folder))
        with Gunicorn(database, Path(folder) / "images", **chosen.env) as started:
            return measure(started, chosen) + [memory_row(started)]


def main() -> None:
    print(f"machine: {machine()}")
    print(f"parameters: {GUNICORN_SETUP} on loopback, 100,000 records in "
          f"the database; {SEQUENTIAL} sequential 1024x1024 generations on one keep-alive "
          f"connection, then {CONCURRENT} from {CLIENTS} concurrent clients; seed {SEED}")
    print()
    print_rows(run())


if __name__ == "__main__":
    main()
