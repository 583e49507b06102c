"""The image store on both backends: validation, atomic writes, thumbnails, embedded parameters,
listing, streaming, URLs and deletion. Every test taking `store` runs on local disk and on a real
S3 server (SeaweedFS)."""

import hashlib
import io
import os
import urllib.request

import pytest
from PIL import Image

from app.storage import (
    ImageStore,
    InvalidImage,
    LocalBackend,
    StorageError,
    a1111_parameters,
    open_image,
    store_from_config,
    with_png_text,
)
from tests.conftest import files_in
from tests.images import bomb_png, jpeg_bytes, png_bytes
from tests.s3server import SECRET_KEY

DESCRIPTION = dict(prompt="a red fox", negative_prompt="blurry", steps=30, cfg_scale=7.5,
                   seed=1234, model="abstract")


class Where:
    """A store and a way to see everything it wrote, looking past the store's own code."""

    def __init__(self, kind, store, everything, read):
        self.kind, self.store, self.everything, self.read = kind, store, everything, read


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    if request.param == "local":
        root = tmp_path / "images"
        return Where("local", ImageStore(LocalBackend(root)), lambda: files_in(root),
                     lambda key: (root / key).read_bytes())
    server = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    store = store_from_config(server.settings(bucket, prefix="lib"))

    def everything():
        return [key.removeprefix("lib/") for key in server.keys(bucket)]

    def read(key):
        return server.client().get_object(Bucket=bucket, Key="lib/" + key)["Body"].read()

    return Where("s3", store, everything, read)


def _idat(data: bytes) -> bytes:
    """The concatenated IDAT payloads: the compressed pixel data."""
    out, offset = b"", 8
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        if data[offset + 4:offset + 8] == b"IDAT":
            out += data[offset + 8:offset + 8 + length]
        offset += length + 12
    return out


def test_stage_and_place_write_image_and_thumbnail(where):
    staged = where.store.stage(png_bytes(640, 480), DESCRIPTION)
    assert (staged.format, staged.width, staged.height) == ("png", 640, 480)
    name = staged.place("20260101_120000_7", 7)
    assert name == "20260101_120000_7.png"
    assert where.everything() == ["20260101_120000_7.png", "thumbs/7.webp"]
    with Image.open(io.BytesIO(where.read("thumbs/7.webp"))) as thumb:
        assert thumb.format == "WEBP" and thumb.size == (384, 288)
    stored = where.read(name)
    assert len(stored) == staged.file_size
    assert hashlib.sha256(stored).hexdigest() == staged.sha256


def test_open_streams_the_stored_image(where):
    staged = where.store.stage(jpeg_bytes(300, 200), DESCRIPTION)
    name = staged.place("x_8", 8)
    with where.store.open(name) as stream:
        first = stream.read(100)
        rest = stream.read()
    assert first + rest == where.read(name)
    with pytest.raises(FileNotFoundError):
        where.store.open("20200101_000000_404.png")


def test_png_carries_a1111_parameters_and_keeps_its_pixel_data(where):
    original = png_bytes(320, 200)
    where.store.stage(original, DESCRIPTION).place("x_1", 1)
    stored = where.read("x_1.png")
    assert _idat(stored) == _idat(original)
    text = Image.open(io.BytesIO(stored)).info["parameters"]
    assert text == ("a red fox\nNegative prompt: blurry\n"
                    "Steps: 30, CFG scale: 7.5, Seed: 1234, Size: 320x200, Model: abstract")


def test_without_a_description_the_bytes_are_kept_exactly(where):
    original = with_png_text(png_bytes(256, 256), "parameters", "another tool's text")
    staged = where.store.stage(original, None)
    staged.place("x_9", 9)
    assert where.read("x_9.png") == original
    assert staged.sha256 == hashlib.sha256(original).hexdigest()


def test_jpeg_is_kept_as_it_came(where):
    data = jpeg_bytes(300, 300)
    where.store.stage(data, DESCRIPTION).place("x_2", 2)
    assert where.read("x_2.jpg") == data


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", png_bytes(300, 300)[:400], bomb_png(),
     b"GIF89a" + b"\0" * 100],
    ids=["empty", "garbage", "truncated", "bomb", "gif-header"],
)
def test_refuses_what_is_not_a_complete_image_and_leaves_nothing(where, data):
    with pytest.raises(InvalidImage):
        where.store.stage(data, DESCRIPTION)
    assert where.everything() == []


def test_refuses_other_formats():
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buffer, "GIF")
    with pytest.raises(InvalidImage, match="unsupported"):
        open_image(buffer.getvalue())


def test_parameters_chunk_replaces_an_old_one_and_handles_unicode():
    first = with_png_text(png_bytes(), "parameters", "old")
    second = with_png_text(first, "parameters", "ein Fuchs im Schnee ❄")
    image = Image.open(io.BytesIO(second))
    assert image.info["parameters"] == "ein Fuchs im Schnee ❄"
    assert second.count(b"parameters") == 1


def test_discard_removes_temporary_and_final_files(where):
    staged = where.store.stage(png_bytes(), DESCRIPTION)
    staged.discard()
    assert where.everything() == []
    staged = where.store.stage(png_bytes(), DESCRIPTION)
    staged.place("x_3", 3)
    assert where.everything() == ["thumbs/3.webp", "x_3.png"]
    staged.discard(3)
    assert where.everything() == []


def test_files_thumbnails_and_delete(where):
    where.store.stage(png_bytes(), DESCRIPTION).place("x_4", 4)
    where.store.stage(png_bytes(), DESCRIPTION).place("x_5", 5)
    assert where.store.files() == ["x_4.png", "x_5.png"]
    assert where.store.thumbnails() == ["thumbs/4.webp", "thumbs/5.webp"]
    where.store.delete("x_4.png", 4)
    assert where.everything() == ["thumbs/5.webp", "x_5.png"]
    where.store.delete("x_4.png", 4)  # deleting again is no error


def test_base_url_makes_every_url(where):
    store = ImageStore(where.store.backend, base_url="https://cdn.example.org/images")
    assert store.url("x_6.png") == "https://cdn.example.org/images/x_6.png"
    assert store.thumbnail_url(6) == "https://cdn.example.org/images/thumbs/6.webp"
    assert store.origin == "https://cdn.example.org"


def test_the_backend_can_be_reached(where):
    where.store.check()


def test_local_leftovers_of_killed_writes_are_found(tmp_path):
    store = ImageStore(LocalBackend(tmp_path))
    store.stage(png_bytes(), DESCRIPTION).place("x_4", 4)
    leftover = store.stage(png_bytes(), DESCRIPTION).image.temp
    fresh = store.stage(png_bytes(), DESCRIPTION).image.temp
    os.utime(leftover, (0, 0))
    assert store.files() == ["x_4.png"]
    assert store.leftovers() == [leftover.name]  # not the write still in progress
    assert fresh.exists()


def test_local_urls_are_the_static_path(tmp_path):
    store = ImageStore(LocalBackend(tmp_path))
    assert store.url("x_1.png") == "/static/images/x_1.png"
    assert store.thumbnail_url(1) == "/static/images/thumbs/1.webp"
    assert store.origin is None


@pytest.mark.parametrize("key", ["../config.py", "/etc/passwd", "a//b", "thumbs/../../x", ""])
def test_local_keys_cannot_leave_the_folder(tmp_path, key):
    with pytest.raises(ValueError):
        LocalBackend(tmp_path).open(key)


def test_local_folder_that_cannot_be_written_is_a_storage_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = ImageStore(LocalBackend(blocker / "images"))
    with pytest.raises(StorageError):
        store.check()
    with pytest.raises(StorageError, match="images folder refused the write"):
        store.stage(png_bytes(), DESCRIPTION)


def test_s3_objects_carry_content_type_and_cache_control(s3_server, s3_bucket):
    store = store_from_config(s3_server.settings(s3_bucket, prefix="lib"))
    store.stage(png_bytes(), DESCRIPTION).place("x_1", 1)
    image = s3_server.head(s3_bucket, "lib/x_1.png")
    thumb = s3_server.head(s3_bucket, "lib/thumbs/1.webp")
    assert (image["ContentType"], thumb["ContentType"]) == ("image/png", "image/webp")
    for head in (image, thumb):
        assert head["CacheControl"] == "public, max-age=31536000, immutable"


def test_s3_urls_are_presigned_and_fetch_the_bytes(s3_server, s3_bucket):
    store = store_from_config(s3_server.settings(s3_bucket, prefix="lib"))
    store.stage(png_bytes(), DESCRIPTION).place("x_2", 2)
    url = store.url("x_2.png")
    assert url.startswith(f"{s3_server.endpoint}/{s3_bucket}/lib/x_2.png?")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=7200" in url
    assert store.url("x_2.png") == url  # the same link for a while: browsers can cache it
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.read() == s3_server.client().get_object(
            Bucket=s3_bucket, Key="lib/x_2.png")["Body"].read()
    with urllib.request.urlopen(store.thumbnail_url(2), timeout=10) as response:
        assert response.headers["Content-Type"] == "image/webp"
    assert store.origin == s3_server.endpoint
    unsigned = url.split("?", 1)[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=10)
    refused.value.close()
    assert refused.value.code == 403


def test_s3_without_a_prefix_uses_the_bare_names(s3_server, s3_bucket):
    store = store_from_config(s3_server.settings(s3_bucket, prefix=""))
    store.stage(png_bytes(), DESCRIPTION).place("x_3", 3)
    assert s3_server.keys(s3_bucket) == ["thumbs/3.webp", "x_3.png"]
    assert store.files() == ["x_3.png"]


def test_s3_wrong_secret_cannot_write_and_says_nothing_secret(s3_server, s3_bucket, caplog):
    settings = s3_server.settings(s3_bucket, AWS_SECRET_ACCESS_KEY="not-the-secret-42")
    store = store_from_config(settings)
    staged = store.stage(png_bytes(), DESCRIPTION)
    with pytest.raises(StorageError) as refused:
        staged.place("x_4", 4)
    staged.discard(4)
    assert s3_server.keys(s3_bucket) == []
    assert "SignatureDoesNotMatch" in refused.value.detail
    with pytest.raises(StorageError):
        store.check()
    shown = refused.value.detail + caplog.text
    assert "not-the-secret-42" not in shown and SECRET_KEY not in shown


def test_s3_missing_bucket_is_a_storage_error(s3_server):
    store = store_from_config(s3_server.settings("no-such-bucket-here"))
    with pytest.raises(StorageError):
        store.check()
    with pytest.raises(StorageError):
        store.stage(png_bytes(), DESCRIPTION).place("x_5", 5)
    with pytest.raises(StorageError):
        store.files()


def test_s3_unreachable_server_is_a_storage_error():
    from tests.s3server import free_ports

    (port,) = free_ports(1)
    store = store_from_config({"S3_BUCKET": "images", "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                               "S3_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "a",
                               "AWS_SECRET_ACCESS_KEY": "b"})
    with pytest.raises(StorageError, match="could not be reached"):
        store.check()


def test_a1111_text_format():
    text = a1111_parameters(prompt="p", negative_prompt="", steps=10, cfg_scale=7.0, seed=1,
                            width=512, height=768, model="m")
    assert text.splitlines() == ["p", "Negative prompt: ",
                                 "Steps: 10, CFG scale: 7, Seed: 1, Size: 512x768, Model: m"]
