"""The generation rate limit across nodes: a real Redis, each app its own settings, a store that
goes away (a counter of each process's own, a warning, never a 500) and comes back."""

from __future__ import annotations

import logging
import sqlite3
import time

import pytest
import redis

from tests.deploy import free_port

pytestmark = pytest.mark.sqlite_only  # counters, not records: one database is enough

INVALID = {}  # refused with a 422, after the limit has counted it


def limited_app(make_app, **settings):
    return make_app(RATELIMIT_ENABLED=True, WTF_CSRF_ENABLED=False, **settings)


def statuses(client, count: int, **kwargs) -> list[int]:
    return [client.post("/api/generate", json=INVALID, **kwargs).status_code
            for _ in range(count)]


def redis_keys(url: str) -> list[bytes]:
    return redis.Redis.from_url(url, socket_timeout=5).keys("*")


def test_two_nodes_share_one_limit_in_redis(make_app, redis_url):
    nodes = [limited_app(make_app, RATE_LIMIT="3 per minute", RATE_LIMIT_STORAGE_URI=redis_url)
             for _ in range(2)]
    first, second = (node.test_client() for node in nodes)
    assert [first.post("/api/generate", json=INVALID).status_code,
            second.post("/api/generate", json=INVALID).status_code,
            first.post("/api/generate", json=INVALID).status_code] == [422] * 3
    refused = second.post("/api/generate", json=INVALID)
    assert refused.status_code == 429 and refused.get_json()["error"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert redis_keys(redis_url)  # the counter lives in Redis, not in either process
    for client in (first, second):
        health = client.get("/health")
        assert health.status_code == 200 and health.get_json()["rate_limit_store"] == "ok"


def test_each_app_keeps_its_own_limit_settings(make_app, redis_url, tmp_path):
    """Apps made one after another in one process do not inherit each other's limiter."""
    on_file = limited_app(make_app, RATE_LIMIT="2 per minute",
                          RATE_LIMIT_STORAGE_URI=f"sqlite:///{tmp_path / 'counters.db'}")
    on_redis = limited_app(make_app, RATE_LIMIT="4 per minute", RATE_LIMIT_STORAGE_URI=redis_url)
    unlimited = make_app(RATELIMIT_ENABLED=False)  # made last, switches nothing off for the others

    assert statuses(on_file.test_client(), 3) == [422, 422, 429]
    assert redis_keys(redis_url) == []  # the first app's counts went to its own file
    with sqlite3.connect(tmp_path / "counters.db") as counters:
        assert counters.execute("SELECT sum(count) FROM counters").fetchone()[0] == 3
    assert statuses(on_redis.test_client(), 5) == [422, 422, 422, 422, 429]
    assert redis_keys(redis_url)
    assert statuses(unlimited.test_client(), 6) == [422] * 6
    assert "rate_limit_store" not in unlimited.test_client().get("/health").get_json()


def test_unreachable_store_falls_back_to_a_counter_of_its_own(make_app, caplog):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = limited_app(make_app, RATE_LIMIT="3 per minute", RATE_LIMIT_STORAGE_URI=nowhere)
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        assert statuses(client, 4) == [422, 422, 422, 429]  # the same limit, counted here
    assert any("falling back to in-memory storage" in r.getMessage() for r in caplog.records)
    health = client.get("/health")
    assert health.status_code == 200
    assert health.get_json()["rate_limit_store"] == "error"
    assert health.get_json()["status"] == "ok"


def test_a_store_that_stops_and_comes_back(make_app, redis_server, redis_url, caplog):
    app = limited_app(make_app, RATE_LIMIT="100 per minute", RATE_LIMIT_STORAGE_URI=redis_url)
    client = app.test_client()
    generated = client.post("/api/generate", json={"prompt": "before", "width": 512,
                                                   "height": 512})
    assert generated.status_code == 201
    redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING):
            during = client.post("/api/generate", json={"prompt": "while it is down",
                                                        "width": 512, "height": 512})
        assert during.status_code == 201, during.get_data(as_text=True)
        assert "falling back to in-memory storage" in caplog.text
        assert client.get("/health").get_json()["rate_limit_store"] == "error"
    finally:
        redis_server.start()
    assert client.get("/health").get_json()["rate_limit_store"] == "ok"
    # The limiter looks for its store again after a growing pause, then counts there again.
    deadline = time.monotonic() + 15
    while not redis_keys(redis_url) and time.monotonic() < deadline:
        assert client.post("/api/generate", json=INVALID).status_code == 422
        time.sleep(0.2)
    assert redis_keys(redis_url)


def test_store_credentials_never_reach_health_or_logs(make_app, caplog):
    secret = "s3cr3t-redis-password"
    nowhere = f"redis://:{secret}@127.0.0.1:{free_port()}/0"
    app = limited_app(make_app, RATE_LIMIT="3 per minute", RATE_LIMIT_STORAGE_URI=nowhere)
    client = app.test_client()
    with caplog.at_level(logging.DEBUG):
        responses = [client.post("/api/generate", json=INVALID) for _ in range(2)]
        responses.append(client.get("/health"))
    for response in responses:
        assert secret not in response.get_data(as_text=True)
    assert secret not in caplog.text
