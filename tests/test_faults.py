"""gunicorn under faults: a worker killed in the middle of a generation, a restart, a graceful stop.

Slow generations come from the fake Stability server ([fault:slow=N] in the prompt); it runs in
the test process, gunicorn in its own, as in production.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests

from tests.conftest import files_in
from tests.deploy import Gunicorn, Site, pid_connected_to

pytestmark = pytest.mark.deploy


@pytest.fixture
def site(tmp_path, fake_stability):
    site = Site(tmp_path, STABILITY_API_KEY=fake_stability.api_key,
                STABILITY_BASE_URL=fake_stability.url, GENERATION_TIMEOUT="30")
    site.migrate()
    return site


def generate(url: str, prompt: str, provider: str = "offline", timeout: float = 60):
    body = {"prompt": prompt, "provider": provider, "width": 512, "height": 512}
    return requests.post(f"{url}/api/generate", json=body, timeout=timeout)


class InBackground(threading.Thread):
    """Run a request in a thread; `.result` is the response or the exception it raised."""

    def __init__(self, call):
        super().__init__(daemon=True)
        self.call, self.result, self.finished_at = call, None, None
        self.start()

    def run(self):
        try:
            self.result = self.call()
        except requests.RequestException as exc:
            self.result = exc
        self.finished_at = time.monotonic()


def wait_until(condition, timeout: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def provider_port(fake) -> int:
    return int(fake.url.rsplit(":", 1)[1])


def snapshot(url: str) -> list[dict]:
    response = requests.get(f"{url}/api/images?limit=200", timeout=10)
    assert response.status_code == 200
    return sorted(response.json(), key=lambda record: record["id"])


def assert_consistent(site: Site, records: list[dict]):
    """Exactly one image file and one thumbnail per record; `flask images verify` agrees."""
    expected = sorted([r["filename"] for r in records] + [f"thumbs/{r['id']}.webp" for r in records])
    assert files_in(site.images_dir) == expected
    verify = site.flask("images", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith(f"OK: {len(records)} records")


def test_worker_killed_mid_generation_leaves_nothing_behind(site, fake_stability):
    with Gunicorn(site, workers=2, threads=4) as gunicorn:
        for prompt in ("before the crash", "also before"):
            assert generate(gunicorn.url, prompt).status_code == 201
        slow = InBackground(lambda: generate(gunicorn.url, "doomed [fault:hold]", "stability"))
        wait_until(lambda: fake_stability.requests, what="the provider call")
        workers = gunicorn.worker_pids()
        victim = wait_until(lambda: pid_connected_to(workers, provider_port(fake_stability)),
                            what="the worker calling the provider")
        os.kill(victim, signal.SIGKILL)
        slow.join(30)
        assert isinstance(slow.result, requests.ConnectionError), slow.result
        fake_stability.release()  # the provider's answer now goes to the dead worker's socket

        # The other worker answers at once; the master replaces the dead one.
        assert generate(gunicorn.url, "right after the crash").status_code == 201
        wait_until(lambda: len(gunicorn.worker_pids()) == 2 and victim not in
                   gunicorn.worker_pids(), what="a new worker")
        gunicorn.wait_ready()
        records = snapshot(gunicorn.url)
        assert [r["prompt"] for r in records] == ["before the crash", "also before",
                                                  "right after the crash"]
        assert_consistent(site, records)
        assert "Traceback" not in gunicorn.log()

    with Gunicorn(site, workers=2, threads=4) as restarted:
        again = snapshot(restarted.url)
        assert again == records
        for record in again:
            for url in (record["url"], record["thumbnail_url"]):
                with requests.get(restarted.url + url, timeout=10) as response:
                    assert response.status_code == 200
        assert generate(restarted.url, "after the restart").status_code == 201
        assert_consistent(site, snapshot(restarted.url))


def test_sigterm_lets_generations_in_flight_finish(site, fake_stability):
    gunicorn = Gunicorn(site, workers=2, threads=4).start()
    try:
        flights = [InBackground(lambda i=i: generate(gunicorn.url, f"in flight {i} [fault:hold]",
                                                     "stability")) for i in range(3)]
        wait_until(lambda: len(fake_stability.requests) == 3, what="three provider calls")
        gunicorn.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "Handling signal: term" in gunicorn.log(), what="gunicorn's SIGTERM")
        # The provider holds its answers: the generations are still in flight, gunicorn waits.
        assert all(flight.result is None for flight in flights)
        assert gunicorn.process.poll() is None
        fake_stability.release()
        for flight in flights:
            flight.join(60)
            assert not isinstance(flight.result, Exception), flight.result
            assert flight.result.status_code == 201, flight.result.text
        status = gunicorn.process.wait(60)  # well within graceful_timeout (GENERATION_TIMEOUT + 30)
    finally:
        gunicorn.stop(signal.SIGKILL)
    assert status == 0
    log = gunicorn.log()
    assert "Handling signal: term" in log and "Traceback" not in log
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{gunicorn.url}/health", timeout=5)

    with Gunicorn(site, workers=1, threads=2) as restarted:
        records = snapshot(restarted.url)
        assert sorted(r["prompt"] for r in records) == [f"in flight {i} [fault:hold]"
                                                        for i in range(3)]
        assert_consistent(site, records)
