"""Concurrent generations through gunicorn (2 gthread workers, 8 threads each) on one SQLite file.

The figures are printed (`pytest -s`) and written to test-artifacts/load.txt; no assertion is
timed: what is asserted is that every request succeeds and nothing is lost or left behind.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import ARTIFACTS, files_in
from tests.deploy import Gunicorn, Site, percentile

pytestmark = pytest.mark.deploy

GENERATIONS = 50
LISTINGS = 200
REPORT = Path(ARTIFACTS) / "load.txt"
_local = threading.local()


@pytest.fixture(scope="module", autouse=True)
def report():
    os.makedirs(ARTIFACTS, exist_ok=True)
    REPORT.write_text("Load tests: gunicorn, 2 gthread workers x 8 threads, SQLite (WAL)\n")
    yield


def record_figures(name: str, kind: str, durations: list[float], wall: float, failures: int):
    line = (f"{name}: {len(durations)} x {kind}, {failures} failed, wall {wall:.2f} s, "
            f"p50 {percentile(durations, 0.5) * 1000:.0f} ms, "
            f"p95 {percentile(durations, 0.95) * 1000:.0f} ms, "
            f"max {max(durations) * 1000:.0f} ms, {len(durations) / wall:.1f} req/s")
    print("\n" + line)
    with REPORT.open("a") as handle:
        handle.write(line + "\n")


@pytest.fixture
def server(tmp_path, fake_stability):
    site = Site(tmp_path, STABILITY_API_KEY=fake_stability.api_key,
                STABILITY_BASE_URL=fake_stability.url, GENERATION_TIMEOUT="60")
    site.migrate()
    with Gunicorn(site, workers=2, threads=8) as gunicorn:
        yield site, gunicorn


def session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
        _local.session.trust_env = False
    return _local.session


def timed(method: str, url: str, **kwargs) -> tuple[float, requests.Response]:
    started = time.perf_counter()
    response = session().request(method, url, timeout=120, **kwargs)
    return time.perf_counter() - started, response


def generation(url: str, index: int, provider: str) -> tuple[float, requests.Response]:
    body = {"prompt": f"load test image {index}", "provider": provider, "width": 512,
            "height": 512, "seed": index + 1}
    return timed("POST", f"{url}/api/generate", json=body)


def run_concurrently(calls, workers: int):
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda call: call(), calls))
    return results, time.perf_counter() - started


def assert_all_kept(site: Site, gunicorn: Gunicorn, responses: list[requests.Response]):
    ids = {response.json()["id"] for response in responses}
    assert len(ids) == GENERATIONS
    listing = requests.get(f"{gunicorn.url}/api/images?limit=200", timeout=30)
    assert listing.headers["X-Total-Count"] == str(GENERATIONS)
    assert {record["id"] for record in listing.json()} == ids
    names = files_in(site.images_dir)
    assert len(names) == 2 * GENERATIONS, names  # each image and its thumbnail
    assert not [name for name in names if ".tmp-" in name]
    assert site.flask("images", "verify").stdout.startswith(f"OK: {GENERATIONS} records")
    log = gunicorn.log()
    assert "database is locked" not in log and "Traceback" not in log


@pytest.mark.parametrize("provider", ["offline", "stability"])
def test_concurrent_generations_all_succeed(server, fake_stability, provider):
    site, gunicorn = server
    if provider == "stability":
        fake_stability.delay = 1.0  # a second of provider latency for every image
    calls = [lambda i=i: generation(gunicorn.url, i, provider) for i in range(GENERATIONS)]
    results, wall = run_concurrently(calls, GENERATIONS)
    statuses = [response.status_code for _, response in results]
    failures = sum(status != 201 for status in statuses)
    record_figures(f"{provider} generations, {GENERATIONS} concurrent", "POST /api/generate",
                   [seconds for seconds, _ in results], wall, failures)
    assert failures == 0, [r.text for _, r in results if r.status_code != 201][:3]
    assert_all_kept(site, gunicorn, [response for _, response in results])


def test_listing_stays_available_while_generating(server):
    site, gunicorn = server
    calls = []
    for i in range(LISTINGS):  # four listings for every generation, interleaved
        calls.append(lambda: ("list", *timed("GET", f"{gunicorn.url}/api/images?limit=20")))
        if i % 4 == 0 and i // 4 < GENERATIONS:
            calls.append(lambda i=i: ("generate", *generation(gunicorn.url, i // 4, "offline")))
    results, wall = run_concurrently(calls, 60)
    listings = [(s, r) for kind, s, r in results if kind == "list"]
    generations = [(s, r) for kind, s, r in results if kind == "generate"]
    assert (len(listings), len(generations)) == (LISTINGS, GENERATIONS)
    list_failures = sum(r.status_code != 200 for _, r in listings)
    generate_failures = sum(r.status_code != 201 for _, r in generations)
    record_figures(f"listings during generations, {LISTINGS} + {GENERATIONS} on 60 threads",
                   "GET /api/images", [s for s, _ in listings], wall, list_failures)
    record_figures("  the generations meanwhile", "POST /api/generate",
                   [s for s, _ in generations], wall, generate_failures)
    assert list_failures == 0 and generate_failures == 0
    assert_all_kept(site, gunicorn, [r for _, r in generations])
