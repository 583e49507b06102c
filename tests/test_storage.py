"""The image store: validation, atomic writes, thumbnails and the embedded parameters."""

import io
import os

import pytest
from PIL import Image

from app.storage import ImageStore, InvalidImage, a1111_parameters, open_image, with_png_text
from tests.conftest import files_in
from tests.images import bomb_png, jpeg_bytes, png_bytes

DESCRIPTION = dict(prompt="a red fox", negative_prompt="blurry", steps=30, cfg_scale=7.5,
                   seed=1234, model="abstract")


def _idat(data: bytes) -> bytes:
    """The concatenated IDAT payloads: the compressed pixel data."""
    out, offset = b"", 8
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        if data[offset + 4:offset + 8] == b"IDAT":
            out += data[offset + 8:offset + 8 + length]
        offset += length + 12
    return out


def test_stage_and_place_write_image_and_thumbnail(tmp_path):
    store = ImageStore(tmp_path)
    staged = store.stage(png_bytes(640, 480), DESCRIPTION)
    assert (staged.format, staged.width, staged.height) == ("png", 640, 480)
    name = staged.place("20260101_120000_7", 7)
    assert name == "20260101_120000_7.png"
    assert files_in(tmp_path) == ["20260101_120000_7.png", "thumbs/7.webp"]
    with Image.open(tmp_path / "thumbs" / "7.webp") as thumb:
        assert thumb.format == "WEBP" and thumb.size == (384, 288)
    assert os.path.getsize(tmp_path / name) == staged.file_size


def test_png_carries_a1111_parameters_and_keeps_its_pixel_data(tmp_path):
    original = png_bytes(320, 200)
    store = ImageStore(tmp_path)
    store.stage(original, DESCRIPTION).place("x_1", 1)
    stored = (tmp_path / "x_1.png").read_bytes()
    assert _idat(stored) == _idat(original)
    text = Image.open(io.BytesIO(stored)).info["parameters"]
    assert text == ("a red fox\nNegative prompt: blurry\n"
                    "Steps: 30, CFG scale: 7.5, Seed: 1234, Size: 320x200, Model: abstract")


def test_parameters_chunk_replaces_an_old_one_and_handles_unicode():
    first = with_png_text(png_bytes(), "parameters", "old")
    second = with_png_text(first, "parameters", "ein Fuchs im Schnee ❄")
    image = Image.open(io.BytesIO(second))
    assert image.info["parameters"] == "ein Fuchs im Schnee ❄"
    assert second.count(b"parameters") == 1


def test_jpeg_is_kept_as_it_came(tmp_path):
    data = jpeg_bytes(300, 300)
    staged = ImageStore(tmp_path).stage(data, DESCRIPTION)
    staged.place("x_2", 2)
    assert (tmp_path / "x_2.jpg").read_bytes() == data


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", png_bytes(300, 300)[:400], bomb_png(),
     b"GIF89a" + b"\0" * 100],
    ids=["empty", "garbage", "truncated", "bomb", "gif-header"],
)
def test_refuses_what_is_not_a_complete_image_and_leaves_nothing(tmp_path, data):
    store = ImageStore(tmp_path)
    with pytest.raises(InvalidImage):
        store.stage(data, DESCRIPTION)
    assert files_in(tmp_path) == []


def test_refuses_other_formats():
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buffer, "GIF")
    with pytest.raises(InvalidImage, match="unsupported"):
        open_image(buffer.getvalue())


def test_discard_removes_temporary_and_final_files(tmp_path):
    store = ImageStore(tmp_path)
    staged = store.stage(png_bytes(), DESCRIPTION)
    staged.discard()
    assert files_in(tmp_path) == []
    staged = store.stage(png_bytes(), DESCRIPTION)
    staged.place("x_3", 3)
    staged.discard(3)
    assert files_in(tmp_path) == []


def test_files_and_leftovers(tmp_path):
    store = ImageStore(tmp_path)
    store.stage(png_bytes(), DESCRIPTION).place("x_4", 4)
    leftover = store.stage(png_bytes(), DESCRIPTION).temp_file
    os.utime(leftover, (0, 0))
    assert store.files() == ["x_4.png"]
    assert leftover in store.temp_files()
    store.delete("x_4.png", 4)
    assert store.files() == []
    assert not store.thumb_path(4).exists()


def test_a1111_text_format():
    text = a1111_parameters(prompt="p", negative_prompt="", steps=10, cfg_scale=7.0, seed=1,
                            width=512, height=768, model="m")
    assert text.splitlines() == ["p", "Negative prompt: ",
                                 "Steps: 10, CFG scale: 7, Seed: 1, Size: 512x768, Model: m"]
