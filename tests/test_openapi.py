"""The OpenAPI document: valid, complete, and stating the contract's rules."""

import re

import pytest
from openapi_spec_validator import validate

from app.api.errors import CODES


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


ROUTES = {
    "/api/generate": {"post": {"201", "400", "401", "402", "404", "413", "415", "422", "429",
                               "502", "503", "504"}},
    "/api/images": {"get": {"200", "401", "422"}},
    "/api/images/{image_id}": {"get": {"200", "401", "404"}, "delete": {"204", "401", "404"}},
    "/api/providers": {"get": {"200", "401"}},
    "/health": {"get": {"200", "503"}},
    "/api/openapi.json": {"get": {"200"}},
}


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_and_status_of_the_contract_is_listed(document):
    for path, operations in ROUTES.items():
        assert path in document["paths"], path
        for method, statuses in operations.items():
            responses = document["paths"][path][method]["responses"]
            assert statuses <= set(responses), (path, method, statuses - set(responses))


def test_every_flask_route_is_documented(app, document):
    api_routes = {re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
                  for rule in app.url_map.iter_rules()
                  if rule.rule.startswith("/api/") or rule.rule == "/health"}
    documented = set(document["paths"])
    assert api_routes == documented


# The request fields of POST /api/generate as the contract's table states them.
CONTRACT_FIELDS = {
    "prompt": {"type": "string", "minLength": 1, "maxLength": 2000},
    "negative_prompt": {"type": "string", "maxLength": 1000, "default": ""},
    "provider": {"type": "string"},
    "model": {"type": "string"},
    "width": {"type": "integer", "minimum": 512, "maximum": 2048, "multipleOf": 64,
              "default": 1024},
    "height": {"type": "integer", "minimum": 512, "maximum": 2048, "multipleOf": 64,
               "default": 1024},
    "steps": {"type": "integer", "minimum": 10, "maximum": 50, "default": 30},
    "cfg_scale": {"type": "number", "minimum": 1, "maximum": 20, "default": 7.0},
    "seed": {"type": "integer", "minimum": 0, "maximum": 4294967294, "default": 0},
}
LATER_FIELDS = {"count", "options"}  # the contract's newer fields, checked where they are built
PROVIDERS = {"stability", "replicate", "openai", "offline"}


def test_request_schema_states_the_contract_rules(document):
    schema = document["components"]["schemas"]["GenerateRequest"]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["prompt"]
    properties = schema["properties"]
    assert set(CONTRACT_FIELDS) <= set(properties) <= set(CONTRACT_FIELDS) | LATER_FIELDS
    for name, rules in CONTRACT_FIELDS.items():
        stated = {key: properties[name].get(key) for key in rules}
        assert stated == rules, name
        assert properties[name]["description"], name
    assert {"stability", "replicate", "offline"} <= set(properties["provider"]["enum"]) <= PROVIDERS


def test_generate_errors_carry_the_contract_codes(document):
    responses = document["paths"]["/api/generate"]["post"]["responses"]
    expected = {"400": {"provider_not_configured"}, "401": {"unauthorized"},
                "402": {"credits_exhausted", "budget_exceeded"}, "404": {"not_found"},
                "409": {"request_in_progress"},
                "413": {"payload_too_large"}, "415": {"unsupported_media_type"},
                "422": {"validation_error", "content_moderation", "idempotency_key_reused"},
                "429": {"rate_limited"},
                "502": {"upstream_error"}, "503": {"storage_error"}, "504": {"upstream_timeout"}}
    for status, codes in expected.items():
        examples = responses[status]["content"]["application/json"]["examples"]
        assert {example["value"]["error"] for example in examples.values()} == codes, status
    assert "Retry-After" in responses["429"]["headers"]
    assert "Location" in responses["201"]["headers"]
    validation = responses["422"]["content"]["application/json"]["examples"]["validation_error"]
    assert validation["value"]["detail"][0]["loc"] == ["body", "steps"]
    error_codes = document["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
    assert set(CODES.values()) <= set(error_codes)


def test_listing_documents_its_query_and_headers(document):
    listing = document["paths"]["/api/images"]["get"]
    assert [p["name"] for p in listing["parameters"]][:4] == ["limit", "before", "q", "provider"]
    assert "batch" in [p["name"] for p in listing["parameters"]]
    assert {"Link", "X-Total-Count"} <= set(listing["responses"]["200"]["headers"])


def test_bearer_scheme_and_open_health(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["paths"]["/health"]["get"]["security"] == []


def test_the_example_request_is_accepted(client, document):
    body = document["paths"]["/api/generate"]["post"]["requestBody"]["content"][
        "application/json"]["examples"]["offline"]["value"]
    response = client.post("/api/generate", json={**body, "width": 512, "height": 512})
    assert response.status_code == 201


def test_docs_page_uses_only_local_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/docs/assets/swagger-ui-bundle.js" in html and "<script>" not in html
    assert "http://" not in html and "https://" not in html
    with client.get("/docs/assets/swagger-ui-bundle.js") as asset:
        assert asset.status_code == 200 and asset.mimetype in ("text/javascript",
                                                               "application/javascript")
    assert client.get("/docs/assets/../../app/__init__.py").status_code == 404


def test_records_and_batches_match_their_schemas(client, document):
    schemas = document["components"]["schemas"]
    batch = client.post("/api/generate", json={"prompt": "a", "count": 2, "width": 512,
                                               "height": 512}).get_json()
    assert set(batch) == set(schemas["Batch"]["required"])
    for record in batch["images"]:
        assert set(schemas["Image"]["required"]) <= set(record) <= set(
            schemas["Image"]["properties"])
    assert "seed" in schemas["Image"]["properties"]["ignored"]["items"]["enum"]
    assert "null" in schemas["Image"]["properties"]["seed"]["type"]
    assert {"options", "available"} <= set(schemas["Model"]["properties"])
