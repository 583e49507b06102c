"""Budgets and idempotency hold across gunicorn workers (two workers, one SQLite database)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.deploy import Gunicorn, Site

pytestmark = pytest.mark.deploy

BODY = {"prompt": "a quiet harbour at dawn", "provider": "offline", "width": 512, "height": 512}


def serve(tmp_path_factory, **settings):
    site = Site(tmp_path_factory.mktemp("spending"), **settings)
    site.migrate()
    with Gunicorn(site, workers=2, threads=8) as server:
        yield server


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory):
    # Each offline image costs $0.01 here, and the day's budget fits exactly five of them.
    yield from serve(tmp_path_factory, PRICES="offline/abstract=0.01", DAILY_BUDGET="0.05")


@pytest.fixture(scope="module")
def unbudgeted(tmp_path_factory):
    yield from serve(tmp_path_factory)


def parallel(url: str, count: int, headers: dict | None = None) -> list[requests.Response]:
    start = threading.Barrier(count)

    def send(_):
        start.wait()
        return requests.post(f"{url}/api/generate", json=BODY, headers=headers or {}, timeout=60)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(send, range(count)))


def test_twenty_parallel_requests_against_a_budget_for_five(budgeted):
    gunicorn = budgeted
    storm = parallel(gunicorn.url, 20)
    statuses = [r.status_code for r in storm]
    assert statuses.count(201) == 5 and statuses.count(402) == 15, statuses
    assert all(r.json()["error"] == "budget_exceeded" for r in storm if r.status_code == 402)
    usage = requests.get(f"{gunicorn.url}/api/usage", timeout=10).json()
    assert usage["total"] == {"images": 5, "cost": 0.05}
    assert usage["budget"] == {"daily": 0.05, "spent_today": 0.05, "left_today": 0.0}
    listing = requests.get(f"{gunicorn.url}/api/images", timeout=10)
    assert listing.headers["X-Total-Count"] == "5"


def test_one_key_from_many_workers_makes_one_image(unbudgeted):
    gunicorn = unbudgeted
    storm = parallel(gunicorn.url, 12, {"Idempotency-Key": "storm-over-workers"})
    statuses = [r.status_code for r in storm]
    assert set(statuses) <= {201, 409}, statuses
    made = [r for r in storm if r.status_code == 201]
    assert len({r.json()["id"] for r in made}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in made) == 1
    assert all(r.json()["error"] == "request_in_progress" for r in storm if r.status_code == 409)
    assert requests.get(f"{gunicorn.url}/api/images", timeout=10).headers["X-Total-Count"] == "1"
    replay = parallel(gunicorn.url, 1, {"Idempotency-Key": "storm-over-workers"})[0]
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == made[0].json()
