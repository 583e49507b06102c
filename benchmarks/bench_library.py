"""Reading a large library through gunicorn: newest page, a deep page, search, the gallery page.

The library (100,000 records: varied prompts, three providers, a year of timestamps) is inserted
in bulk once at the newest migration and cached under benchmarks/.data/.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    LIBRARY_SIZE,
    SEARCH_WORD,
    copy_of_library,
    machine,
    print_rows,
    summary,
)
from server import GUNICORN_SETUP, Gunicorn, memory_row  # noqa: E402

N = 200  # requests per measured case
DEEP_PAGES = 1000
SEARCHES = (SEARCH_WORD, "jellyfish", "samurai watercolor", "Lighthouse SUNSET")
KEPT = ("; on PostgreSQL a search's total is counted once and kept until the library changes "
        "(SQLite counts each time)")


def _next(headers) -> str | None:
    link = headers.get("Link")
    return re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1) if link else None


def _timed(client, path: str, n: int = N) -> list[float]:
    times = []
    client.request("GET", path)  # warm
    for _ in range(n):
        status, _headers, _body, ms = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        times.append(ms)
    return times


# A record as another node (or the CLI) would add it: straight into the database, so that the
# measured workers do no work of their own for it.
_ADD = sa.text(
    "INSERT INTO image (filename, prompt, negative_prompt, provider, model, width, height,"
    " requested, ignored, content_filtered, format, file_size, duration_ms, created_at, options,"
    " favorite) VALUES (:filename, 'a change to the library', '', 'offline', 'abstract', 512, 512,"
    " '{}', '[]', false, 'png', 1, 1, CURRENT_TIMESTAMP, '{}', false) RETURNING id")


def _after_each_change(server, client, n: int) -> list[float]:
    """Times of the searches, each after a record was added and removed: no total can be kept."""
    engine = sa.create_engine(server.env["DATABASE_URL"])
    times = []
    try:
        for index in range(n):
            with engine.begin() as connection:
                added = connection.execute(_ADD, {"filename": f"change-{index}.png"}).scalar()
            with engine.begin() as connection:
                connection.execute(sa.text("DELETE FROM image WHERE id = :id"), {"id": added})
            url = f"/api/images?q={quote(SEARCHES[index % len(SEARCHES)])}"
            status, _headers, _body, ms = client.request("GET", url)
            if status != 200:
                raise RuntimeError(f"GET {url} answered {status}")
            times.append(ms)
    finally:
        engine.dispose()
    return times


def _row(what: str, times: list[float], target_ms: float, other: str = "",
         note: str = "") -> dict:
    stats = summary(times)
    return {"what": what, **stats, "other": other,
            "target": f"median < {target_ms:g} ms{note}", "ok": stats["median_ms"] < target_ms}


def measure(server) -> list[dict]:
    client = server.client()
    rows = []

    _status, headers, _body, _ms = client.request("GET", "/api/images?limit=50")
    total = int(headers["X-Total-Count"])
    rows.append(_row("list newest 50 (GET /api/images?limit=50)",
                     _timed(client, "/api/images?limit=50"), 10, f"{total:,} records"))

    # Follow the cursor 1,000 pages deep; time every page on the way.
    times, path, pages = [], "/api/images?limit=50", 0
    while path and pages < DEEP_PAGES:
        status, headers, _body, ms = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        times.append(ms)
        pages += 1
        path = _next(headers)
    deepest = _timed(client, path, 50) if path else []
    rows.append(_row(f"deep page (cursor, pages 1-{pages} of 50)", times, 10,
                     f"page {pages + 1}: median {summary(deepest)['median_ms']} ms"
                     if deepest else ""))

    search_times, counts = [], []
    for words in SEARCHES:
        url = f"/api/images?q={quote(words)}"
        _status, headers, _body, _ms = client.request("GET", url)
        counts.append(f"{words!r}: {int(headers['X-Total-Count']):,}")
        search_times += _timed(client, url, N // len(SEARCHES))
    rows.append(_row("search (GET /api/images?q=...), each asked again", search_times, 50,
                     "matches " + "; ".join(counts) + KEPT))
    rows.append(_row("search, the library changed before each request",
                     _after_each_change(server, client, N // 4), 50,
                     "a record added and deleted (untimed, through another connection) before "
                     "each: every total is counted afresh", " (as search)"))

    filtered = _timed(client, f"/api/images?q={SEARCH_WORD}&provider=replicate", N // 4)
    rows.append(_row("search + provider filter", filtered, 50, "", " (as search)"))

    rows.append(_case(lambda: _row("gallery page (GET /images)", _timed(client, "/images"), 30,
                                   "48 thumbnails"), "gallery page (GET /images)"))
    rows.append(_case(lambda: _row("gallery page with search",
                                   _timed(client, f"/images?q={SEARCH_WORD}", N // 4), 50, "",
                                   " (as search)"),
                      "gallery page with search"))
    client.close()
    return rows


def _case(measure_row, what: str) -> dict:
    """The row, or a failed row naming the error (the other cases still run)."""
    try:
        return measure_row()
    except RuntimeError as exc:
        return {"what": what, "other": f"error: {exc}", "target": "", "ok": False}


def run(server=None) -> list[dict]:
    if server is not None:
        return measure(server)
    with tempfile.TemporaryDirectory() as folder:
        database = copy_of_library(Path(folder))
        with Gunicorn(database, Path(folder) / "images") as started:
            return measure(started) + [memory_row(started)]


def main() -> None:
    print(f"machine: {machine()}")
    print(f"parameters: {LIBRARY_SIZE:,} records; {GUNICORN_SETUP} on "
          f"loopback; {N} sequential requests per case on one keep-alive connection; "
          f"deep page follows Link rel=next {DEEP_PAGES} times; searches {SEARCHES}")
    print()
    print_rows(run())


if __name__ == "__main__":
    main()
