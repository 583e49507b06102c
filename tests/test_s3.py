"""The whole app with its images in an S3-compatible bucket (a real SeaweedFS): generation, URLs,
pages, deletion, verify, and a bucket that refuses writes or goes away and comes back."""

import html
import io
import json
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from app.extensions import db
from app.models import Image
from tests.conftest import files_in
from tests.s3server import PUBLIC_BUCKET, SECRET_KEY, Relay
from tests.test_web import form_data

CACHE_CONTROL = "public, max-age=31536000, immutable"


@pytest.fixture
def s3_app(make_app, s3_server, s3_bucket, fake_stability):
    return make_app(**s3_server.settings(s3_bucket), STABILITY_API_KEY=fake_stability.api_key,
                    STABILITY_BASE_URL=fake_stability.url)


def generate(client, prompt="a lighthouse on a cliff", **fields):
    return client.post("/api/generate", json={"prompt": prompt, "provider": "offline",
                                              "width": 512, "height": 512, **fields})


def fetch(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers["Content-Type"], response.read()


def records(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Image))


def object_keys(record: dict) -> list[str]:
    return sorted([f"imagegen/{record['filename']}", f"imagegen/thumbs/{record['id']}.webp"])


def test_generation_writes_both_objects_and_answers_presigned_urls(s3_app, s3_server, s3_bucket):
    response = generate(s3_app.test_client())
    assert response.status_code == 201
    record = response.get_json()
    assert s3_server.keys(s3_bucket) == object_keys(record)
    image = s3_server.head(s3_bucket, f"imagegen/{record['filename']}")
    thumb = s3_server.head(s3_bucket, f"imagegen/thumbs/{record['id']}.webp")
    assert (image["ContentType"], thumb["ContentType"]) == ("image/png", "image/webp")
    assert image["CacheControl"] == thumb["CacheControl"] == CACHE_CONTROL
    assert image["ContentLength"] == record["file_size"]

    assert record["url"].startswith(
        f"{s3_server.endpoint}/{s3_bucket}/imagegen/{record['filename']}?")
    assert "X-Amz-Signature=" in record["url"]
    content_type, data = fetch(record["url"])
    assert content_type == "image/png"
    stored = PILImage.open(io.BytesIO(data))
    assert stored.size == (512, 512) and "Seed: " in stored.info["parameters"]
    content_type, thumb_data = fetch(record["thumbnail_url"])
    assert content_type == "image/webp" and PILImage.open(io.BytesIO(thumb_data)).format == "WEBP"
    # Nothing lands on the node's own disk.
    assert files_in(Path(s3_app.config["IMAGES_DIR"])) == []


def test_images_base_url_makes_record_urls(make_app, s3_server, s3_bucket):
    app = make_app(**s3_server.settings(s3_bucket), IMAGES_BASE_URL="https://img.example.org/lib")
    response = generate(app.test_client())
    record = response.get_json()
    assert record["url"] == f"https://img.example.org/lib/{record['filename']}"
    assert record["thumbnail_url"] == f"https://img.example.org/lib/thumbs/{record['id']}.webp"
    assert "img-src 'self' data: blob: https://img.example.org;" in \
        response.headers["Content-Security-Policy"]
    assert s3_server.keys(s3_bucket) == object_keys(record)


def test_pages_show_images_from_the_bucket(s3_app, s3_server):
    client = s3_app.test_client()
    record = generate(client).get_json()
    gallery = client.get("/images")
    page = html.unescape(gallery.get_data(as_text=True))
    thumb = next(part.split('"')[0] for part in page.split('src="')[1:]
                 if f"/thumbs/{record['id']}.webp" in part)
    assert thumb.startswith(s3_server.endpoint)
    assert fetch(thumb)[0] == "image/webp"
    assert f"img-src 'self' data: blob: {s3_server.endpoint};" in \
        gallery.headers["Content-Security-Policy"]
    detail = html.unescape(client.get(f"/images/{record['id']}").get_data(as_text=True))
    full = next(part.split('"')[0] for part in detail.split('href="')[1:]
                if record["filename"] in part)
    assert fetch(full)[0] == "image/png"


def test_web_form_generation_goes_to_the_bucket(make_app, s3_server, s3_bucket):
    app = make_app(**s3_server.settings(s3_bucket))
    client = app.test_client()
    response = client.post("/", data=form_data(client))
    assert response.status_code == 303
    assert len(s3_server.keys(s3_bucket)) == 2


def test_delete_removes_both_objects(s3_app, s3_server, s3_bucket):
    client = s3_app.test_client()
    kept, gone = generate(client).get_json(), generate(client).get_json()
    assert client.delete(f"/api/images/{gone['id']}").status_code == 204
    assert s3_server.keys(s3_bucket) == object_keys(kept)
    runner = s3_app.test_cli_runner()
    assert runner.invoke(args=["images", "delete", str(kept["id"])]).exit_code == 0
    assert s3_server.keys(s3_bucket) == []


@pytest.mark.parametrize("fault,status", [("500", 502), ("garbage", 502), ("truncated", 502),
                                          ("429", 429)])
def test_failed_generation_leaves_no_object(s3_app, s3_server, s3_bucket, fault, status):
    response = generate(s3_app.test_client(), prompt=f"a cat [fault:{fault}]",
                        provider="stability")
    assert response.status_code == status
    assert s3_server.keys(s3_bucket) == [] and records(s3_app) == 0


def test_failed_commit_leaves_no_object(s3_app, s3_server, s3_bucket, monkeypatch):
    def fail():
        raise sa.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

    client = s3_app.test_client()
    with s3_app.app_context():
        monkeypatch.setattr(db.session, "commit", fail)
        response = generate(client)
        assert response.status_code == 503  # the database failing is a database_unavailable
        assert response.get_json()["error"] == "database_unavailable"
    monkeypatch.undo()
    assert s3_server.keys(s3_bucket) == [] and records(s3_app) == 0


def test_verify_reports_and_fixes_on_the_bucket(s3_app, s3_server, s3_bucket):
    client, runner = s3_app.test_client(), s3_app.test_cli_runner()
    kept, lost = generate(client).get_json(), generate(client).get_json()
    clean = runner.invoke(args=["images", "verify"])
    assert clean.exit_code == 0 and "OK: 2 records" in clean.stdout
    bucket = s3_server.client()
    bucket.delete_object(Bucket=s3_bucket, Key=f"imagegen/{lost['filename']}")
    bucket.put_object(Bucket=s3_bucket, Key="imagegen/20200101_000000_999.png", Body=b"stray")
    bucket.put_object(Bucket=s3_bucket, Key="imagegen/thumbs/999.webp", Body=b"stray")
    bucket.put_object(Bucket=s3_bucket, Key="elsewhere/not-ours.png", Body=b"other")
    report = runner.invoke(args=["images", "verify"])
    assert report.exit_code == 1
    assert f"missing file: record {lost['id']} -> {lost['filename']}" in report.stdout
    assert "orphan file: 20200101_000000_999.png" in report.stdout
    assert "orphan thumbnail: thumbs/999.webp" in report.stdout
    assert "not-ours" not in report.stdout
    fixed = runner.invoke(args=["images", "verify", "--fix"])
    assert fixed.exit_code == 0 and "Fixed 3 problem(s)" in fixed.stdout
    assert s3_server.keys(s3_bucket) == sorted(object_keys(kept) + ["elsewhere/not-ours.png"])
    assert records(s3_app) == 1
    assert runner.invoke(args=["images", "verify"]).exit_code == 0


def test_health_reports_the_bucket(make_app, s3_server, s3_bucket):
    ok = make_app(**s3_server.settings(s3_bucket)).test_client().get("/health")
    assert ok.status_code == 200 and ok.get_json()["storage"] == "ok"
    missing = make_app(**s3_server.settings("no-such-bucket-here")).test_client().get("/health")
    assert missing.status_code == 503
    assert missing.get_json()["storage"] == "error" and missing.get_json()["status"] == "degraded"


def assert_refused(response, *secrets):
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "storage_error" and "Image storage" in body["detail"]
    for secret in secrets:
        assert secret not in response.get_data(as_text=True)


def test_bucket_refusing_writes_is_a_clear_503_leaving_nothing(make_app, s3_server, s3_bucket,
                                                              caplog):
    wrong = "wrong-secret-7d1c"
    app = make_app(**s3_server.settings(s3_bucket, AWS_SECRET_ACCESS_KEY=wrong))
    client = app.test_client()
    assert_refused(generate(client), wrong, SECRET_KEY)
    form = client.post("/", data=form_data(client))
    assert form.status_code == 503 and "The image could not be stored" in form.get_data(True)
    cli = app.test_cli_runner().invoke(args=["generate", "a fox", "--width", "512",
                                             "--height", "512"])
    assert cli.exit_code == 1 and "storage_error" in cli.stderr
    assert s3_server.keys(s3_bucket) == [] and records(app) == 0
    for shown in (caplog.text, form.get_data(True), cli.output):
        assert wrong not in shown and SECRET_KEY not in shown


def test_missing_bucket_is_a_clear_503(make_app, s3_server):
    app = make_app(**s3_server.settings("no-such-bucket-here"))
    assert_refused(generate(app.test_client()), SECRET_KEY)
    assert records(app) == 0


def test_the_app_recovers_when_the_server_comes_back(make_app, s3_server, s3_bucket):
    relay = Relay(int(s3_server.endpoint.rsplit(":", 1)[1])).start()
    try:
        app = make_app(**s3_server.settings(s3_bucket, S3_ENDPOINT_URL=relay.url))
        client = app.test_client()
        first = generate(client)
        assert first.status_code == 201
        relay.stop()
        assert_refused(generate(client), SECRET_KEY)
        health = client.get("/health")
        assert health.status_code == 503 and health.get_json()["storage"] == "error"
        # Reading the library does not need the bucket.
        listed = client.get("/api/images")
        assert listed.status_code == 200 and len(listed.get_json()) == 1
        relay.start()
        again = generate(client)
        assert again.status_code == 201
        assert client.get("/health").get_json()["storage"] == "ok"
    finally:
        relay.stop()
    assert s3_server.keys(s3_bucket) == sorted(object_keys(first.get_json())
                                               + object_keys(again.get_json()))
    assert records(app) == 2
    assert json.loads(app.test_cli_runner().invoke(
        args=["images", "show", str(again.get_json()["id"])]).stdout)["id"] == again.get_json()["id"]


NGINX_S3_SITE = Path(__file__).resolve().parent.parent / "deploy" / "nginx-s3.conf"


@pytest.mark.deploy
def test_nginx_serves_the_bucket_with_a_cache(make_app, s3_server, tmp_path):
    from tests.deploy import Nginx, free_port, render_site, self_signed_certificate

    port, prefix = free_port(), f"p{uuid.uuid4().hex[:8]}"
    cert, _ = self_signed_certificate(tmp_path / "images-tls")
    site = render_site(NGINX_S3_SITE.read_text(), {
        "listen 443 ssl;": f"listen 127.0.0.1:{port} ssl;",
        "/etc/letsencrypt/live/images.imagegen.example.org/": f"{cert.parent}/",
        "/var/cache/nginx/imagegen-images": str(tmp_path / "cache"),
        "s3.internal:8333": s3_server.endpoint.removeprefix("http://"),
        "/imagegen-images/imagegen/": f"/{PUBLIC_BUCKET}/{prefix}/",
    })
    base = f"https://127.0.0.1:{port}/"
    app = make_app(**s3_server.settings(PUBLIC_BUCKET, prefix=prefix), IMAGES_BASE_URL=base)
    record = generate(app.test_client()).get_json()
    assert record["url"] == base + record["filename"]

    with Nginx(tmp_path / "nginx", "127.0.0.1:9", tmp_path / "unused",
               sites={"imagegen-images": site}) as nginx:
        session = nginx.session()
        session.verify = str(cert)
        first = session.get(record["url"], timeout=10)
        assert first.status_code == 200 and first.headers["Content-Type"] == "image/png"
        assert first.headers["Cache-Control"] == CACHE_CONTROL
        assert first.headers["X-Cache-Status"] == "MISS"
        assert first.content == s3_server.client().get_object(
            Bucket=PUBLIC_BUCKET, Key=f"{prefix}/{record['filename']}")["Body"].read()
        thumb = session.get(record["thumbnail_url"], timeout=10)
        assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
        # Kept by nginx: served again without asking the bucket.
        s3_server.client().delete_object(Bucket=PUBLIC_BUCKET, Key=f"{prefix}/{record['filename']}")
        again = session.get(record["url"], timeout=10)
        assert again.headers["X-Cache-Status"] == "HIT" and again.content == first.content
        assert "x-amz-request-id" not in {name.lower() for name in again.headers}
        for path in ("", "?list-type=2", "thumbs/", "../ready", "ready"):
            assert session.get(base + path, timeout=10).status_code == 404, path
        assert session.put(record["url"], data=b"x", timeout=10).status_code == 403
