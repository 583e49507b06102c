"""Settings from the environment: defaults the contract promises."""

import os
import subprocess
import sys

import pytest

from app import create_app
from config import BASE_DIR, ConfigurationError, load_config


@pytest.mark.parametrize(
    ("keys", "expected"),
    [({}, "offline"), ({"REPLICATE_API_TOKEN": "r8"}, "replicate"),
     ({"STABILITY_API_KEY": "sk"}, "stability"),
     ({"STABILITY_API_KEY": "sk", "REPLICATE_API_TOKEN": "r8"}, "stability")],
)
def test_default_provider_is_the_first_configured(tmp_path, monkeypatch, keys, expected):
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    assert load_config(tmp_path)["DEFAULT_PROVIDER"] == expected


def test_default_provider_can_be_set(tmp_path, monkeypatch):
    monkeypatch.setenv("STABILITY_API_KEY", "sk")
    monkeypatch.setenv("DEFAULT_PROVIDER", "offline")
    assert load_config(tmp_path)["DEFAULT_PROVIDER"] == "offline"


def test_secret_key_is_random_and_kept_in_the_instance_folder(tmp_path):
    first = load_config(tmp_path / "a")["SECRET_KEY"]
    assert len(first) == 64 and (tmp_path / "a" / "secret_key").read_text() == first
    assert load_config(tmp_path / "a")["SECRET_KEY"] == first
    assert load_config(tmp_path / "b")["SECRET_KEY"] != first
    assert oct((tmp_path / "a" / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_defaults(tmp_path):
    config = load_config(tmp_path)
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'app.db'}"
    assert config["IMAGES_DIR"] == str(BASE_DIR / "static" / "images")
    assert config["STABILITY_BASE_URL"] == "https://api.stability.ai"
    assert config["STABILITY_MODEL"] == "sd3.5-large"
    assert config["REPLICATE_BASE_URL"] == "https://api.replicate.com"
    assert config["REPLICATE_MODEL"].startswith("stability-ai/sdxl:39ed52f2a78e")
    assert config["GENERATION_TIMEOUT"] == 120
    assert config["RATE_LIMIT"] == "30 per minute"
    assert config["API_TOKENS"] == [] and config["CORS_ORIGINS"] == []


def test_lists_and_relative_images_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("API_TOKENS", " one, two ,,")
    monkeypatch.setenv("IMAGES_DIR", "media/out")
    config = load_config(tmp_path)
    assert config["API_TOKENS"] == ["one", "two"]
    assert config["IMAGES_DIR"] == str(BASE_DIR / "media" / "out")


@pytest.mark.parametrize(("given", "expected"), [
    ("postgres://u:p@db.internal:5432/imagegen", "postgresql+psycopg://u:p@db.internal:5432/imagegen"),
    ("postgresql://u@db/imagegen?sslmode=require",
     "postgresql+psycopg://u@db/imagegen?sslmode=require"),
    ("postgresql+psycopg://u@db/imagegen", "postgresql+psycopg://u@db/imagegen"),
    ("sqlite:////srv/imagegen/app.db", "sqlite:////srv/imagegen/app.db"),
])
def test_postgresql_urls_use_psycopg(tmp_path, monkeypatch, given, expected):
    monkeypatch.setenv("DATABASE_URL", given)
    monkeypatch.setenv("SECRET_KEY", "shared")
    assert load_config(tmp_path)["SQLALCHEMY_DATABASE_URI"] == expected


@pytest.mark.parametrize("setting", [("DATABASE_URL", "postgres://u@db/imagegen"),
                                     ("S3_BUCKET", "imagegen-images")])
def test_several_nodes_need_a_shared_secret_key(tmp_path, monkeypatch, setting):
    """With PostgreSQL or a bucket, no node may make up a key of its own: the app refuses."""
    monkeypatch.setenv(*setting)
    with pytest.raises(ConfigurationError, match="SECRET_KEY must be set") as refused:
        create_app()
    assert setting[0] in str(refused.value)
    assert not (tmp_path / "secret_key").exists() and not load_config(tmp_path)["SECRET_KEY"]
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "current"],
                            cwd=BASE_DIR, env={**os.environ, setting[0]: setting[1]},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr and "Traceback" not in result.stderr

    monkeypatch.setenv("SECRET_KEY", "one key for every node")
    assert load_config(tmp_path)["SECRET_KEY"] == "one key for every node"
