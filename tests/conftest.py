"""Fixtures: an app per test on its own database and images folder, fakes, a live server.

Every test that builds an app through `make_app` (or `app`, `client`, ...) runs twice, on SQLite
and on PostgreSQL (the `database` parameter); a module or test marked `sqlite_only` (it never
touches the database, or sets up its own) runs once. The PostgreSQL variants skip where PostgreSQL
is not installed (and fail under REQUIRE_SERVERS=1).
"""

from __future__ import annotations

import os
import shutil
import threading

# Settings come from the tests alone, never from a developer's .env or shell: every setting the
# app reads is set (blank), and python-dotenv leaves variables that are already set alone.
APP_SETTINGS = (
    "SECRET_KEY", "DATABASE_URL", "IMAGES_DIR", "DEFAULT_PROVIDER", "STABILITY_API_KEY",
    "STABILITY_BASE_URL", "STABILITY_MODEL", "REPLICATE_API_TOKEN", "REPLICATE_BASE_URL",
    "REPLICATE_MODEL", "REPLICATE_MODELS", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL",
    "GENERATION_TIMEOUT", "API_TOKENS", "RATE_LIMIT", "RATE_LIMIT_STORAGE_URI", "CORS_ORIGINS",
    "PROXY_COUNT", "MAX_CONTENT_LENGTH", "S3_BUCKET", "S3_ENDPOINT_URL", "S3_REGION", "S3_PREFIX",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "IMAGES_BASE_URL", "DAILY_BUDGET",
    "TOKEN_BUDGETS", "PRICES",
)
for _name in APP_SETTINGS:
    os.environ[_name] = ""
# Nor from the AWS credentials that boto3 would find by itself.
os.environ["AWS_SESSION_TOKEN"] = ""
os.environ.pop("AWS_PROFILE", None)
os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

import pytest  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

from app import create_app  # noqa: E402

DATABASES = ("sqlite", "postgresql")


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: runs on SQLite alone (no database work, "
                                       "or a setup of its own)")


def pytest_generate_tests(metafunc):
    if "database" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("database", DATABASES[:1] if only else DATABASES, indirect=True)


@pytest.fixture
def database(request):
    """Which database the test's apps use: "sqlite" or "postgresql"."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL for the whole session, or a skip (a failure under REQUIRE_SERVERS=1)."""
    from tests.servers import PostgresServer

    server = PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_template(postgres):
    """A database at the newest migration, the template each test's database is made from."""
    import flask_migrate

    postgres.execute("CREATE DATABASE imagegen_template")
    app = create_app({"SQLALCHEMY_DATABASE_URI": postgres.url("imagegen_template"),
                      "TESTING": True, "SECRET_KEY": "test-secret",
                      "RATELIMIT_STORAGE_URI": "memory://"})
    with app.app_context():
        flask_migrate.upgrade()
        from app.extensions import db

        db.engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template unused
    return "imagegen_template"


class PostgresDatabases:
    """Fresh databases copied from the migrated template, dropped when the test ends."""

    def __init__(self, server, template: str):
        self.server, self.template, self.made = server, template, []

    def new(self) -> str:
        import uuid

        name = f"test_{uuid.uuid4().hex[:12]}"
        self.server.execute(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        self.made.append(name)
        return self.server.url(name)

    def drop_all(self) -> None:
        for name in self.made:
            self.server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def new_database(request, database, tmp_path):
    """A function making a fresh, migrated database URL of the test's kind."""
    if database == "postgresql":
        databases = PostgresDatabases(request.getfixturevalue("postgres"),
                                      request.getfixturevalue("postgres_template"))
        yield databases.new
        databases.drop_all()
        return
    template = request.getfixturevalue("migrated_db")
    made = []

    def new() -> str:
        path = tmp_path / f"app{len(made)}.db"
        shutil.copy(template, path)
        made.append(path)
        return f"sqlite:///{path}"

    yield new


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server for the whole session, or a skip (a failure under REQUIRE_SERVERS=1)."""
    from tests.servers import RedisServer

    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server):
    """The session's Redis, emptied for this test (and started again if a test stopped it)."""
    if redis_server.process.poll() is not None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory):
    """A database file at the newest migration, copied for each test (faster than migrating)."""
    import flask_migrate

    path = tmp_path_factory.mktemp("template") / "template.db"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "TESTING": True})
    with app.app_context():
        flask_migrate.upgrade()
        from app.extensions import db

        db.engine.dispose()  # the last connection to close folds the WAL into the file
    return path


@pytest.fixture
def make_app(tmp_path, new_database):
    """Build an app with overrides; every app gets a fresh database and images folder."""
    made = []

    def make(**overrides):
        config = {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": overrides.get("SQLALCHEMY_DATABASE_URI") or new_database(),
            "IMAGES_DIR": str(tmp_path / f"images{len(made)}"),
            "RATELIMIT_ENABLED": False,
            "RATELIMIT_STORAGE_URI": "memory://",
        }
        config.update(overrides)
        app = create_app(config)
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def images_dir(app):
    from pathlib import Path

    return Path(app.config["IMAGES_DIR"])


def files_in(folder) -> list[str]:
    """Every file under a folder, relative names, sorted (to prove nothing was left behind)."""
    from pathlib import Path

    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


class _ClosingHandler(WSGIRequestHandler):
    """Closes the answer when a browser drops the connection mid-file (navigating on while
    thumbnails load): werkzeug's server then skips the close, and the open file would surface
    as a ResourceWarning in whichever test runs next."""

    def connection_dropped(self, error, environ=None):
        answer = (environ or {}).get("tests.answer")
        if answer is not None and hasattr(answer, "close"):
            answer.close()


def _keep_answer(app):
    def wsgi(environ, start_response):
        environ["tests.answer"] = answer = app(environ, start_response)
        return answer

    return wsgi


class LiveServer:
    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, _keep_answer(app), threaded=True,
                                  request_handler=_ClosingHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live_server(app):
    with LiveServer(app) as server:
        yield server


CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "test-artifacts")


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; skipped where it is missing unless required."""
    from tests.realparts import require

    require(os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM} (apt-get install chromium)",
            "REQUIRE_BROWSER")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    """Keep what the browser saw as a test artifact."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """SeaweedFS serving S3 on 127.0.0.1 for the whole session (skipped where weed is missing)."""
    from tests.s3server import SeaweedS3, weed_binary

    with SeaweedS3(weed_binary(), tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket on the session's S3 server."""
    return s3_server.new_bucket()


@pytest.fixture(scope="session")
def fake_stability_server():
    from tests.fakes import FakeStability

    with FakeStability() as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_replicate_server():
    from tests.fakes import FakeReplicate

    with FakeReplicate() as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_openai_server():
    from tests.fakes import FakeOpenAI

    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_openai(fake_openai_server):
    """The fake OpenAI Images API, with its log of requests emptied for this test."""
    fake_openai_server.reset()
    return fake_openai_server


@pytest.fixture
def fake_stability(fake_stability_server):
    """The fake Stability API, with its log of requests emptied for this test."""
    fake_stability_server.reset()
    return fake_stability_server


@pytest.fixture
def fake_replicate(fake_replicate_server):
    """The fake Replicate API, with its log of requests emptied for this test."""
    fake_replicate_server.reset()
    return fake_replicate_server
