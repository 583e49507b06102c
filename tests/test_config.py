"""Settings from the environment and `.env`: defaults the contract promises."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from config import BASE_DIR, ConfigurationError, load_config
from tests.conftest import APP_SETTINGS
from tests.deploy import project_copy


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


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("# a comment\nSTABILITY_MODEL=sd3.5-medium\nGENERATION_TIMEOUT=77\n"
                      "API_TOKENS=from-the-file\nRATE_LIMIT='5 per minute'\n")
    for name in ("STABILITY_MODEL", "GENERATION_TIMEOUT", "RATE_LIMIT"):
        monkeypatch.delenv(name)  # unset: the file's value counts (restored after the test)
    monkeypatch.setenv("API_TOKENS", "from-the-environment")
    config = load_config(tmp_path / "instance", dotenv_path=dotenv)
    assert config["STABILITY_MODEL"] == "sd3.5-medium"
    assert config["GENERATION_TIMEOUT"] == 77
    assert config["RATE_LIMIT"] == "5 per minute"
    assert config["API_TOKENS"] == ["from-the-environment"]


def test_the_project_dotenv_is_read_by_the_app_and_by_gunicorn(tmp_path):
    """A `.env` beside the code (in a copy of the project, not this checkout) is what the app
    and gunicorn.conf.py read, from any working directory."""
    project = project_copy(tmp_path)
    (project / ".env").write_text("STABILITY_MODEL=sd3.5-flash\nGUNICORN_THREADS=3\n")
    env = {name: value for name, value in os.environ.items()
           if name not in ("STABILITY_MODEL", "GUNICORN_THREADS")}
    script = (f"import runpy, sys; sys.path.insert(0, {str(project)!r}); import wsgi; "
              "print(wsgi.app.config['STABILITY_MODEL'], "
              f"runpy.run_path({str(project / 'gunicorn.conf.py')!r})['threads'])")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sd3.5-flash", "3"]


def contract() -> Path | None:
    """CONTRACT.md in the `shared` folder beside the checkout (or beside a folder above it)."""
    for folder in (BASE_DIR, *BASE_DIR.parents):
        path = folder.parent / "shared" / "CONTRACT.md"
        if path.is_file():
            return path
    return None


def contract_settings(text: str) -> set[str]:
    """The variables named in the first column of the contract's configuration table."""
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def env_example_settings() -> set[str]:
    text = (BASE_DIR / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


def test_env_example_lists_every_setting_of_the_contract():
    path = contract()
    if path is None:
        pytest.skip("no shared/CONTRACT.md beside the checkout to compare .env.example with")
    expected = contract_settings(path.read_text())
    assert {"SECRET_KEY", "OPENAI_API_KEY", "RATE_LIMIT_STORAGE_URI"} <= expected  # parsed
    assert sorted(expected - env_example_settings()) == []


def test_tests_blank_every_setting_of_env_example():
    """Test setup blanks each setting a developer's .env could hold (see tests/conftest.py)."""
    listed = env_example_settings()
    assert {"SECRET_KEY", "PROXY_COUNT", "MAX_CONTENT_LENGTH", "PRICES"} <= listed
    assert sorted(listed - set(APP_SETTINGS)) == []
    assert all(os.environ[name] == "" for name in listed)
