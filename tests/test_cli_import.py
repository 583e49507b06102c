"""`flask images import`: folders, --recursive, --dry-run, duplicates and refusals."""

from __future__ import annotations

from app.extensions import db
from app.models import Image
from tests import metadata_samples as samples
from tests.conftest import files_in
from tests.images import png_bytes


def records(app) -> list[Image]:
    with app.app_context():
        return list(db.session.scalars(db.select(Image).order_by(Image.id)))


def make_folder(tmp_path):
    folder = tmp_path / "outputs"
    (folder / "nested").mkdir(parents=True)
    (folder / "a1111.png").write_bytes(samples.a1111_png())
    (folder / "comfy.png").write_bytes(samples.sample("comfyui_custom_advanced.png"))
    (folder / "copy-of-a1111.png").write_bytes(samples.a1111_png())
    (folder / "broken.png").write_bytes(png_bytes()[:-40])
    (folder / "notes.txt").write_text("not an image, and not looked at")
    (folder / "nested" / "invoke.png").write_bytes(samples.sample("invokeai4.png"))
    return folder


def test_import_a_folder(app, runner, tmp_path, images_dir):
    folder = make_folder(tmp_path)
    result = runner.invoke(args=["images", "import", str(folder)])
    assert result.exit_code == 0, result.output
    assert "imported 2, skipped 1 already in the library, refused 1" in result.stdout
    assert "refused: " in result.stderr and "broken.png: not a complete image" in result.stderr
    stored = records(app)
    assert sorted(r.source for r in stored) == ["a1111", "comfyui"]
    assert all(r.provider == "imported" and r.sha256 for r in stored)
    assert len(files_in(images_dir)) == 4  # two images, two thumbnails


def test_recursive_and_again(app, runner, tmp_path):
    folder = make_folder(tmp_path)
    result = runner.invoke(args=["images", "import", "--recursive", str(folder)])
    assert "imported 3, skipped 1" in result.stdout
    assert "invokeai" in {r.source for r in records(app)}
    again = runner.invoke(args=["images", "import", "--recursive", str(folder)])
    assert "imported 0, skipped 4 already in the library, refused 1" in again.stdout
    assert len(records(app)) == 3


def test_dry_run_stores_nothing(app, runner, tmp_path, images_dir):
    folder = make_folder(tmp_path)
    result = runner.invoke(args=["images", "import", "--dry-run", str(folder / "a1111.png"),
                                 str(folder / "broken.png"), str(tmp_path / "missing.png")])
    assert result.exit_code == 0
    assert "would import 1, skipped 0 already in the library, refused 2" in result.stdout
    assert "missing.png" in result.stderr
    assert records(app) == [] and files_in(images_dir) == []


def test_imported_prompts_are_searchable(app, runner, tmp_path, client):
    folder = make_folder(tmp_path)
    runner.invoke(args=["images", "import", str(folder)])
    found = client.get("/api/images?q=paper+boat").get_json()
    assert [r["source"] for r in found] == ["comfyui"]
    assert client.get("/api/images?model=flux1-dev.safetensors").headers["X-Total-Count"] == "1"
