"""Reading the library: word search on the full-text index (and without it), paging, migrations."""

import re
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


def test_search_without_the_full_text_index(make_app):
    """A database before its full-text migration searches with LIKE: the same words."""
    app = make_app()
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            for trigger in ("image_fts_insert", "image_fts_delete", "image_fts_update"):
                db.session.execute(db.text(f"DROP TRIGGER {trigger}"))
            db.session.execute(db.text("DROP TABLE image_fts"))
        else:
            db.session.execute(db.text("ALTER TABLE image DROP COLUMN search_vector"))
        db.session.commit()
        url = db.engine.url.render_as_string(hide_password=False)
        db.engine.dispose()
    app = make_app(SQLALCHEMY_DATABASE_URI=url)
    add(app)
    client = app.test_client()
    with app.app_context():
        assert not gallery._full_text_index()
    assert search(client, "FOXES snow") == [PROMPTS[0][0]]
    assert search(client, "100%") == [PROMPTS[1][0]]
    assert search(client, '"quoted"') == [PROMPTS[4][0]]
    assert search(client, "ox") == [PROMPTS[3][0], PROMPTS[0][0]]  # substring there


def _plan(connection, query, sort: bool = True) -> list[str]:
    compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
    if connection.dialect.name == "sqlite":
        return [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
    # A handful of rows are quicker to scan and sort; forbidding both (where an index can stand
    # in) shows what a large table's plan can use.
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    connection.exec_driver_sql(f"SET LOCAL enable_sort = {'on' if sort else 'off'}")
    return [row[0] for row in connection.exec_driver_sql(f"EXPLAIN {compiled}")]


def test_large_library_queries_use_indexes(library):
    """The newest page, a cursor page and a search read indexes, never the whole table."""
    with library.app_context():
        connection = db.session.connection()
        sqlite = connection.dialect.name == "sqlite"
        for q, cursor in ((None, False), (None, True), ("fox night", False)):
            conditions = gallery._filters(q, None)
            query = db.select(Image.id).where(*conditions)
            if cursor:
                key = db.tuple_(Image.created_at, Image.id)
                query = query.where(key < (datetime.now(UTC), 9))
            query = query.order_by(Image.created_at.desc(), Image.id.desc()).limit(51)
            plan = _plan(connection, query, sort=q is not None)
            if sqlite:
                table_scans = [step for step in plan
                               if step.startswith("SCAN image ") and "INDEX" not in step]
            else:
                table_scans = [step for step in plan if "Seq Scan" in step]
            assert not table_scans, plan
            if q is None:
                assert not [step for step in plan if "TEMP B-TREE" in step or "Sort" in step], plan
            elif sqlite:
                assert any("image_fts VIRTUAL TABLE" in step for step in plan), plan
            else:
                assert any("ix_image_search" in step for step in plan), plan


def _search_index_objects() -> set[str]:
    if db.engine.dialect.name == "sqlite":
        names = set(db.session.scalars(db.text("SELECT name FROM sqlite_master")))
        return {n for n in names if n.startswith("image_fts") or n == "ix_image_id_created_provider"}
    columns = set(db.session.scalars(db.text(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'image'")))
    indexes = set(db.session.scalars(db.text(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'image'")))
    return (columns & {"search_vector"}) | {n for n in indexes if n in (
        "ix_image_search", "ix_image_id_created_provider")}


def test_migration_downgrades_and_rebuilds_the_index(library, client, database):
    with library.app_context():
        assert _search_index_objects() >= (
            {"image_fts", "ix_image_id_created_provider"} if database == "sqlite"
            else {"search_vector", "ix_image_search", "ix_image_id_created_provider"})
        flask_migrate.downgrade(revision="0001")
        db.session.commit()
        assert _search_index_objects() == set()
        flask_migrate.upgrade()
        db.session.remove()
    assert search(client, "FOXES snow") == [PROMPTS[0][0]]
    assert search(client, "owl") == [PROMPTS[2][0]]
