"""PostgreSQL going away under a running app: a 503 `database_unavailable` with no record, no
file and no secret in it; the app serves again as soon as the server is back."""

from __future__ import annotations

import threading
import time

import pytest

from app import create_app
from app.extensions import db
from tests.conftest import PostgresDatabases, files_in

pytestmark = pytest.mark.sqlite_only  # the PostgreSQL server itself is what this stops

PASSWORD = "hunter2-database-password"  # trust authentication accepts it; it must never show


@pytest.fixture
def pg_app(postgres, postgres_template, tmp_path, fake_stability):
    databases = PostgresDatabases(postgres, postgres_template)
    url = databases.new().replace("postgres@", f"postgres:{PASSWORD}@")
    app = create_app({
        "TESTING": True, "SECRET_KEY": "test-secret", "SQLALCHEMY_DATABASE_URI": url,
        "IMAGES_DIR": str(tmp_path / "images"), "RATELIMIT_ENABLED": False,
        "RATELIMIT_STORAGE_URI": "memory://", "STABILITY_API_KEY": fake_stability.api_key,
        "STABILITY_BASE_URL": fake_stability.url,
    })
    yield app
    with app.app_context():
        db.engine.dispose()
    if not postgres.running():
        postgres.start()
    databases.drop_all()


def unavailable(response) -> dict:
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == "database_unavailable" and body["detail"]
    assert response.headers["Retry-After"]
    text = response.get_data(as_text=True)
    assert PASSWORD not in text and "psycopg" not in text and "127.0.0.1" not in text
    return body


def test_database_gone_mid_generation(pg_app, postgres, fake_stability, caplog):
    client = pg_app.test_client()
    assert client.post("/api/generate", json={"prompt": "before", "width": 512,
                                              "height": 512}).status_code == 201
    result = {}

    def slow_generation():
        result["response"] = client.post("/api/generate", json={
            "prompt": "a slow one [fault:slow=2]", "provider": "stability"})

    flight = threading.Thread(target=slow_generation)
    flight.start()
    deadline = time.monotonic() + 10
    while not fake_stability.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake_stability.requests, "the provider was never called"
    postgres.stop()  # while the provider is still working on the image
    flight.join(30)
    unavailable(result["response"])
    assert PASSWORD not in caplog.text
    images = pg_app.config["IMAGES_DIR"]
    assert len(files_in(images)) == 2  # the first image and its thumbnail, nothing else

    # Reading while it is down: JSON for the API, a page for people, /health says so.
    unavailable(client.get("/api/images"))
    page = client.get("/images")
    assert page.status_code == 503 and PASSWORD not in page.get_data(as_text=True)
    health = client.get("/health")
    assert health.status_code == 503 and health.get_json()["database"] == "error"

    postgres.start()
    listed = client.get("/api/images")
    assert listed.status_code == 200
    assert [record["prompt"] for record in listed.get_json()] == ["before"]
    assert client.get("/health").get_json()["database"] == "ok"
    again = client.post("/api/generate", json={"prompt": "after", "width": 512, "height": 512})
    assert again.status_code == 201
    assert len(files_in(images)) == 4


def test_connections_killed_by_the_server_are_replaced(pg_app, postgres):
    """A restart or failover drops every connection in the pool: the next request reconnects."""
    client = pg_app.test_client()
    assert client.get("/api/images").status_code == 200
    with pg_app.app_context():
        name = db.engine.url.database
    postgres.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
    assert client.get("/api/images").status_code == 200
    assert client.post("/api/generate", json={"prompt": "still here", "width": 512,
                                              "height": 512}).status_code == 201
