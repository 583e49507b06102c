"""The production deployment for real: nginx (deploy/nginx.conf) in front of gunicorn
(gunicorn.conf.py), on a database migrated with `flask db upgrade`, as the README's Deployment section describes.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import runpy
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import files_in
from tests.deploy import (
    NGINX_SITE,
    ROOT,
    Gunicorn,
    Nginx,
    Site,
    error_shape,
    project_copy,
)

GENERATION_TIMEOUT = 60


def nginx_setting(name: str) -> str:
    values = re.findall(rf"^\s*{name}\s+([^;]+);", NGINX_SITE.read_text(), re.MULTILINE)
    assert len(set(values)) == 1, f"{name}: {values}"
    return values[0]


def gunicorn_settings(monkeypatch, **env) -> dict:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_every_timeout_outlasts_a_generation(monkeypatch):
    settings = gunicorn_settings(monkeypatch, GENERATION_TIMEOUT="")
    assert settings["worker_class"] == "gthread" and settings["threads"] == 8
    assert settings["workers"] == 2 and settings["bind"] == ["127.0.0.1:8000"]
    assert 120 < settings["timeout"] and 120 < settings["graceful_timeout"]
    read_timeout = int(nginx_setting("proxy_read_timeout").removesuffix("s"))
    assert settings["timeout"] < read_timeout
    assert nginx_setting("client_max_body_size") == "1m"  # MAX_CONTENT_LENGTH's default, 1 MiB

    settings = gunicorn_settings(monkeypatch, GENERATION_TIMEOUT="300", WEB_CONCURRENCY="4",
                                 GUNICORN_THREADS="16", GUNICORN_BIND="", BIND="0.0.0.0:9000")
    assert settings["timeout"] > 300 and settings["graceful_timeout"] > 300
    assert (settings["workers"], settings["threads"]) == (4, 16)
    assert settings["bind"] == ["0.0.0.0:9000"]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, fake_stability_server):
    folder = tmp_path_factory.mktemp("deployment")
    site = Site(folder, GENERATION_TIMEOUT=str(GENERATION_TIMEOUT),
                STABILITY_API_KEY=fake_stability_server.api_key,
                STABILITY_BASE_URL=fake_stability_server.url)
    site.migrate()
    with Gunicorn(site) as gunicorn, Nginx(folder / "nginx", gunicorn.url.split("//")[1],
                                            site.images_dir) as nginx:
        yield site, gunicorn, nginx


@pytest.fixture
def site(deployment):
    return deployment[0]


@pytest.fixture
def gunicorn(deployment):
    return deployment[1]


@pytest.fixture
def nginx(deployment):
    return deployment[2]


def generate(nginx, **fields):
    body = {"prompt": "a quiet harbour at dawn", "provider": "offline", "width": 512,
            "height": 512, **fields}
    with nginx.session() as session:
        return session.post(f"{nginx.url}/api/generate", json=body, timeout=GENERATION_TIMEOUT + 30)


pytestmark = pytest.mark.deploy


def test_generation_through_nginx_and_images_served_by_nginx(site, gunicorn, nginx):
    response = generate(nginx, seed=7)
    assert response.status_code == 201, response.text
    record = response.json()
    assert response.headers["Location"] == f"/api/images/{record['id']}"
    assert record["provider"] == "offline" and record["seed"] == 7
    assert (site.images_dir / record["filename"]).is_file()

    with nginx.session() as session:
        image = session.get(nginx.url + record["url"], timeout=10)
        thumb = session.get(nginx.url + record["thumbnail_url"], timeout=10)
        css = session.get(f"{nginx.url}/static/css/app.css", timeout=10)
        missing = session.get(f"{nginx.url}/static/images/20000101_000000_999.png", timeout=10)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert image.content == (site.images_dir / record["filename"]).read_bytes()
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
    for response in (image, thumb):
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert css.status_code == 200 and css.headers["Content-Type"] == "text/css"
    assert css.headers["Cache-Control"] == "public, max-age=3600"
    assert missing.status_code == 404

    log = gunicorn.log()
    assert "POST /api/generate" in log
    assert "/static/" not in log  # nginx answered every file itself


def test_plain_http_redirects_to_https(nginx):
    with nginx.session() as session:
        response = session.get(f"{nginx.http_url}/images?q=x", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://127.0.0.1/images?q=x"


def test_app_sees_https_and_the_host_from_nginx_only(nginx):
    for seed in (1, 2):
        assert generate(nginx, seed=seed).status_code == 201
    spoofed = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example",
               "X-Forwarded-Prefix": "/evil", "X-Forwarded-Port": "81"}
    with nginx.session() as session:
        for headers in ({}, spoofed):
            listing = session.get(f"{nginx.url}/api/images?limit=1", headers=headers, timeout=10)
            assert listing.status_code == 200
            link = listing.headers["Link"]
            assert link.startswith(f"<https://127.0.0.1:{nginx.https_port}/api/images?"), link
            assert link.endswith('>; rel="next"')
        page = session.get(f"{nginx.url}/", timeout=10)
    assert page.status_code == 200
    cookie = page.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_slow_generation_succeeds_through_nginx_and_gunicorn(site, nginx, fake_stability):
    """35 s: longer than gunicorn's default worker timeout (30 s)."""
    started = time.monotonic()
    response = generate(nginx, provider="stability", prompt="a slow lighthouse [fault:slow=35]",
                        width=1024, height=1024)
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    assert elapsed >= 35
    record = response.json()
    assert record["provider"] == "stability"
    assert (site.images_dir / record["filename"]).is_file()


def test_too_large_body_refused_by_nginx_in_the_contract_shape(gunicorn, nginx):
    status, headers, body = nginx.raw("POST", "/api/generate", body=b"{" + b" " * (2 << 20),
                                      headers={"Content-Type": "application/json"})
    assert status == 413 and headers["content-type"] == "application/json"
    assert error_shape(body)["error"] == "payload_too_large"


@pytest.mark.parametrize("path", [
    "/static/images/../../config.py",
    "/static/images/..%2f..%2fconfig.py",
    "/static/images/%2e%2e/%2e%2e/config.py",
    "/static/images/thumbs/../../../wsgi.py",
    "/static/../config.py",
    "/static/images/..%252f..%252fconfig.py",
    "/api/images/..%2f..%2fconfig.py",
    "/static/images/../../instance/secret_key",
])
def test_paths_out_of_the_static_folders_are_not_found(nginx, path):
    status, _, body = nginx.raw("GET", path)
    assert status in (400, 404), (status, body[:200])
    assert b"load_dotenv" not in body and b"create_app" not in body


def test_default_rate_limit_store_is_one_sqlite_file_shared_by_the_workers(tmp_path):
    """RATE_LIMIT_STORAGE_URI unset: the counters live in instance/ratelimit.db, shared by every
    worker process. Each process serves at most two requests (--max-requests 2, then gunicorn
    replaces it), so a counter kept in a process could never reach the limit of 4: the fifth
    request is refused only if all of them count in one place."""
    project = project_copy(tmp_path)  # its own instance folder, not this checkout's
    site = Site(tmp_path / "site", root=project, RATE_LIMIT="4 per minute",
                RATE_LIMIT_STORAGE_URI="")
    site.migrate()
    with Gunicorn(site, workers=2, threads=2,
                  GUNICORN_CMD_ARGS="--max-requests 2 --max-requests-jitter 0") as gunicorn:
        statuses = []
        for _ in range(5):
            connection = http.client.HTTPConnection("127.0.0.1", gunicorn.port, timeout=30)
            status, body = post_empty(connection, with_body=True)
            statuses.append(status)
            connection.close()
        # A bad body still counts as a generation request.
        assert statuses == [422, 422, 422, 422, 429], statuses
        assert error_shape(body)["error"] == "rate_limited"
    # Workers were replaced on the way, each after its second request.
    assert "Autorestarting worker after current request" in gunicorn.log(), gunicorn.log()
    counters = project / "instance" / "ratelimit.db"
    assert counters.is_file()
    with sqlite3.connect(counters) as db:
        assert db.execute("SELECT max(count) FROM counters").fetchone()[0] >= 5


def post_empty(connection: http.client.HTTPConnection, with_body: bool = False):
    connection.request("POST", "/api/generate", body=b"{}",
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    body = response.read()
    return (response.status, body) if with_body else response.status


def test_keys_and_tokens_never_reach_the_logs(tmp_path, fake_stability, fake_replicate):
    """gunicorn's log (access log and the app's own lines) and nginx's, after requests that
    carry a token and provider errors that quote the key back."""
    tokens = ("log-test-token-a1b2c3d4", "log-test-token-e5f6a7b8")
    site = Site(tmp_path, API_TOKENS=",".join(tokens),
                STABILITY_API_KEY=fake_stability.api_key, STABILITY_BASE_URL=fake_stability.url,
                REPLICATE_API_TOKEN=fake_replicate.api_token,
                REPLICATE_BASE_URL=fake_replicate.url)
    site.migrate()
    with Gunicorn(site, workers=1, threads=4) as gunicorn, Nginx(
            tmp_path / "nginx", gunicorn.url.split("//")[1], site.images_dir) as nginx:
        with nginx.session() as session:
            for index, token in enumerate(tokens):
                session.headers["Authorization"] = f"Bearer {token}"
                calls = [("offline", "a harbour", 201),
                         ("stability", "a harbour [fault:echo-auth]", 502),
                         ("replicate", "a harbour [fault:echo-auth]", 502)]
                for provider, prompt, status in calls:
                    response = session.post(f"{nginx.url}/api/generate", timeout=60, json={
                        "prompt": prompt, "provider": provider, "width": 512, "height": 512,
                        "seed": index + 1})
                    assert response.status_code == status, response.text
                assert session.get(f"{nginx.url}/api/images", timeout=10).status_code == 200
            del session.headers["Authorization"]
            assert session.get(f"{nginx.url}/api/images", timeout=10).status_code == 401
    logs = {"gunicorn": gunicorn.log(), "nginx access": nginx.access_log.read_text(),
            "nginx error": nginx.error_log.read_text()}
    # The logs hold what happened, so a secret would have been there to find.
    assert len(re.findall(r'"POST /api/generate HTTP/1\.[01]" 502', logs["gunicorn"])) == 4
    assert "Stability AI answered HTTP 400: authorization: unexpected value" in logs["gunicorn"]
    assert logs["nginx access"].count("POST /api/generate") == 6
    secrets = {"STABILITY_API_KEY": fake_stability.api_key,
               "REPLICATE_API_TOKEN": fake_replicate.api_token,
               **{f"API_TOKENS[{i}]": token for i, token in enumerate(tokens)}}
    for log_name, text in logs.items():
        for secret_name, secret in secrets.items():
            assert secret not in text, f"{secret_name} is in the {log_name} log"


def test_generation_routes_rate_limited_by_nginx(site, gunicorn, nginx):
    """Runs last: it uses up the burst (from its own client address, 127.0.0.2)."""
    source = "127.0.0.2"
    statuses = []
    started = time.monotonic()
    for _ in range(500):
        status, headers, body = nginx.raw("POST", "/api/generate", body=b"{}", source=source,
                                          headers={"Content-Type": "application/json"})
        statuses.append(status)
        if status == 429:
            break
    elapsed = time.monotonic() - started
    assert statuses[0] == 422 and statuses[-1] == 429, statuses
    # 1 r/s with a burst of 20: the first 21 pass at once, then one more for each second the
    # requests took, however slow the machine is.
    passed = len(statuses) - 1
    assert set(statuses[:-1]) == {422}
    assert 21 <= passed <= 21 + math.ceil(elapsed), (passed, elapsed)
    assert headers["content-type"] == "application/json"
    assert int(headers["retry-after"]) >= 1
    assert error_shape(body)["error"] == "rate_limited"

    form_status, _, form_body = nginx.raw("POST", "/", body=b"prompt=x", source=source,
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form_status == 429 and json.loads(form_body)["error"] == "rate_limited"
    assert nginx.raw("GET", "/", source=source)[0] == 200
    assert nginx.raw("GET", "/api/images", source=source)[0] == 200
    assert nginx.raw("POST", "/api/generate", body=b"{}", source="127.0.0.1",
                     headers={"Content-Type": "application/json"})[0] == 422
    assert files_in(site.images_dir)  # the earlier generations are all still there
    assert Path(site.database).exists()

