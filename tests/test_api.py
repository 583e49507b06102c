"""The JSON API against the offline provider: every route and every status it can produce."""

import io
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image as PILImage

from app.extensions import db
from app.models import Image
from tests.conftest import files_in

TUTORIAL_BODY = {  # the original tutorial's example, with the provider it used swapped for offline
    "prompt": "A serene mountain landscape at sunset, digital art",
    "negative_prompt": "blurry, low quality",
    "provider": "offline",
    "width": 1024,
    "height": 1024,
    "steps": 30,
    "cfg_scale": 7.0,
    "seed": 0,
}


def fetch(client, url):
    """A file response, closed after reading (file responses hold their file open)."""
    with client.get(url) as response:
        return response.status_code, response.mimetype, response.data


def generate(client, **fields):
    return client.post("/api/generate", json={"prompt": "a quiet harbour", "width": 512,
                                              "height": 512, **fields})


def test_tutorial_example_creates_an_image(client, images_dir):
    started = time.monotonic()
    response = client.post("/api/generate", json=TUTORIAL_BODY)
    elapsed_ms = (time.monotonic() - started) * 1000
    assert response.status_code == 201
    record = response.get_json()
    assert response.headers["Location"] == f"/api/images/{record['id']}"
    assert record["prompt"] == TUTORIAL_BODY["prompt"]
    assert record["negative_prompt"] == "blurry, low quality"
    assert (record["provider"], record["model"]) == ("offline", "abstract")
    assert (record["width"], record["height"], record["steps"], record["cfg_scale"]) == (
        1024, 1024, 30, 7.0)
    assert 0 < record["seed"] <= 4294967294
    assert record["requested"]["seed"] == 0
    assert record["ignored"] == [] and record["content_filtered"] is False
    assert re.fullmatch(rf"\d{{8}}_\d{{6}}_{record['id']}\.png", record["filename"])
    assert record["url"] == f"/static/images/{record['filename']}"
    assert record["thumbnail_url"] == f"/static/images/thumbs/{record['id']}.webp"
    assert datetime.fromisoformat(record["created_at"]).utcoffset() == timedelta(0)
    # Rendering and storing 1024x1024 takes a few milliseconds at least, within the request.
    assert record["format"] == "png" and 0 < record["duration_ms"] <= elapsed_ms + 1
    assert files_in(images_dir) == [record["filename"], f"thumbs/{record['id']}.webp"]
    assert (images_dir / record["filename"]).stat().st_size == record["file_size"]


def test_served_image_carries_its_parameters(client):
    record = generate(client, seed=99, negative_prompt="fog").get_json()
    status, mimetype, data = fetch(client, record["url"])
    assert status == 200 and mimetype == "image/png"
    image = PILImage.open(io.BytesIO(data))
    assert image.size == (512, 512)
    assert image.info["parameters"] == (
        "a quiet harbour\nNegative prompt: fog\n"
        "Steps: 30, CFG scale: 7, Seed: 99, Size: 512x512, Model: abstract")
    assert fetch(client, record["thumbnail_url"])[:2] == (200, "image/webp")


def test_same_request_same_bytes_other_seed_other_picture(client):
    first = generate(client, seed=7).get_json()
    second = generate(client, seed=7).get_json()
    third = generate(client, seed=8).get_json()
    data = [fetch(client, r["url"])[2] for r in (first, second, third)]
    assert data[0] == data[1]
    # The PNG text holds the seed, so the bytes always differ: compare the pixels themselves.
    pixels = [PILImage.open(io.BytesIO(d)).convert("RGB").tobytes() for d in data]
    assert pixels[0] == pixels[1]
    assert pixels[0] != pixels[2]


def test_get_and_delete_an_image(client, images_dir):
    record = generate(client).get_json()
    got = client.get(f"/api/images/{record['id']}")
    assert got.status_code == 200 and got.get_json() == record
    deleted = client.delete(f"/api/images/{record['id']}")
    assert deleted.status_code == 204 and deleted.data == b""
    assert files_in(images_dir) == []
    assert client.get(f"/api/images/{record['id']}").status_code == 404
    assert client.get(record["url"]).status_code == 404
    assert client.delete(f"/api/images/{record['id']}").get_json()["error"] == "not_found"


@pytest.mark.parametrize("provider", ["stability", "replicate"])
def test_unconfigured_provider_is_400_and_leaves_nothing(client, images_dir, provider):
    response = generate(client, provider=provider)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "provider_not_configured"
    assert provider in body["detail"]
    assert files_in(images_dir) == []
    assert client.get("/api/images").headers["X-Total-Count"] == "0"


def test_unknown_model_is_422_naming_the_models(client):
    response = generate(client, model="sdxl-turbo")
    assert response.status_code == 422
    [problem] = response.get_json()["detail"]
    assert problem["loc"] == ["body", "model"] and "'abstract'" in problem["msg"]


@pytest.mark.parametrize(
    "path", ["/api/images/123456", "/api/images/abc", "/api/nothing-here", "/api/images/1/x"])
def test_not_found_is_json(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_method_not_allowed_is_json(client):
    response = client.put("/api/generate", json={})
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_body_too_large_is_413(client):
    response = client.post("/api/generate", data=b'{"prompt": "' + b"a" * 2_000_000 + b'"}',
                           content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("prompt=a+cat", "application/x-www-form-urlencoded"), ("a cat", "text/plain"),
     ("{not json", "application/json"), (b"\xff\xfe\x00", "application/json")],
)
def test_body_that_is_not_json_is_415(client, data, content_type, images_dir):
    response = client.post("/api/generate", data=data, content_type=content_type)
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"
    assert files_in(images_dir) == []


BAD_BODIES = [
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   \n\t"}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({"prompt": 42}, "prompt"),
    ({"prompt": ["a"]}, "prompt"),
    ({"prompt": {"text": "a"}}, "prompt"),
    ({"prompt": "x" * 2001}, "prompt"),
    ({"prompt": "a", "negative_prompt": 3}, "negative_prompt"),
    ({"prompt": "a", "negative_prompt": "n" * 1001}, "negative_prompt"),
    ({"prompt": "a", "provider": "dall-e"}, "provider"),
    ({"prompt": "a", "height": None}, "height"),
    ({"prompt": "a", "negative_prompt": None}, "negative_prompt"),
    ({"prompt": "a", "model": None}, "model"),
    ({"prompt": "a", "cfg_scale": None}, "cfg_scale"),
    ({"prompt": "a", "count": None}, "count"),
    ({"prompt": "a", "count": 9}, "count"),
    ({"prompt": "a", "options": None}, "options"),
    ({"prompt": "a", "options": "style_preset=anime"}, "options"),
    ({"prompt": "a", "provider": 1}, "provider"),
    ({"prompt": "a", "model": 12}, "model"),
    ({"prompt": "a", "width": 500}, "width"),
    ({"prompt": "a", "width": 0}, "width"),
    ({"prompt": "a", "width": -1024}, "width"),
    ({"prompt": "a", "width": 4096}, "width"),
    ({"prompt": "a", "width": 1000}, "width"),
    ({"prompt": "a", "width": "1024"}, "width"),
    ({"prompt": "a", "width": 1024.5}, "width"),
    ({"prompt": "a", "width": False}, "width"),
    ({"prompt": "a", "height": 2049}, "height"),
    ({"prompt": "a", "height": [1024]}, "height"),
    ({"prompt": "a", "steps": 0}, "steps"),
    ({"prompt": "a", "steps": 51}, "steps"),
    ({"prompt": "a", "steps": "many"}, "steps"),
    ({"prompt": "a", "steps": 10 ** 30}, "steps"),
    ({"prompt": "a", "cfg_scale": 0}, "cfg_scale"),
    ({"prompt": "a", "cfg_scale": 21}, "cfg_scale"),
    ({"prompt": "a", "cfg_scale": "high"}, "cfg_scale"),
    ({"prompt": "a", "seed": -5}, "seed"),
    ({"prompt": "a", "seed": 4294967295}, "seed"),
    ({"prompt": "a", "seed": 1.5}, "seed"),
    ({"prompt": "a", "seed": "random"}, "seed"),
    ({"prompt": "a", "samples": 4}, "samples"),
    ({"prompt": "a", "style_preset": "anime"}, "style_preset"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_bodies_are_422_in_fastapi_shape(client, images_dir, body, field):
    response = client.post("/api/generate", json=body)
    assert response.status_code == 422
    payload = response.get_json()
    assert payload["error"] == "validation_error"
    assert any(p["loc"] == ["body", field] for p in payload["detail"])
    for problem in payload["detail"]:
        assert set(problem) == {"loc", "msg", "type"}
    assert files_in(images_dir) == []


@pytest.mark.parametrize(
    "raw", [b"[]", b'"a cat"', b"42", b"null", b"", b'{"prompt": "a", "cfg_scale": NaN}',
            b'{"prompt": "a", "cfg_scale": Infinity}'])
def test_odd_json_documents_are_422(client, raw):
    response = client.post("/api/generate", data=raw, content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["error"] == "validation_error"


def _insert(app, count, start=None, provider="offline", same_time_every=1):
    """Records straight into the database (several sharing a timestamp, to test tie-breaks)."""
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    with app.app_context():
        for index in range(count):
            created = start + timedelta(seconds=index // same_time_every)
            db.session.add(Image(
                filename=f"{index}_{provider}.png", prompt=f"picture number {index}",
                negative_prompt="", provider=provider, model="m", seed=index + 1, width=512,
                height=512, steps=30, cfg_scale=7.0, requested={}, ignored=[], format="png",
                file_size=1, duration_ms=1, created_at=created))
        db.session.commit()


def test_cursor_walk_over_120_records_has_no_gaps_or_duplicates(app, client):
    _insert(app, 120, same_time_every=7)
    seen, url, pages = [], "/api/images?limit=25", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["X-Total-Count"] == "120"
        seen += [(r["created_at"], r["id"]) for r in response.get_json()]
        pages += 1
        link = response.headers.get("Link")
        url = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1) if link else None
    assert pages == 5
    assert len(seen) == 120 and len(set(seen)) == 120
    assert seen == sorted(seen, reverse=True)


def test_limit_default_and_range(app, client):
    _insert(app, 60)
    assert len(client.get("/api/images").get_json()) == 50
    assert len(client.get("/api/images?limit=200").get_json()) == 60
    for bad in ("0", "201", "ten", "-1"):
        response = client.get(f"/api/images?limit={bad}")
        assert response.status_code == 422
        assert response.get_json()["detail"][0]["loc"] == ["query", "limit"]


def test_bad_cursor_is_422(client):
    response = client.get("/api/images?before=not-a-cursor!!")
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["query", "before"]


def test_search_and_provider_filter(app, client):
    _insert(app, 3, provider="stability")
    _insert(app, 2, provider="replicate")
    client.post("/api/generate", json={"prompt": "Red fox in SNOW", "width": 512, "height": 512,
                                       "negative_prompt": "city lights"})
    one = client.get("/api/images?q=snow fox")
    assert [r["prompt"] for r in one.get_json()] == ["Red fox in SNOW"]
    assert one.headers["X-Total-Count"] == "1"
    assert client.get("/api/images?q=lights").headers["X-Total-Count"] == "1"
    assert client.get("/api/images?q=fox+whale").get_json() == []
    assert client.get("/api/images?q=100%25").get_json() == []
    only = client.get("/api/images?provider=replicate")
    assert {r["provider"] for r in only.get_json()} == {"replicate"}
    assert only.headers["X-Total-Count"] == "2"
    number = client.get("/api/images?q=number&provider=stability&limit=2")
    assert number.headers["X-Total-Count"] == "3"
    assert "provider=stability" in number.headers["Link"] and "q=number" in number.headers["Link"]
    assert client.get("/api/images?provider=midjourney").status_code == 422


def test_providers_lists_offline_with_label_and_models(client):
    providers = {p["name"]: p for p in client.get("/api/providers").get_json()}
    offline = providers["offline"]
    assert offline["label"] == "Offline renderer (no AI model)"
    assert offline["configured"] is True and offline["default"] is True
    assert offline["default_model"] == "abstract"
    model = offline["models"][0]
    assert model["name"] == "abstract"
    assert set(model["honours"]) == {"negative_prompt", "width", "height", "steps", "cfg_scale",
                                     "seed"}


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "stability_key": False,
                                   "replicate_key": False, "openai_key": False,
                                   "database": "ok", "storage": "ok"}


def test_health_reports_an_images_folder_that_cannot_be_written(make_app, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    response = make_app(IMAGES_DIR=str(blocker / "images")).test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["storage"] == "error"


def test_health_reports_keys_without_their_values(make_app):
    app = make_app(STABILITY_API_KEY="sk-secret-value-123", OPENAI_API_KEY="sk-openai-999")
    response = app.test_client().get("/health")
    body = response.get_json()
    assert body["stability_key"] is True and body["openai_key"] is True
    assert b"secret-value" not in response.data and b"openai-999" not in response.data


def test_unexpected_error_is_json_500_without_traceback(app):
    @app.get("/api/explode")
    def explode():
        raise RuntimeError("internal detail that must not leak")

    response = app.test_client().get("/api/explode")
    assert response.status_code == 500
    assert response.get_json() == {"detail": "Internal server error.", "error": "internal_error"}
