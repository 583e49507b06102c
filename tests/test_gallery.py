"""Reading the library: word search on the full-text index (and without it), paging, migrations."""

import re
import sqlite3
from datetime import UTC, datetime, timedelta

import flask_migrate
import pytest

from app import gallery
from app.extensions import db
from app.models import Image

PROMPTS = (
    ("Red foxes in the SNOW", "city lights"),
    ("a sci-fi city at night, 100% neon", ""),
    ("an owl on a branch", "blurry, low-quality"),
    ("Café terrace at night", "fox"),
    ('the "quoted" AND sign NEAR(the sea) -minus * star', ""),
)


def add(app, prompts=PROMPTS, start=datetime(2026, 1, 1, tzinfo=UTC)):
    with app.app_context():
        for index, (prompt, negative) in enumerate(prompts):
            db.session.add(Image(
                filename=f"{index}.png", prompt=prompt, negative_prompt=negative,
                provider="stability" if index % 2 else "offline", model="m", seed=index + 1,
                width=512, height=512, steps=30, cfg_scale=7.0, requested={}, ignored=[],
                format="png", file_size=1, duration_ms=1,
                created_at=start + timedelta(minutes=index)))
        db.session.commit()


def search(client, q, **args):
    response = client.get("/api/images", query_string={"q": q, **args})
    assert response.status_code == 200
    prompts = [record["prompt"] for record in response.get_json()]
    assert int(response.headers["X-Total-Count"]) == len(prompts)
    return prompts


@pytest.fixture
def library(app):
    add(app)
    return app


@pytest.mark.parametrize("q, expected", [
    ("fox", [PROMPTS[3][0], PROMPTS[0][0]]),  # prefix: "foxes"; and in a negative prompt
    ("FOXES snow", [PROMPTS[0][0]]),  # every word, any case
    ("fox lights", [PROMPTS[0][0]]),  # one word in the prompt, one in the negative prompt
    ("night", [PROMPTS[3][0], PROMPTS[1][0]]),  # newest first
    ("sci-fi", [PROMPTS[1][0]]),
    ("100%", [PROMPTS[1][0]]),
    ("low-quality", [PROMPTS[2][0]]),
    ("cafe", [PROMPTS[3][0]]),
    ("whale", []),
    ("fox whale", []),
])
def test_search_words(library, client, q, expected):
    assert search(client, q) == expected


QUOTED = [PROMPTS[4][0]]


@pytest.mark.parametrize("q, expected", [
    ('"', QUOTED), ('""', []), ('"quoted"', QUOTED), ("AND", QUOTED),
    ("OR fox", []),  # "or" is a word to find too, and no prompt holds both
    ("NEAR(the", QUOTED), ("*", QUOTED), ("-minus", QUOTED), ("sea)", QUOTED),
    ("star*", []),  # as typed: the prompt has "* star", not "star*"
    ("'", []), ("(", QUOTED), ("^", []), ("fox:", []), ("prompt:owl", []),
    ("%", [PROMPTS[1][0]]),  # "100%"
    ("_", []),  # not LIKE's any-character wildcard
])
def test_search_syntax_is_plain_text(library, client, q, expected):
    """Quotes, operators and punctuation are words to find, never query syntax or an error."""
    assert search(client, q) == expected


def test_search_stays_in_step_with_changes(library, client):
    with library.app_context():
        owl = db.session.scalar(db.select(Image).filter_by(prompt="an owl on a branch"))
        owl.prompt = "a heron by the river"
        owl.negative_prompt = ""
        fox = db.session.scalar(db.select(Image).filter_by(prompt=PROMPTS[0][0]))
        db.session.delete(fox)
        db.session.commit()
    assert search(client, "owl") == []
    assert search(client, "heron") == ["a heron by the river"]
    assert search(client, "low-quality") == []
    assert search(client, "fox") == [PROMPTS[3][0]]
    generated = client.post("/api/generate", json={"prompt": "a fox cub", "width": 512,
                                                   "height": 512})
    assert generated.status_code == 201
    assert search(client, "cub") == ["a fox cub"]
    assert client.delete(f"/api/images/{generated.get_json()['id']}").status_code == 204
    assert search(client, "cub") == []


def test_search_with_provider_filter_and_cursor_pages(app, client):
    add(app, [(f"lighthouse number {i}", "") if i % 3 else (f"castle {i}", "")
              for i in range(90)])
    seen, url = [], "/api/images?q=lighthouse&provider=stability&limit=7"
    while url:
        response = client.get(url)
        assert response.headers["X-Total-Count"] == "30"
        seen += [record["prompt"] for record in response.get_json()]
        link = response.headers.get("Link")
        url = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1) if link else None
    expected = [f"lighthouse number {i}" for i in reversed(range(90)) if i % 3 and i % 2]
    assert seen == expected


def test_search_without_the_full_text_index(make_app, tmp_path):
    """Another database, or SQLite before migration 0002, searches with LIKE: the same words."""
    app = make_app()
    with app.app_context():
        path = db.engine.url.database
        db.engine.dispose()
    with sqlite3.connect(path) as connection:
        for trigger in ("image_fts_insert", "image_fts_delete", "image_fts_update"):
            connection.execute(f"DROP TRIGGER {trigger}")
        connection.execute("DROP TABLE image_fts")
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}")
    add(app)
    client = app.test_client()
    with app.app_context():
        assert not gallery._full_text_index()
    assert search(client, "FOXES snow") == [PROMPTS[0][0]]
    assert search(client, "100%") == [PROMPTS[1][0]]
    assert search(client, '"quoted"') == [PROMPTS[4][0]]
    assert search(client, "ox") == [PROMPTS[3][0], PROMPTS[0][0]]  # substring there


def test_large_library_queries_use_indexes(library):
    """The newest page, a cursor page and a search read indexes, never the whole table."""
    with library.app_context():
        connection = db.session.connection()
        for q, cursor in ((None, False), (None, True), ("fox night", False)):
            conditions = gallery._filters(q, None)
            query = db.select(Image.id).where(*conditions)
            if cursor:
                key = db.tuple_(Image.created_at, Image.id)
                query = query.where(key < (datetime.now(UTC), 9))
            query = query.order_by(Image.created_at.desc(), Image.id.desc()).limit(51)
            compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
            plan = [row[-1] for row in
                    connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
            table_scans = [step for step in plan
                           if step.startswith("SCAN image ") and "INDEX" not in step]
            assert not table_scans, plan
            if q is None:
                assert not [step for step in plan if "TEMP B-TREE" in step], plan
            else:
                assert any("image_fts VIRTUAL TABLE" in step for step in plan), plan


def test_migration_downgrades_and_rebuilds_the_index(library, client):
    with library.app_context():
        flask_migrate.downgrade(revision="0001")
        names = set(db.session.scalars(db.text("SELECT name FROM sqlite_master")))
        assert not {n for n in names if n.startswith("image_fts")}
        assert "ix_image_id_created_provider" not in names
        flask_migrate.upgrade()
        db.session.remove()
    assert search(client, "FOXES snow") == [PROMPTS[0][0]]
    assert search(client, "owl") == [PROMPTS[2][0]]
