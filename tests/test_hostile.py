"""Hostile input on every route: generated bodies, query strings and headers (hypothesis).

Whatever arrives, the app answers without a 500 and without a traceback, every error under /api/
(and /health) is {"detail", "error"}, and no path leaves the image and static folders.
"""

from __future__ import annotations

import json
import re
import shutil
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from app.params import PARAMS

HOSTILE = settings(max_examples=200, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])
TOKEN = "hostile-test-token"
FIELDS = [param.name for param in PARAMS]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")


@pytest.fixture(scope="module")
def apps(tmp_path_factory, migrated_db):
    """As deployed (CSRF on), with tokens and CORS on, and with CSRF off (to reach the form)."""
    folder = tmp_path_factory.mktemp("hostile")
    made = {}
    for name, overrides in {
        "production": {},
        "guarded": {"API_TOKENS": [TOKEN], "CORS_ORIGINS": ["https://ok.example"]},
        "form": {"WTF_CSRF_ENABLED": False},
    }.items():
        shutil.copy(migrated_db, folder / f"{name}.db")
        app = create_app({
            "TESTING": True, "SECRET_KEY": "hostile", "RATELIMIT_ENABLED": False,
            "RATELIMIT_STORAGE_URI": "memory://", "IMAGES_DIR": str(folder / f"images-{name}"),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / name}.db", **overrides,
        })
        with app.test_client() as client:
            response = client.post("/api/generate", headers={"Authorization": f"Bearer {TOKEN}"},
                                   json={"prompt": "a seed image", "width": 512, "height": 512})
            assert response.status_code == 201
        made[name] = app
    yield made
    for app in made.values():
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()


# --- strategies ---------------------------------------------------------------------------------

printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
header_text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n\x00\x7f",
                                    min_codepoint=32), max_size=60)
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)
field_values = {
    "prompt": st.text(max_size=60) | st.just("  ") | st.just("x" * 2001) | json_values,
    "negative_prompt": st.text(max_size=30) | st.just("n" * 1001) | json_values,
    "provider": st.sampled_from(["offline", "stability", "replicate", "OFFLINE", "", "../x"])
    | json_values,
    "model": st.sampled_from(["", "abstract", "sd3.5-large", "nope"]) | json_values,
    "width": st.sampled_from([512, 576, 511, 4096, 0, -64, 2**63, 512.0, "512", True, None])
    | json_values,
    "height": st.sampled_from([512, 640, 513, 2112, -1, 1e308, "640", False]) | json_values,
    "steps": st.integers(-5, 60) | json_values,
    "cfg_scale": st.floats(allow_nan=True, allow_infinity=True) | json_values,
    "seed": st.sampled_from([0, 1, -1, 4294967294, 4294967295, 2**64, 1.5]) | json_values,
}
generate_bodies = st.fixed_dictionaries(
    {}, optional={name: values for name, values in field_values.items()}
) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), json_values, max_size=6) \
  | json_values
content_types = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/problem+json",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
    "multipart/form-data; boundary=x", "application/xml", "",
]) | header_text


@st.composite
def bodies(draw):
    """Raw bytes and a Content-Type: JSON (often of the generation fields), forms, garbage."""
    kind = draw(st.sampled_from(["json", "json", "form", "bytes", "none"]))
    if kind == "json":
        text = json.dumps(draw(generate_bodies), allow_nan=True)
        return text.encode(), draw(st.sampled_from(["application/json"]) | content_types)
    if kind == "form":
        fields = draw(st.dictionaries(st.sampled_from(FIELDS + ["csrf_token"]) | printable,
                                      st.text(max_size=30), max_size=8))
        return urlencode(fields).encode(), draw(
            st.sampled_from(["application/x-www-form-urlencoded"]) | content_types)
    if kind == "bytes":
        return draw(st.binary(max_size=200)), draw(content_types)
    return b"", draw(content_types)


HEADER_NAMES = ["Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cookie",
                "Origin", "Referer", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
                "X-Forwarded-Prefix", "X-Forwarded-Port", "X-CSRFToken", "If-Modified-Since",
                "If-None-Match", "Range", "Access-Control-Request-Method", "Host", "User-Agent"]
headers = st.dictionaries(
    st.sampled_from(HEADER_NAMES),
    header_text | st.sampled_from([f"Bearer {TOKEN}", "Bearer", "bytes=0-1,5-", "https",
                                   "https://ok.example", "session=garbage.sig", "*/*"]),
    max_size=5,
)
QUERY_NAMES = ["limit", "before", "q", "provider", "from", "keep", *FIELDS]
query_strings = st.one_of(
    st.dictionaries(st.sampled_from(QUERY_NAMES) | printable,
                    st.text(max_size=30) | st.sampled_from(["0", "-1", "201", "1e3", "%", "Zm9v"]),
                    max_size=4).map(urlencode),
    printable,
)
path_parts = st.sampled_from(["1", "2", "0", "-1", "99999999999999999999", "9223372036854775807", "abc", "..", "%2e%2e",
                              "..%2f..%2fconfig.py", "%00", "thumbs", "thumbs/1.webp", "", " ",
                              "%ff", "%2f", "a" * 300]) | printable.map(lambda s: quote(s, safe=""))


def route_paths(app) -> list[str]:
    """Every route, with `{}` where a converter's value goes."""
    paths = set()
    for rule in app.url_map.iter_rules():
        paths.add(re.sub(r"<[^>]+>", "{}", rule.rule))
    return sorted(paths)


@st.composite
def requests_(draw, app):
    template = draw(st.sampled_from(route_paths(app) + ["/api/nothing", "/api/", "/nothing"]))
    path = template.replace("{}", draw(path_parts)) if "{}" in template else template
    query = draw(query_strings)
    body, content_type = draw(bodies())
    request_headers = draw(headers)
    if content_type:
        request_headers["Content-Type"] = content_type
    method = draw(st.sampled_from(METHODS))
    return method, f"{path}?{query}" if query else path, body, request_headers


# --- checks -------------------------------------------------------------------------------------


def check(method: str, path: str, response) -> None:
    status, data = response.status_code, response.get_data()
    text = data.decode("utf-8", "replace")
    where = f"{method} {path} -> {status}: {text[:300]}"
    assert status < 500, where
    assert not TRACEBACK.search(text), where
    route = path.split("?")[0]
    if (route.startswith("/api/") or route == "/health") and status >= 400 and method != "HEAD":
        assert response.mimetype == "application/json", where
        body = json.loads(data)
        assert set(body) == {"detail", "error"}, where
        assert isinstance(body["error"], str) and body["error"], where
        assert isinstance(body["detail"], str | list) and body["detail"], where


def send(app, method, path, body=b"", request_headers=None):
    with app.test_client() as client, client.open(path, method=method, data=body,
                                                  headers=request_headers or {}) as response:
        response.get_data()
        return response


@pytest.mark.parametrize("variant", ["production", "guarded", "form"])
def test_every_route_survives_hostile_requests(apps, variant):
    app = apps[variant]

    @HOSTILE
    @given(requests_(app))
    def run(request):
        method, path, body, request_headers = request
        check(method, path, send(app, method, path, body, request_headers))

    run()


@HOSTILE
@given(body=bodies(), request_headers=headers)
def test_generate_survives_hostile_bodies(apps, body, request_headers):
    data, content_type = body
    request_headers = {**request_headers, "Content-Type": content_type or "application/json"}
    response = send(apps["production"], "POST", "/api/generate", data, request_headers)
    check("POST", "/api/generate", response)
    if response.status_code == 201:
        assert response.get_json()["seed"] > 0


@HOSTILE
@given(query=query_strings, request_headers=headers)
def test_listing_survives_hostile_queries(apps, query, request_headers):
    for path in (f"/api/images?{query}", f"/images?{query}", f"/?{query}"):
        check("GET", path, send(apps["production"], "GET", path, request_headers=request_headers))


@pytest.mark.parametrize("path", [
    "/static/images/../../config.py",
    "/static/images/../../../etc/passwd",
    "/static/images/..%2f..%2fconfig.py",
    "/static/images/%2e%2e/%2e%2e/config.py",
    "/static/images/%2e%2e%2f%2e%2e%2fconfig.py",
    "/static/images/..%5c..%5cconfig.py",
    "/static/images/..\\..\\config.py",
    "/static/images/%252e%252e%252fconfig.py",
    "/static/images/thumbs/..%2f..%2f..%2fwsgi.py",
    "/static/images//etc/passwd",
    "/static/images/%2fetc%2fpasswd",
    "/static/images/a%00.png",
    "/static/images/..",
    "/static/..%2fconfig.py",
    "/static/%2e%2e/instance/secret_key",
    "/api/images/..%2f",
    "/api/images/..%2f..%2fconfig.py",
    "/api/images/%2e%2e",
    "/images/..%2f..%2fconfig.py",
])
def test_path_traversal_is_not_found(apps, path):
    for app in apps.values():
        response = send(app, "GET", path, request_headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 404, (path, response.status_code)
        assert b"load_dotenv" not in response.get_data() and b"root:" not in response.get_data()
        check("GET", path, response)


@pytest.mark.parametrize("image_id", ["9223372036854775808", "99999999999999999999", "1" * 400])
@pytest.mark.parametrize("method, template", [
    ("GET", "/api/images/{}"), ("DELETE", "/api/images/{}"), ("GET", "/images/{}"),
    ("POST", "/images/{}/delete"), ("GET", "/?from={}"), ("GET", "/static/images/thumbs/{}.webp"),
])
def test_ids_beyond_the_database_range_are_not_found(apps, method, template, image_id):
    path = template.format(image_id)
    response = send(apps["form"], method, path)
    assert response.status_code == 404, (path, response.status_code)
    check(method, path, response)


# --- the OpenAPI document, fuzzed by schemathesis -----------------------------------------------


def test_openapi_operations_never_fail_on_the_server(apps):
    """Every operation the document lists, with inputs schemathesis draws from its schemas."""
    import schemathesis
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", apps["production"])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5

    for operation in operations:
        @settings(max_examples=30, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call()
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400 and case.method.upper() != "HEAD":
                if case.path.startswith("/v1/"):  # OpenAI's shape
                    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
                else:
                    assert set(response.json()) == {"detail", "error"}, response.text

        run()
