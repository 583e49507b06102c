"""What guards the app: API tokens, CSRF, CORS, security headers, cookies, body size, rate limit."""

from __future__ import annotations

import re

import pytest

from tests.conftest import files_in

TOKENS = ["first-token-0123456789", "second-token-9876543210"]
ORIGIN = "https://studio.example.org"
SMALL = {"prompt": "a small test image", "provider": "offline", "width": 512, "height": 512}


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"detail", "error"} and body["error"] == code
    return body


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def csrf_token(client) -> str:
    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


# --- API tokens -------------------------------------------------------------------------------


@pytest.fixture
def guarded(make_app):
    return make_app(API_TOKENS=TOKENS).test_client()


@pytest.mark.parametrize("headers", [
    {},
    bearer("wrong-token"),
    bearer(TOKENS[0] + "x"),
    bearer(TOKENS[0][:-1]),
    {"Authorization": TOKENS[0]},
    {"Authorization": f"Basic {TOKENS[0]}"},
    {"Authorization": "Bearer "},
    {"Authorization": f"Bearer {TOKENS[0]},{TOKENS[1]}"},
])
def test_api_refuses_missing_or_wrong_token(guarded, headers):
    for method, path in (("GET", "/api/images"), ("GET", "/api/providers"),
                         ("GET", "/api/images/1"), ("DELETE", "/api/images/1"),
                         ("GET", "/api/openapi.json"), ("GET", "/api/no-such-route")):
        response = guarded.open(path, method=method, headers=headers)
        body = error_of(response, 401, "unauthorized")
        for token in TOKENS:
            assert token not in response.get_data(as_text=True)
        assert "Bearer" in body["detail"]
    error_of(guarded.post("/api/generate", json=SMALL, headers=headers), 401, "unauthorized")


def test_api_accepts_each_configured_token(guarded, images_dir):
    for token in TOKENS:
        assert guarded.get("/api/images", headers=bearer(token)).status_code == 200
    response = guarded.post("/api/generate", json=SMALL, headers=bearer(TOKENS[1]))
    assert response.status_code == 201
    record = response.get_json()
    assert guarded.get(f"/api/images/{record['id']}", headers=bearer(TOKENS[0])).status_code == 200


def test_health_and_pages_need_no_token(guarded):
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/").status_code == 200
    assert guarded.get("/images").status_code == 200


def test_without_api_tokens_the_api_is_open(client):
    assert client.get("/api/images").status_code == 200


# --- CSRF ---------------------------------------------------------------------------------------


@pytest.fixture
def csrf_app(make_app):
    return make_app(API_TOKENS=TOKENS, WTF_CSRF_ENABLED=True)


def form(**fields):
    return {"prompt": "a lighthouse", "negative_prompt": "", "provider": "offline", "model": "",
            "width": "512", "height": "512", "steps": "30", "cfg_scale": "7", "seed": "0",
            **fields}


def test_form_without_csrf_token_refused_even_with_an_api_token(csrf_app):
    client = csrf_app.test_client()
    for headers in ({}, bearer(TOKENS[0])):
        response = client.post("/", data=form(), headers=headers)
        assert response.status_code == 400
        assert "CSRF" in response.get_data(as_text=True)
    response = client.post("/", data=form(csrf_token="forged"), headers=bearer(TOKENS[0]))
    assert response.status_code == 400
    assert files_in(csrf_app.config["IMAGES_DIR"]) == []
    listing = client.get("/api/images", headers=bearer(TOKENS[0]))
    assert listing.status_code == 200 and listing.headers["X-Total-Count"] == "0"


def test_form_with_its_csrf_token_works(csrf_app):
    client = csrf_app.test_client()
    response = client.post("/", data=form(csrf_token=csrf_token(client)))
    assert response.status_code == 303 and re.fullmatch(r"/images/\d+", response.location)


def test_token_authenticated_api_is_exempt_from_csrf(csrf_app):
    client = csrf_app.test_client()
    response = client.post("/api/generate", json=SMALL, headers=bearer(TOKENS[0]))
    assert response.status_code == 201
    image_id = response.get_json()["id"]
    assert client.delete(f"/api/images/{image_id}", headers=bearer(TOKENS[0])).status_code == 204


# --- CORS ---------------------------------------------------------------------------------------


def preflight(client, path="/api/generate", origin=ORIGIN):
    return client.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})


def test_no_cors_headers_when_no_origin_is_configured(client):
    for response in (client.get("/api/images", headers={"Origin": ORIGIN}), preflight(client)):
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.fixture
def cors_client(make_app):
    return make_app(CORS_ORIGINS=[ORIGIN, "http://localhost:3000"], API_TOKENS=TOKENS).test_client()


def test_allowed_origin_may_call_the_api(cors_client):
    response = cors_client.get("/api/images", headers={"Origin": ORIGIN, **bearer(TOKENS[0])})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = response.headers.get("Access-Control-Expose-Headers", "").lower()
    assert "link" in exposed and "x-total-count" in exposed


def test_preflight_for_an_allowed_origin(cors_client):
    response = preflight(cors_client)
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


@pytest.mark.parametrize("origin", ["https://evil.example", "https://studio.example.org.evil.example",
                                    "http://studio.example.org", "null"])
def test_other_origins_get_no_cors_headers(cors_client, origin):
    response = cors_client.get("/api/images", headers={"Origin": origin, **bearer(TOKENS[0])})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in preflight(cors_client, origin=origin).headers


def test_cors_only_covers_the_api(cors_client):
    for path in ("/", "/images", "/health"):
        response = cors_client.get(path, headers={"Origin": ORIGIN})
        assert "Access-Control-Allow-Origin" not in response.headers


# --- security headers and cookies ---------------------------------------------------------------


def csp_directives(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def test_security_headers_on_every_response(client):
    record = client.post("/api/generate", json=SMALL).get_json()
    responses = [
        client.get("/"), client.get("/images"), client.get(f"/images/{record['id']}"),
        client.get("/api/images"), client.get("/api/providers"), client.get("/health"),
        client.get("/no-such-page"), client.get("/api/no-such-route"),
        client.post("/api/generate", json={}), client.post("/api/generate", data="x"),
        client.get(record["url"]), client.get("/static/css/app.css"),
        client.put("/api/images"),
    ]
    for response in responses:
        response.close()
        directives = csp_directives(response)
        script = directives.get("script-src", directives.get("default-src"))
        assert script and "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
        assert directives["frame-ancestors"] == ["'none'"]
        assert "'none'" in directives.get("object-src", ["'none'"])
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] in ("strict-origin-when-cross-origin",
                                                       "same-origin", "no-referrer")


def session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def test_session_cookie_flags(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    plain = session_cookie(app.test_client().get("/"))
    assert "HttpOnly" in plain and "SameSite=Lax" in plain
    behind_tls = session_cookie(app.test_client().get("/", headers={"X-Forwarded-Proto": "https"}))
    assert "HttpOnly" in behind_tls and "SameSite=Lax" in behind_tls and "Secure" in behind_tls


def test_forwarded_headers_trusted_from_one_proxy_only(client):
    for seed in (1, 2):
        assert client.post("/api/generate", json={**SMALL, "seed": seed}).status_code == 201
    response = client.get("/api/images?limit=1", headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "images.example.org"})
    assert response.headers["Link"].startswith("<https://images.example.org/api/images?")
    # A client's own header before the proxy's: only the last (the proxy's) value counts.
    response = client.get("/api/images?limit=1", headers={
        "X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "evil.example, images.example.org"})
    assert response.headers["Link"].startswith("<https://images.example.org/api/images?")


# --- body size ----------------------------------------------------------------------------------


def test_body_over_max_content_length_is_413_json(make_app, images_dir):
    client = make_app().test_client()
    too_big = b'{"prompt": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post("/api/generate", data=too_big, content_type="application/json")
    error_of(response, 413, "payload_too_large")
    small = make_app(MAX_CONTENT_LENGTH=2000).test_client()
    response = small.post("/api/generate", json={**SMALL, "prompt": "y" * 1999})
    error_of(response, 413, "payload_too_large")
    assert small.post("/api/generate", json=SMALL).status_code == 201


# --- rate limit ---------------------------------------------------------------------------------


@pytest.fixture
def limited(make_app, tmp_path):
    """Two apps on one counter store: two gunicorn workers of the same deployment."""
    storage = f"sqlite:///{tmp_path / 'ratelimit.db'}"
    return [make_app(RATELIMIT_ENABLED=True, RATE_LIMIT="4 per minute",
                     RATELIMIT_STORAGE_URI=storage, WTF_CSRF_ENABLED=False)
            for _ in range(2)]


def rate_limited(response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 61  # a one-minute window, rounded up


def test_rate_limit_is_shared_between_workers(limited):
    first, second = (app.test_client() for app in limited)
    assert first.post("/api/generate", json=SMALL).status_code == 201
    assert second.post("/api/generate", json={}).status_code == 422
    assert first.post("/", data=form()).status_code == 303  # the form counts too
    assert second.post("/api/generate", json=SMALL).status_code == 201
    for client in (first, second):
        response = client.post("/api/generate", json=SMALL)
        rate_limited(response)
        assert error_of(response, 429, "rate_limited")["detail"]
        page = client.post("/", data=form())
        rate_limited(page)
    # Reading is not limited; another address has its own allowance.
    assert first.get("/api/images").status_code == 200
    other = second.post("/api/generate", json=SMALL, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 201


def test_rate_limit_keyed_by_the_address_the_proxy_saw(limited):
    client = limited[0].test_client()
    statuses = [
        client.post("/api/generate", json={}, headers={
            "X-Forwarded-For": f"198.51.100.{i}, 203.0.113.9"}).status_code
        for i in range(6)
    ]
    assert statuses == [422] * 4 + [429] * 2
    other = client.post("/api/generate", json={}, headers={"X-Forwarded-For": "203.0.113.10"})
    assert other.status_code == 422
