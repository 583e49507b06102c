"""What differs between SQLite and PostgreSQL, shown on both: the schema the migrations make,
integers past bigint, JSON, booleans, UTC times, and search giving the same answers."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import flask_migrate
import pytest

from app.extensions import db
from app.models import Image
from config import BASE_DIR
from tests.test_gallery import PROMPTS, add, search

BIG = 2**63  # one past the largest bigint (and SQLite integer)


def flask(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "migrations-test"}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=BASE_DIR,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def empty_database(request, database, tmp_path):
    """A URL of an empty database of the test's kind (PostgreSQL in its plain spelling)."""
    if database == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    postgres = request.getfixturevalue("postgres")
    postgres.execute("DROP DATABASE IF EXISTS migrations_check WITH (FORCE)",
                     "CREATE DATABASE migrations_check")
    request.addfinalizer(lambda: postgres.execute(
        "DROP DATABASE IF EXISTS migrations_check WITH (FORCE)"))
    return f"postgresql://postgres@127.0.0.1:{postgres.port}/migrations_check"


def test_models_and_migrations_agree(empty_database):
    """`flask db upgrade` then `flask db check`, as the deploy step runs them; down and up again."""
    for args in (("db", "upgrade"), ("db", "check"), ("db", "downgrade", "base"),
                 ("db", "upgrade"), ("db", "check")):
        result = flask(empty_database, *args)
        assert result.returncode == 0, f"flask {' '.join(args)}:\n{result.stdout}{result.stderr}"
    assert "No new upgrade operations detected" in result.stdout + result.stderr


@pytest.mark.parametrize("image_id", [2**31, 2**63 - 1, BIG, 10**30])
def test_ids_past_any_integer_are_not_found(client, image_id):
    for method in ("get", "delete", "patch"):
        response = getattr(client, method)(f"/api/images/{image_id}", json={"favorite": True})
        assert response.status_code in (404, 405), response.get_data(as_text=True)
        if response.status_code == 404:
            assert response.get_json()["error"] == "not_found"
    assert client.get(f"/images/{image_id}").status_code == 404


@pytest.mark.parametrize("image_id", [2**63 - 1, BIG, 10**30])
def test_cursors_past_any_integer(client, app, image_id):
    add(app)
    cursor = base64.urlsafe_b64encode(
        f"2030-01-01T00:00:00+00:00|{image_id}".encode()).decode().rstrip("=")
    response = client.get("/api/images", query_string={"before": cursor})
    assert response.status_code in (200, 422), response.get_data(as_text=True)
    if response.status_code == 200:
        assert len(response.get_json()) == 5


def test_values_come_back_as_they_went_in(client, app):
    generated = client.post("/api/generate", json={
        "prompt": "ünïcode prompt ☃ with 'quotes'", "negative_prompt": "blurry", "width": 512,
        "height": 512, "seed": 4294967294, "steps": 30, "cfg_scale": 7.5})
    assert generated.status_code == 201
    record = generated.get_json()
    again = client.get(f"/api/images/{record['id']}").get_json()
    assert again == record
    assert again["seed"] == 4294967294 and again["cfg_scale"] == 7.5
    assert again["content_filtered"] is False and isinstance(again["requested"], dict)
    assert again["requested"]["seed"] == 4294967294 and again["ignored"] == record["ignored"]
    created = datetime.fromisoformat(again["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)
    with app.app_context():
        stored = db.session.get(Image, record["id"])
        assert stored.created_at.tzinfo is UTC and stored.content_filtered is False


def test_times_keep_their_order_across_offsets(client, app):
    """Times given in any offset are stored as UTC: paging order is the instant, not the text."""
    add(app, [("in tokyo", ""), ("in new york", "")], start=datetime(2026, 3, 1, tzinfo=UTC))
    with app.app_context():
        tokyo = db.session.scalar(db.select(Image).filter_by(prompt="in tokyo"))
        from zoneinfo import ZoneInfo

        # 09:00 in Tokyo is 00:00 UTC: an hour after the New York record's 23:01 the day before.
        tokyo.created_at = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
        db.session.commit()
        stored = db.session.get(Image, tokyo.id).created_at
    assert stored == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    listed = client.get("/api/images").get_json()
    assert [r["prompt"] for r in listed] == ["in tokyo", "in new york"]
    assert listed[0]["created_at"] == "2026-03-02T00:00:00+00:00"


# Both databases, side by side: the same library, the same queries, the same answers. (One known
# difference is left out: PostgreSQL's unaccent also unfolds ligatures, "strasse" finds "Straße"
# and "aether" finds "æther" there, which SQLite's unicode61 tokenizer does not.)
PARITY_PROMPTS = [
    ("Red foxes in the SNOW, 35mm", "city-lights"), ("a sci-fi city, 100% neon", "blurry"),
    ("Café terrace at night", "fox"), ("sd3.5 render of example.com", "low_quality"),
    ("foxglove meadow; the fox's den", ""), ("ÉCOLE des beaux-arts", "jpeg artifacts"),
    ('the "quoted" AND NEAR(the sea) -minus * star', ""), ("naïve art, Straße", "über"),
]
PARITY_QUERIES = [
    "fox", "FOX", "foxes", "fo", "f", "fox's", "den", "sci-fi", "sci", "fi", "100%", "100",
    "neon city", "city-lights", "lights", "cafe", "CAFÉ", "ecole", "beaux-arts", "arts",
    "sd3.5", "sd3", "example.com", "com", "low_quality", "quality", "_", "%", "-", "*", '"',
    '"quoted"', "AND", "NEAR(the", "-minus", "star*", "naive", "straße", "uber",
    "über", "jpeg artifacts", "whale", "fox whale", "35mm", "35",
]


@pytest.mark.sqlite_only  # it makes one app of each kind itself
def test_search_parity(make_app, request):
    """Every query answers the same on SQLite (FTS5) and PostgreSQL (tsvector)."""
    sqlite_app = make_app()
    postgres = request.getfixturevalue("postgres")
    from tests.conftest import PostgresDatabases

    databases = PostgresDatabases(postgres, request.getfixturevalue("postgres_template"))
    request.addfinalizer(databases.drop_all)
    postgres_app = make_app(SQLALCHEMY_DATABASE_URI=databases.new())
    answers = {}
    for name, app in (("sqlite", sqlite_app), ("postgresql", postgres_app)):
        add(app, PARITY_PROMPTS)
        client = app.test_client()
        answers[name] = {q: search(client, q) for q in PARITY_QUERIES}
    differences = {q: (answers["sqlite"][q], answers["postgresql"][q]) for q in PARITY_QUERIES
                   if answers["sqlite"][q] != answers["postgresql"][q]}
    assert differences == {}
    assert answers["sqlite"]["cafe"] == ["Café terrace at night"]
    assert answers["sqlite"]["fox"] == ["foxglove meadow; the fox's den", "Café terrace at night",
                                        "Red foxes in the SNOW, 35mm"]


def totals(client, **args) -> int:
    response = client.get("/api/images", query_string={"limit": 1, **args})
    assert response.status_code == 200
    return int(response.headers["X-Total-Count"])


def test_totals_stay_exact_through_every_change(client, app):
    """X-Total-Count (kept by a trigger on PostgreSQL) follows inserts, deletes and changes."""
    assert totals(client) == 0 and totals(client, provider="stability") == 0
    add(app)  # 5 records: offline, stability, offline, stability, offline
    assert (totals(client), totals(client, provider="stability"),
            totals(client, provider="offline"), totals(client, provider="replicate")) == (5, 2, 3, 0)
    made = client.post("/api/generate", json={"prompt": "one more", "width": 512, "height": 512})
    assert made.status_code == 201
    assert totals(client) == 6 and totals(client, provider="offline") == 4
    with app.app_context():
        moved = db.session.scalar(db.select(Image).filter_by(prompt=PROMPTS[1][0]))
        moved.provider = "replicate"
        db.session.delete(db.session.scalar(db.select(Image).filter_by(prompt="an owl on a branch")))
        db.session.commit()
    assert (totals(client), totals(client, provider="stability"),
            totals(client, provider="offline"), totals(client, provider="replicate")) == (5, 1, 3, 1)
    assert client.delete(f"/api/images/{made.get_json()['id']}").status_code == 204
    assert totals(client) == 4 and totals(client, q="fox") == 2
    assert totals(client, q="fox", provider="stability") == 1  # the café, with "fox" in its negative


def test_generations_of_one_provider_do_not_wait_for_each_other(client, app, database):
    """A record flushed but not committed yet (its files still being stored) does not hold up
    another generation of the same provider; both are counted once both commit."""
    if database == "sqlite":
        pytest.skip("SQLite lets one writer in at a time")

    def record(name: str) -> dict:
        return {"filename": name, "prompt": "a lighthouse", "negative_prompt": "",
                "provider": "offline", "model": "m", "width": 512, "height": 512, "steps": 30,
                "cfg_scale": 7.0, "requested": "{}", "ignored": "[]", "content_filtered": False,
                "format": "png", "file_size": 1, "duration_ms": 1,
                "created_at": datetime(2026, 1, 1), "options": "{}"}

    insert = db.text(
        "INSERT INTO image (filename, prompt, negative_prompt, provider, model, width, height,"
        " steps, cfg_scale, requested, ignored, content_filtered, format, file_size, duration_ms,"
        " created_at, options) VALUES (:filename, :prompt, :negative_prompt, :provider, :model,"
        " :width, :height, :steps, :cfg_scale, :requested, :ignored, :content_filtered, :format,"
        " :file_size, :duration_ms, :created_at, :options)")
    with app.app_context():
        with db.engine.connect() as first, db.engine.connect() as second:
            first.execute(insert, record("first.png"))  # flushed, its upload under way
            second.execute(db.text("SET lock_timeout = '5s'"))
            second.execute(insert, record("second.png"))
            second.commit()  # a lock held by the first would fail this after 5 s
            assert totals(client) == 1 and totals(client, provider="offline") == 1
            first.commit()
    assert totals(client) == 2 and totals(client, provider="offline") == 2


def counted(app, client, **args) -> tuple[int, int]:
    """A search's X-Total-Count, and how many times the request counted the matches itself."""
    counts = []

    def seen(_connection, _cursor, statement, *_):
        if re.search(r"count\(\*\)[^()]*\bFROM image\s", statement):
            counts.append(statement)

    with app.app_context():
        db.event.listen(db.engine, "before_cursor_execute", seen)
        try:
            total = totals(client, **args)
        finally:
            db.event.remove(db.engine, "before_cursor_execute", seen)
    return total, len(counts)


def test_search_totals_stay_exact_when_another_node_changes_the_library(client, app):
    """A search's total is right after every insert, delete and change made through another
    connection (as another node makes them), and after favouriting; on PostgreSQL a search asked
    again while nothing changed is not counted again."""
    add(app)  # "fox" is in the foxes' prompt and the café's negative prompt
    postgres = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    assert counted(app, client, q="fox") == (2, 1)
    assert counted(app, client, q="fox") == (2, 0 if postgres else 1)
    assert counted(app, client, q="fox", provider="stability") == (1, 1)
    with app.app_context(), db.engine.connect() as other:
        other.execute(db.text(
            "INSERT INTO image (filename, prompt, negative_prompt, provider, model, width, height,"
            " requested, ignored, content_filtered, format, file_size, duration_ms, created_at,"
            " options, favorite) VALUES ('other.png', 'a fox at dawn', '', 'stability', 'm', 512,"
            " 512, '{}', '[]', false, 'png', 1, 1, '2026-02-01 00:00:00', '{}', false)"))
        assert totals(client, q="fox") == 2  # not committed yet
        other.commit()
        assert totals(client, q="fox") == 3
        assert totals(client, q="fox", provider="stability") == 2
        other.execute(db.text("UPDATE image SET prompt = 'an owl at dawn'"
                              " WHERE filename = 'other.png'"))
        other.commit()
        assert totals(client, q="fox") == 2 and totals(client, q="owl") == 2
        other.execute(db.text("UPDATE image SET provider = 'offline' WHERE filename = '3.png'"))
        other.commit()
        assert totals(client, q="fox", provider="stability") == 0
        other.execute(db.text("DELETE FROM image WHERE filename = '0.png'"))
        other.commit()
    assert totals(client, q="fox") == 1 and totals(client, q="owl") == 2
    assert counted(app, client, q="owl") == (2, 0 if postgres else 1)
    owl = client.get("/api/images", query_string={"q": "owl", "limit": 1}).get_json()[0]
    assert totals(client, q="owl", favorite="true") == 0
    assert client.patch(f"/api/images/{owl['id']}", json={"favorite": True}).status_code == 200
    assert totals(client, q="owl", favorite="true") == 1 and totals(client, q="owl") == 2


def test_a_downgrade_keeps_the_records_without_a_seed(client, app):
    """Going back before nullable seeds (0004) keeps OpenAI's and imported records; going forward
    again gives them their null seed back."""
    add(app)
    with app.app_context():
        db.session.scalar(db.select(Image).filter_by(filename="1.png")).seed = None
        db.session.commit()
        flask_migrate.downgrade(revision="0002")
        db.session.commit()
        assert db.session.execute(db.text("SELECT filename, seed FROM image WHERE seed = 0")
                                  ).all() == [("1.png", 0)]
        assert db.session.scalar(db.text("SELECT count(*) FROM image")) == 5
        db.session.commit()
        flask_migrate.upgrade()
        db.session.remove()
    listed = client.get("/api/images").get_json()
    assert len(listed) == 5
    assert [record["seed"] for record in listed if record["filename"] == "1.png"] == [None]
