"""The library on an S3-compatible bucket (a real SeaweedFS): import, zip export, bulk delete
and the SHA-256 backfill of migration 0005 read and remove objects there, not on a disk."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import flask_migrate
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Image
from tests import metadata_samples as samples
from tests.s3server import Relay
from tests.test_library import generate, upload

PREFIX = "imagegen/"


@pytest.fixture
def s3_app(make_app, s3_server, s3_bucket):
    return make_app(**s3_server.settings(s3_bucket))


def object_keys(*records: dict) -> list[str]:
    return sorted(key for r in records
                  for key in (PREFIX + r["filename"], f"{PREFIX}thumbs/{r['id']}.webp"))


def read_object(s3_server, bucket: str, key: str) -> bytes:
    return s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def test_import_stores_the_file_as_is_in_the_bucket(s3_app, s3_server, s3_bucket):
    client = s3_app.test_client()
    data = samples.a1111_png()
    response = upload(client, data)
    assert response.status_code == 201
    record = response.get_json()
    assert (record["source"], record["seed"]) == ("a1111", 1234567890)
    assert s3_server.keys(s3_bucket) == object_keys(record)
    assert read_object(s3_server, s3_bucket, PREFIX + record["filename"]) == data
    assert record["url"].startswith(f"{s3_server.endpoint}/{s3_bucket}/{PREFIX}")
    again = upload(client, data, "copy.png")
    assert again.status_code == 200 and again.get_json()["id"] == record["id"]
    refused = upload(client, b"not an image at all")
    assert refused.status_code == 422
    assert s3_server.keys(s3_bucket) == object_keys(record)  # nothing more was written


def test_import_into_an_unreachable_bucket_is_503_leaving_nothing(make_app, s3_server,
                                                                  s3_bucket):
    relay = Relay(int(s3_server.endpoint.rsplit(":", 1)[1]))  # never started: nothing listens
    app = make_app(**s3_server.settings(s3_bucket, S3_ENDPOINT_URL=relay.url))
    client = app.test_client()
    response = upload(client, samples.a1111_png())
    assert response.status_code == 503 and response.get_json()["error"] == "storage_error"
    assert client.get("/api/images").headers["X-Total-Count"] == "0"
    assert s3_server.keys(s3_bucket) == []


def test_export_streams_the_objects(s3_app, s3_server, s3_bucket):
    client = s3_app.test_client()
    records = [generate(client, f"image {i}") for i in range(3)]
    gone = records[2]
    s3_server.client().delete_object(Bucket=s3_bucket, Key=PREFIX + gone["filename"])
    response = client.get("/api/images/export?ids=" + ",".join(str(r["id"]) for r in records))
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(
        [records[0]["filename"], records[1]["filename"], "metadata.jsonl"])
    for record in records[:2]:
        stored = read_object(s3_server, s3_bucket, PREFIX + record["filename"])
        assert archive.read(record["filename"]) == stored
        assert hashlib.sha256(stored).hexdigest() == record["sha256"]
    lines = {line["id"]: line for line in map(json.loads,
                                             archive.read("metadata.jsonl").splitlines())}
    assert [lines[r["id"]]["file_included"] for r in records] == [True, True, False]


def test_bulk_delete_removes_the_objects(s3_app, s3_server, s3_bucket):
    client = s3_app.test_client()
    ids = [generate(client, f"image {i}")["id"] for i in range(3)]
    keep = generate(client, "keep")
    response = client.post("/api/images/bulk", json={"action": "delete", "ids": [*ids, 12345]})
    assert response.get_json() == {"done": 3, "missing": [12345]}
    assert client.get("/api/images").headers["X-Total-Count"] == "1"
    assert s3_server.keys(s3_bucket) == object_keys(keep)


def test_bulk_delete_with_the_bucket_gone_reports_the_objects_left(make_app, s3_server,
                                                                   s3_bucket):
    relay = Relay(int(s3_server.endpoint.rsplit(":", 1)[1])).start()
    try:
        app = make_app(**s3_server.settings(s3_bucket, S3_ENDPOINT_URL=relay.url))
        client = app.test_client()
        record = generate(client)
        relay.stop()
        response = client.post("/api/images/bulk", json={"action": "delete",
                                                         "ids": [record["id"]]})
    finally:
        relay.stop()
    assert response.status_code == 200
    body = response.get_json()
    assert body["done"] == 1 and [f["id"] for f in body["failed"]] == [record["id"]]
    assert body["failed"][0]["detail"].startswith("record deleted, file left")
    assert client.get("/api/images").headers["X-Total-Count"] == "0"
    # What stays is what `flask images verify` reports.
    assert s3_server.keys(s3_bucket) == object_keys(record)


def test_migration_fills_sha256_from_the_bucket(s3_app, s3_server, s3_bucket, capsys):
    client = s3_app.test_client()
    kept, lost = generate(client, "kept"), generate(client, "lost")
    s3_server.client().delete_object(Bucket=s3_bucket, Key=PREFIX + lost["filename"])
    with s3_app.app_context():
        flask_migrate.downgrade(revision="0006")
        db.session.commit()
        flask_migrate.upgrade()
        db.session.remove()
        digests = dict(db.session.execute(sa.select(Image.id, Image.sha256)).all())
    assert digests == {kept["id"]: kept["sha256"], lost["id"]: None}
    assert "1 of 2 records have no readable file" in capsys.readouterr().out
