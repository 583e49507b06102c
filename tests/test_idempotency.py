"""Idempotency-Key on POST /api/generate: once per caller and key, replays, 409 and 422."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from app.extensions import db
from app.models import IdempotencyKey
from tests.conftest import LiveServer

BODY = {"prompt": "a quiet harbour at dawn", "provider": "offline", "width": 512, "height": 512}


def post(client, key, body=None, token=None):
    headers = {"Idempotency-Key": key}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/api/generate", json=body or BODY, headers=headers)


def total(client, token=None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return int(client.get("/api/images", headers=headers).headers["X-Total-Count"])


def test_a_repeat_gets_the_first_answer_again(client):
    first = post(client, "order-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = client.post("/api/generate", data='{"height": 512, "width": 512,  "provider": '
                        '"offline", "prompt": "a quiet harbour at dawn"}',
                        headers={"Idempotency-Key": "order-1", "Content-Type": "application/json"})
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert again.get_json() == first.get_json()
    assert total(client) == 1
    other = post(client, "order-2")
    assert other.status_code == 201 and other.get_json()["id"] != first.get_json()["id"]


def test_another_body_with_the_same_key_is_422(client):
    assert post(client, "k").status_code == 201
    reused = post(client, "k", {**BODY, "seed": 5})
    assert reused.status_code == 422
    assert reused.get_json()["error"] == "idempotency_key_reused"
    assert total(client) == 1


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "naïve", "tab\there", "a b"])
def test_malformed_keys_are_422(client, key):
    response = client.post("/api/generate", json=BODY,
                           headers=[("Idempotency-Key", key)])
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_error"
    assert body["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert total(client) == 0


def test_keys_of_255_visible_characters_work(client):
    assert post(client, "~" * 255).status_code == 201
    assert post(client, "~" * 255).headers["Idempotent-Replayed"] == "true"


def test_a_request_refused_before_execution_does_not_lock_its_key(make_app):
    client = make_app(PRICES="offline/abstract=1", DAILY_BUDGET="0.5").test_client()
    assert post(client, "k", {**BODY, "steps": 99}).status_code == 422  # validation
    assert post(client, "k").status_code == 402  # the budget, before any provider call
    assert post(client, "k", {**BODY, "provider": "stability"}).status_code == 400  # no key
    with client.application.app_context():
        assert db.session.scalar(db.select(db.func.count(IdempotencyKey.id))) == 0


def test_a_provider_failure_is_kept_and_replayed(make_app, fake_stability):
    client = make_app(STABILITY_API_KEY="sk-wrong", STABILITY_BASE_URL=fake_stability.url
                      ).test_client()
    body = {"prompt": "a fox", "provider": "stability"}
    first = post(client, "k", body)
    assert first.status_code == 502
    calls = len(fake_stability.requests)
    again = post(client, "k", body)
    assert again.status_code == 502 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert len(fake_stability.requests) == calls  # no second provider call


def test_keys_belong_to_their_caller(make_app):
    client = make_app(API_TOKENS=["alice:ta", "bob:tb"]).test_client()
    alice = post(client, "shared", token="ta")
    bob = post(client, "shared", token="tb")
    assert alice.status_code == bob.status_code == 201
    assert "Idempotent-Replayed" not in bob.headers
    assert alice.get_json()["id"] != bob.get_json()["id"]
    assert post(client, "shared", token="ta").get_json()["id"] == alice.get_json()["id"]


def test_expired_keys_are_cleaned_up_and_may_be_used_again(app, client):
    first = post(client, "old")
    with app.app_context():
        db.session.execute(db.update(IdempotencyKey).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
    again = post(client, "old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert again.get_json()["id"] != first.get_json()["id"]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(IdempotencyKey.id))) == 1


@pytest.fixture
def slow_stability(make_app, fake_stability):
    fake_stability.delay = 1.5
    app = make_app(STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url)
    with LiveServer(app) as server:
        yield server, fake_stability


def reached_provider(fake, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(r.path.startswith("/v2beta/") for r in fake.requests):
        assert time.monotonic() < deadline, "the first request never reached the provider"
        time.sleep(0.01)


def test_a_repeat_while_the_first_runs_is_409_then_replayed(slow_stability):
    server, fake = slow_stability
    body = {"prompt": "a fox", "provider": "stability"}

    def send():
        return requests.post(f"{server.url}/api/generate", json=body,
                             headers={"Idempotency-Key": "slow"}, timeout=30)

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(send)
        reached_provider(fake)  # the key is claimed before the provider is asked
        during = send()
        assert during.status_code == 409
        assert during.json()["error"] == "request_in_progress"
        assert first.result().status_code == 201
    after = send()
    assert after.status_code == 201 and after.headers["Idempotent-Replayed"] == "true"
    assert after.json() == first.result().json()
    assert fake.generations == 1


def test_a_retry_storm_makes_one_provider_call(slow_stability):
    server, fake = slow_stability
    body = {"prompt": "a fox", "provider": "stability"}
    start = threading.Barrier(12)

    def send(_):
        start.wait()
        return requests.post(f"{server.url}/api/generate", json=body,
                             headers={"Idempotency-Key": "storm"}, timeout=30)

    with ThreadPoolExecutor(12) as pool:
        storm = list(pool.map(send, range(12)))
    statuses = sorted(r.status_code for r in storm)
    # One made the image; the rest came while it ran (409) or, on a slow machine, after (replay).
    assert set(statuses) <= {201, 409}, statuses
    assert sum("Idempotent-Replayed" not in r.headers for r in storm if r.status_code == 201) == 1
    late = [requests.post(f"{server.url}/api/generate", json=body,
                          headers={"Idempotency-Key": "storm"}, timeout=30) for _ in range(3)]
    made = next(r for r in storm if r.status_code == 201
                and "Idempotent-Replayed" not in r.headers).json()
    assert all(r.status_code == 201 and r.headers["Idempotent-Replayed"] == "true"
               and r.json() == made for r in late)
    assert fake.generations == 1
    listing = requests.get(f"{server.url}/api/images", timeout=10)
    assert listing.headers["X-Total-Count"] == "1"


def test_the_form_makes_one_image_from_a_double_submission(make_app, fake_stability):
    fake_stability.delay = 1.0
    app = make_app(STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url)
    with LiveServer(app) as server, requests.Session() as session:
        page = session.get(f"{server.url}/", timeout=10).text
        fields = {name: re.search(rf'name="{name}"[^>]*value="([^"]+)"', page).group(1)
                  for name in ("csrf_token", "idempotency_key")}
        form = {**fields, "prompt": "a fox", "provider": "stability", "width": 1024,
                "height": 1024, "steps": 30, "cfg_scale": 4, "seed": "", "random_seed": "y"}

        def submit(_):
            return session.post(f"{server.url}/", data=form, allow_redirects=False, timeout=30)

        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(submit, range(2))
        assert first.status_code == second.status_code == 303
        assert first.headers["Location"] == second.headers["Location"]
        assert fake_stability.generations == 1
        fresh = session.get(f"{server.url}/", timeout=10).text
        assert fields["idempotency_key"] not in fresh  # every render brings a new key
