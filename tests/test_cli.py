"""`flask generate` and `flask images ...` through the Flask CLI runner."""

import json

from tests.conftest import files_in


def generate(runner, *args):
    return runner.invoke(args=["generate", "a paper boat", "--width", "512", "--height", "512",
                               *args])


def test_generate_prints_the_record(runner, images_dir):
    result = generate(runner, "--seed", "5", "--steps", "12", "--cfg-scale", "3.5",
                      "--negative-prompt", "rain")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["prompt"], record["seed"], record["steps"], record["cfg_scale"]) == (
        "a paper boat", 5, 12, 3.5)
    assert record["negative_prompt"] == "rain" and record["provider"] == "offline"
    assert (images_dir / record["filename"]).exists()


def test_generate_one_image_shows_no_progress_bar(runner):
    result = generate(runner, "--count", "1")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 and json.loads(result.stdout)["seed"]
    assert result.stderr == ""


def test_generate_count_prints_each_record_and_a_progress_bar(runner):
    result = generate(runner, "--count", "3", "--seed", "10")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seed"] for r in records] == [10, 11, 12]
    assert "Generating" in result.stderr


def test_generate_reports_validation_and_provider_errors(runner, images_dir):
    bad = generate(runner, "--width", "500")
    assert bad.exit_code == 1 and "width: Input should be" in bad.stderr
    missing = generate(runner, "--provider", "stability")
    assert missing.exit_code == 1 and "provider_not_configured" in missing.stderr
    assert files_in(images_dir) == []


def test_images_list_show_delete(runner, images_dir):
    record = json.loads(generate(runner).stdout)
    listed = runner.invoke(args=["images", "list"])
    assert f"{record['id']:>6}" in listed.stdout and "a paper boat" in listed.stdout
    shown = runner.invoke(args=["images", "show", str(record["id"])])
    assert json.loads(shown.stdout) == record
    deleted = runner.invoke(args=["images", "delete", str(record["id"])])
    assert deleted.exit_code == 0 and files_in(images_dir) == []
    again = runner.invoke(args=["images", "show", str(record["id"])])
    assert again.exit_code == 1 and "not found" in again.stderr


def test_verify_reports_and_fixes_missing_and_orphan_files(runner, images_dir):
    kept = json.loads(generate(runner).stdout)
    lost = json.loads(generate(runner).stdout)
    clean = runner.invoke(args=["images", "verify"])
    assert clean.exit_code == 0 and "OK: 2 records" in clean.stdout
    (images_dir / lost["filename"]).unlink()
    (images_dir / "20200101_000000_999.png").write_bytes(b"stray")
    report = runner.invoke(args=["images", "verify"])
    assert report.exit_code == 1
    assert f"missing file: record {lost['id']}" in report.stdout
    assert "orphan file: 20200101_000000_999.png" in report.stdout
    fixed = runner.invoke(args=["images", "verify", "--fix"])
    assert fixed.exit_code == 0 and "Fixed 2 problem(s)" in fixed.stdout
    assert files_in(images_dir) == [kept["filename"], f"thumbs/{kept['id']}.webp"]
    assert runner.invoke(args=["images", "verify"]).exit_code == 0
