"""Settings from the environment: defaults the contract promises."""

import pytest

from config import BASE_DIR, load_config


@pytest.mark.parametrize(
    ("keys", "expected"),
    [({}, "offline"), ({"REPLICATE_API_TOKEN": "r8"}, "replicate"),
     ({"STABILITY_API_KEY": "sk"}, "stability"),
     ({"STABILITY_API_KEY": "sk", "REPLICATE_API_TOKEN": "r8"}, "stability"),
     ({"OPENAI_API_KEY": "sk-o"}, "openai"),
     ({"OPENAI_API_KEY": "sk-o", "REPLICATE_API_TOKEN": "r8"}, "replicate")],
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
