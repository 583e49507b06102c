"""Curating the library through the API: favourites, filters, collections, bulk, export,
import and png-info."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import flask_migrate
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Image
from tests import metadata_samples as samples
from tests.conftest import files_in
from tests.images import bomb_png, png_bytes


def generate(client, prompt="a red fox", **fields):
    body = {"prompt": prompt, "provider": "offline", "width": 512, "height": 512, **fields}
    response = client.post("/api/generate", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def upload(client, data: bytes, name="image.png", route="/api/images"):
    # The body is built here: the test client would spool a large one to a file it never closes.
    boundary = "----imagegen-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return client.post(route, data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


def add_records(app, count, **fields):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with app.app_context():
        for index in range(count):
            db.session.add(Image(
                filename=f"r{index}.png", prompt=f"record {index}", negative_prompt="",
                provider="offline", model=fields.get("model", "abstract"), seed=index + 1,
                width=512, height=512, steps=30, cfg_scale=7.0, requested={}, ignored=[],
                format="png", file_size=1, duration_ms=1,
                created_at=start + timedelta(days=index)))
        db.session.commit()


# --- favourites and record fields ---------------------------------------------------------

def test_generated_record_has_the_new_fields(client, images_dir):
    record = generate(client)
    assert record["favorite"] is False and record["collections"] == []
    assert record["source"] is None
    stored = (images_dir / record["filename"]).read_bytes()
    assert record["sha256"] == hashlib.sha256(stored).hexdigest()


def test_favourite_with_patch(client):
    record = generate(client)
    response = client.patch(f"/api/images/{record['id']}", json={"favorite": True})
    assert response.status_code == 200 and response.get_json()["favorite"] is True
    assert client.get(f"/api/images/{record['id']}").get_json()["favorite"] is True
    assert client.patch(f"/api/images/{record['id']}",
                        json={"favorite": False}).get_json()["favorite"] is False


@pytest.mark.parametrize("body", [{"favorite": "yes"}, {"favorite": None}, {}, {"prompt": "x"},
                                  [True]])
def test_patch_refuses_anything_else(client, body):
    record = generate(client)
    response = client.patch(f"/api/images/{record['id']}", json=body)
    assert response.status_code == 422 and response.get_json()["error"] == "validation_error"


def test_patch_unknown_image(client):
    assert client.patch("/api/images/999", json={"favorite": True}).status_code == 404


# --- filters ----------------------------------------------------------------------------

def test_filters_combine_and_page(app, client):
    add_records(app, 30)
    with app.app_context():
        for image in db.session.scalars(db.select(Image)):
            image.favorite = image.seed % 3 == 0
            image.model = "m-even" if image.seed % 2 == 0 else "m-odd"
        db.session.commit()
    seen, url = [], "/api/images?favorite=true&model=m-even&since=2026-01-07&limit=2"
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["X-Total-Count"] == "4"  # seeds 12, 18, 24, 30 (6 is 6 January)
        seen += [r["seed"] for r in response.get_json()]
        link = response.headers.get("Link")
        url = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1) if link else None
    assert seen == [30, 24, 18, 12]
    response = client.get("/api/images?favorite=false&until=2026-01-03&q=record")
    assert [r["seed"] for r in response.get_json()] == [3, 2, 1][1:]  # seed 3 is a favourite
    response = client.get("/api/images?until=2026-01-02T00:00:00Z")
    assert [r["seed"] for r in response.get_json()] == [2, 1]
    response = client.get("/api/images?since=2026-01-30T00:00:00%2B01:00")  # = 29 Jan 23:00 UTC
    assert [r["seed"] for r in response.get_json()] == [30]


@pytest.mark.parametrize("query", ["favorite=maybe", "since=yesterday", "until=2026-13-01",
                                   "collection=abc", "collection=0", "provider=midjourney",
                                   "since=2026-01-01T25:00"])
def test_bad_filters_are_422(client, query):
    response = client.get(f"/api/images?{query}")
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"][0] == "query"


# --- collections -------------------------------------------------------------------------

def test_collections_lifecycle(client):
    a, b = generate(client, "one"), generate(client, "two")
    response = client.post("/api/collections", json={"name": "Client X", "description": "keep"})
    assert response.status_code == 201
    collection = response.get_json()
    assert response.headers["Location"].endswith(f"/api/collections/{collection['id']}")
    assert collection["image_count"] == 0 and collection["cover_thumbnail_url"] is None
    cid = collection["id"]
    for image in (a, b, b):
        assert client.put(f"/api/collections/{cid}/images/{image['id']}").status_code == 204
    listed = client.get("/api/collections").get_json()
    assert listed[0]["image_count"] == 2
    assert listed[0]["cover_thumbnail_url"] == b["thumbnail_url"]
    assert client.get(f"/api/images/{a['id']}").get_json()["collections"] == [
        {"id": cid, "name": "Client X"}]
    second = client.post("/api/collections", json={"name": "Also"}).get_json()
    client.put(f"/api/collections/{second['id']}/images/{a['id']}")
    names = [c["name"] for c in client.get(f"/api/images/{a['id']}").get_json()["collections"]]
    assert names == ["Also", "Client X"]
    in_collection = client.get(f"/api/images?collection={cid}")
    assert [r["id"] for r in in_collection.get_json()] == [b["id"], a["id"]]
    assert client.delete(f"/api/collections/{cid}/images/{a['id']}").status_code == 204
    assert client.get(f"/api/collections/{cid}").get_json()["image_count"] == 1
    renamed = client.patch(f"/api/collections/{cid}", json={"name": "Client Y"})
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "Client Y"
    assert client.delete(f"/api/collections/{cid}").status_code == 204
    assert client.get(f"/api/collections/{cid}").status_code == 404
    assert client.get(f"/api/images/{b['id']}").status_code == 200  # the image stays
    assert client.get(f"/api/images/{b['id']}").get_json()["collections"] == []


def test_collection_names_are_unique(client):
    assert client.post("/api/collections", json={"name": "Keepers"}).status_code == 201
    for name in ("Keepers", " keepers "):
        response = client.post("/api/collections", json={"name": name})
        assert response.status_code == 409 and response.get_json()["error"] == "conflict"
    other = client.post("/api/collections", json={"name": "Other"}).get_json()
    response = client.patch(f"/api/collections/{other['id']}", json={"name": "KEEPERS"})
    assert response.status_code == 409


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "  "}, {"name": 5},
                                  {"name": "x" * 101}, {"name": "ok", "colour": "red"},
                                  {"name": "ok", "description": ["x"]}])
def test_collection_validation(client, body):
    response = client.post("/api/collections", json=body)
    assert response.status_code == 422 and response.get_json()["error"] == "validation_error"


def test_collection_routes_404(client):
    image = generate(client)
    cid = client.post("/api/collections", json={"name": "c"}).get_json()["id"]
    assert client.put(f"/api/collections/999/images/{image['id']}").status_code == 404
    assert client.put(f"/api/collections/{cid}/images/999").status_code == 404
    assert client.patch("/api/collections/999", json={"name": "x"}).status_code == 404


def test_deleting_an_image_leaves_its_collections(client):
    image = generate(client)
    cid = client.post("/api/collections", json={"name": "c"}).get_json()["id"]
    client.put(f"/api/collections/{cid}/images/{image['id']}")
    assert client.delete(f"/api/images/{image['id']}").status_code == 204
    assert client.get(f"/api/collections/{cid}").get_json()["image_count"] == 0


# --- bulk ----------------------------------------------------------------------------------

def test_bulk_favourite_collection_and_missing(client):
    ids = [generate(client, f"image {i}")["id"] for i in range(3)]
    response = client.post("/api/images/bulk", json={"action": "favorite",
                                                     "ids": [*ids, 9999]})
    assert response.status_code == 200
    assert response.get_json() == {"done": 3, "missing": [9999]}
    assert client.get("/api/images?favorite=true").headers["X-Total-Count"] == "3"
    client.post("/api/images/bulk", json={"action": "unfavorite", "ids": ids[:1]})
    assert client.get("/api/images?favorite=true").headers["X-Total-Count"] == "2"
    cid = client.post("/api/collections", json={"name": "c"}).get_json()["id"]
    response = client.post("/api/images/bulk", json={"action": "add_to_collection", "ids": ids,
                                                     "collection": cid})
    assert response.get_json() == {"done": 3, "missing": []}
    assert client.get(f"/api/collections/{cid}").get_json()["image_count"] == 3
    client.post("/api/images/bulk", json={"action": "remove_from_collection", "ids": ids[:2],
                                          "collection": cid})
    assert client.get(f"/api/collections/{cid}").get_json()["image_count"] == 1


def test_bulk_delete_removes_records_and_files(client, images_dir):
    ids = [generate(client, f"image {i}")["id"] for i in range(3)]
    keep = generate(client, "keep")
    response = client.post("/api/images/bulk", json={"action": "delete", "ids": [*ids, 12345]})
    assert response.get_json() == {"done": 3, "missing": [12345]}
    assert client.get("/api/images").headers["X-Total-Count"] == "1"
    assert files_in(images_dir) == sorted([keep["filename"], f"thumbs/{keep['id']}.webp"])


@pytest.mark.parametrize("body", [
    {"action": "explode", "ids": [1]}, {"action": "delete", "ids": []},
    {"action": "delete", "ids": list(range(1, 1002))}, {"action": "delete", "ids": "1,2"},
    {"action": "delete", "ids": [True]}, {"action": "delete", "ids": [1.5]},
    {"action": "add_to_collection", "ids": [1]}, {"action": "favorite", "ids": [1], "x": 1},
    {"action": "delete", "ids": [0]}])
def test_bulk_validation(client, body):
    response = client.post("/api/images/bulk", json=body)
    assert response.status_code == 422 and response.get_json()["error"] == "validation_error"


def test_bulk_accepts_a_thousand_ids(client):
    image = generate(client)
    response = client.post("/api/images/bulk", json={
        "action": "favorite", "ids": [image["id"], *range(10_000, 10_999)]})
    assert response.status_code == 200 and response.get_json()["done"] == 1
    assert len(response.get_json()["missing"]) == 999


def test_bulk_unknown_collection(client):
    image = generate(client)
    response = client.post("/api/images/bulk", json={"action": "add_to_collection",
                                                     "ids": [image["id"]], "collection": 77})
    assert response.status_code == 404


# --- export --------------------------------------------------------------------------------

def read_zip(response) -> zipfile.ZipFile:
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    return zipfile.ZipFile(io.BytesIO(response.get_data()))


def test_export_by_ids_and_by_filter(client, images_dir):
    records = [generate(client, f"image {i}") for i in range(3)]
    client.patch(f"/api/images/{records[1]['id']}", json={"favorite": True})
    archive = read_zip(client.get(f"/api/images/export?ids={records[0]['id']},{records[2]['id']}"))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(
        [records[0]["filename"], records[2]["filename"], "metadata.jsonl"])
    assert archive.read(records[0]["filename"]) == (images_dir / records[0]["filename"]).read_bytes()
    lines = [json.loads(line) for line in archive.read("metadata.jsonl").splitlines()]
    assert {line["id"] for line in lines} == {records[0]["id"], records[2]["id"]}
    assert all(line["file_included"] for line in lines)
    archive = read_zip(client.get("/api/images/export?favorite=true"))
    assert archive.namelist() == [records[1]["filename"], "metadata.jsonl"]


def test_export_reports_a_missing_file(client, images_dir):
    record = generate(client)
    (images_dir / record["filename"]).unlink()
    archive = read_zip(client.get(f"/api/images/export?ids={record['id']}"))
    assert archive.namelist() == ["metadata.jsonl"]
    assert json.loads(archive.read("metadata.jsonl"))["file_included"] is False


@pytest.mark.parametrize("query", ["ids=a,b", "ids=", "ids=0", "since=nope"])
def test_export_validation(client, query):
    assert client.get(f"/api/images/export?{query}").status_code == 422


# --- import ----------------------------------------------------------------------------------

def test_import_a1111_png_as_is(client, images_dir):
    data = samples.a1111_png()
    response = upload(client, data)
    assert response.status_code == 201
    record = response.get_json()
    assert response.headers["Location"].endswith(f"/api/images/{record['id']}")
    assert record["provider"] == "imported" and record["source"] == "a1111"
    assert record["prompt"].startswith("a lighthouse in a storm")
    assert (record["seed"], record["steps"], record["cfg_scale"]) == (1234567890, 28, 6.5)
    assert record["model"] == "sd_xl_base_1.0"
    assert (record["width"], record["height"]) == (8, 8)  # the stored image's real size
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert (images_dir / record["filename"]).read_bytes() == data  # byte for byte
    assert (images_dir / "thumbs" / f"{record['id']}.webp").exists()
    assert client.get("/api/images?q=lighthouse&provider=imported").get_json()[0]["id"] == \
        record["id"]
    again = upload(client, data, "copy.png")
    assert again.status_code == 200 and again.get_json()["id"] == record["id"]
    assert client.get("/api/images").headers["X-Total-Count"] == "1"


@pytest.mark.parametrize("name, source", [("a1111.webp", "a1111"),
                                          ("comfyui_custom_advanced.png", "comfyui"),
                                          ("invokeai4.png", "invokeai")])
def test_import_each_format(client, name, source):
    record = upload(client, samples.sample(name), name).get_json()
    assert record["source"] == source and record["prompt"]
    assert record["format"] == ("webp" if name.endswith(".webp") else "png")


def test_import_an_image_this_app_generated_elsewhere(make_app):
    source, target = make_app(), make_app().test_client()
    made = generate(source.test_client(), "a quiet harbour", seed=4242, steps=12,
                    negative_prompt="people")
    data = (Path(source.config["IMAGES_DIR"]) / made["filename"]).read_bytes()
    response = upload(target, data, made["filename"])
    assert response.status_code == 201
    record = response.get_json()
    assert (record["provider"], record["source"]) == ("imported", "imagegen")
    assert (record["prompt"], record["negative_prompt"]) == ("a quiet harbour", "people")
    assert (record["seed"], record["steps"], record["model"]) == (4242, 12, made["model"])
    assert record["sha256"] == made["sha256"]


def test_import_without_metadata(client):
    record = upload(client, png_bytes(), "plain.png").get_json()
    assert record["source"] == "none" and record["prompt"] == ""
    assert record["seed"] is None and record["steps"] is None and record["cfg_scale"] is None


@pytest.mark.parametrize("data", [b"not an image at all", png_bytes()[:-30], bomb_png(),
                                  b"GIF89a" + b"\0" * 40,
                                  samples.png_with_text({"parameters": "x" * (10 << 20)})])
def test_import_refuses_and_stores_nothing(app, client, images_dir, data):
    response = upload(client, data)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_error" and body["detail"][0]["loc"] == ["body", "file"]
    assert files_in(images_dir) == []
    assert client.get("/api/images").headers["X-Total-Count"] == "0"


def test_import_needs_a_multipart_file(client):
    assert client.post("/api/images", json={"file": "x"}).status_code == 422
    response = client.post("/api/images", data={"other": "x"}, content_type="multipart/form-data")
    assert response.status_code == 422


def test_import_over_the_size_limit_is_413(client):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (51 * 1024 * 1024)
    response = upload(client, big)
    assert response.status_code == 413 and response.get_json()["error"] == "payload_too_large"


# --- png-info -------------------------------------------------------------------------------

def test_png_info_multipart_and_base64(client, images_dir):
    data = samples.a1111_png()
    body = upload(client, data, route="/api/png-info").get_json()
    assert body["format"] == "a1111" and body["text"] == samples.A1111_TEXT
    assert body["parameters"]["seed"] == 1234567890
    as_json = client.post("/api/png-info", json={"image": base64.b64encode(data).decode()})
    assert as_json.status_code == 200 and as_json.get_json()["parameters"] == body["parameters"]
    data_url = "data:image/png;base64," + base64.b64encode(data).decode()
    assert client.post("/api/png-info", json={"image": data_url}).status_code == 200
    assert files_in(images_dir) == []


def test_png_info_of_a_generated_image(client, images_dir):
    record = generate(client, "a quiet harbour", seed=4242, negative_prompt="people")
    body = upload(client, (images_dir / record["filename"]).read_bytes(),
                  route="/api/png-info").get_json()
    assert body["format"] == "imagegen" and "warnings" not in body
    assert body["parameters"]["prompt"] == "a quiet harbour"
    assert body["parameters"]["negative_prompt"] == "people"
    assert body["parameters"]["seed"] == 4242
    assert (body["parameters"]["provider"], body["parameters"]["model"]) == \
        ("offline", record["model"])
    assert body["parameters"]["requested"] == record["requested"]


@pytest.mark.parametrize("kwargs", [
    {"json": {"image": "!!!"}}, {"json": {"image": base64.b64encode(b"plain text").decode()}},
    {"json": {"picture": "x"}}, {"json": {"image": 5}},
    {"data": {"file": (b"<html>", "x.png")}, "content_type": "multipart/form-data"},
])
def test_png_info_refuses_what_is_not_an_image(client, kwargs):
    if "data" in kwargs:  # a fresh stream for each run (the client closes the one it sends)
        data, name = kwargs["data"]["file"]
        kwargs = {**kwargs, "data": {"file": (io.BytesIO(data), name)}}
    response = client.post("/api/png-info", **kwargs)
    assert response.status_code == 422 and response.get_json()["error"] == "validation_error"


def test_png_info_huge_metadata_is_a_clear_422(client):
    response = upload(client, samples.png_with_text({"parameters": "x" * (10 << 20)}),
                      route="/api/png-info")
    assert response.status_code == 422
    assert "MB of metadata" in response.get_json()["detail"][0]["msg"]


def test_png_info_html_is_data(client):
    text = '<script>alert(1)</script>\nSteps: 20, Seed: 5, Size: 8x8'
    body = upload(client, samples.png_with_text({"parameters": text}),
                  route="/api/png-info")
    assert body.mimetype == "application/json"
    assert body.get_json()["parameters"]["prompt"] == "<script>alert(1)</script>"


# --- tokens ---------------------------------------------------------------------------------

def test_new_routes_need_the_token(make_app):
    client = make_app(API_TOKENS=["secret"]).test_client()
    for method, path in (("patch", "/api/images/1"), ("post", "/api/images"),
                         ("post", "/api/images/bulk"), ("get", "/api/images/export"),
                         ("get", "/api/collections"), ("post", "/api/png-info")):
        assert getattr(client, method)(path).status_code == 401, path
    response = client.get("/api/collections", headers={"Authorization": "Bearer secret"})
    assert response.status_code == 200


# --- migration 0005 ---------------------------------------------------------------------------

def test_migration_fills_sha256_of_the_stored_files(app, client, images_dir, capsys):
    kept, lost = generate(client, "kept"), generate(client, "lost")
    (images_dir / lost["filename"]).unlink()
    with app.app_context():
        flask_migrate.downgrade(revision="0006")
        db.session.commit()
        flask_migrate.upgrade()
        db.session.remove()
        digests = dict(db.session.execute(sa.select(Image.id, Image.sha256)).all())
    assert digests == {kept["id"]: kept["sha256"], lost["id"]: None}
    assert f"1 of 2 records have no readable file; their sha256 stays null (ids {lost['id']})" \
        in capsys.readouterr().out
    assert [r["id"] for r in client.get("/api/images?q=kept").get_json()] == [kept["id"]]
