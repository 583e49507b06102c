"""What spending costs the app: budget and idempotency checks per generation, and usage reports.

The checks are timed in-process on a copy of the 100,000-record library (with one charge per
record): the ledger alone (a reservation and its settlement, which every generation pays), then
with DAILY_BUDGET and TOKEN_BUDGETS set and an Idempotency-Key sent (the serialised budget check,
the key claimed and its answer stored). GET /api/usage and the /usage page go through gunicorn.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_library import _timed as timed  # noqa: E402
from common import LIBRARY_SIZE, copy_of_library, machine, print_rows, summary  # noqa: E402
from server import GUNICORN_SETUP, Gunicorn  # noqa: E402

N = 300  # generations' worth of checks per case
HTTP_N = 100  # requests per usage case
TARGET_OVERHEAD_MS = 2.0
TARGET_USAGE_MS = 50.0
BODY = {"prompt": "a lighthouse on a cliff at sunset", "provider": "offline", "width": 512,
        "height": 512}


def _app(database: Path, **settings):
    for name in ("API_TOKENS", "PRICES", "DAILY_BUDGET", "TOKEN_BUDGETS"):
        os.environ[name] = ""
    from app import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}", "TESTING": True,
                       "SECRET_KEY": "benchmark", "RATELIMIT_ENABLED": False,
                       "RATELIMIT_STORAGE_URI": "memory://", **settings})


def _checks(app, keyed: bool) -> list[float]:
    """Milliseconds of what spending adds to each of N generations (no provider, no image)."""
    from flask import Response

    from app import idempotency
    from app.callers import caller
    from app.params import validate
    from app.providers.base import GenerationResult
    from app.spending import spending

    params, result, times = validate(BODY), GenerationResult(data=b"", seed=1), []
    run_id = time.time_ns()
    for index in range(N):
        key = f"bench-{run_id}-{index}"
        headers = {"Idempotency-Key": key} if keyed else {}
        with app.test_request_context("/api/generate", method="POST", json=BODY,
                                      headers=headers):
            started = time.perf_counter()

            def generation():
                with spending().reservation("api", "offline", "abstract", params) as charge:
                    charge.add(result)
                return Response("{}", 201, mimetype="application/json")

            if keyed:
                idempotency.once(caller(), idempotency.header_key(),
                                 idempotency.fingerprint(BODY), generation)
            else:
                generation()
            times.append((time.perf_counter() - started) * 1000)
    return times


def overhead_rows(folder: Path) -> list[dict]:
    database = copy_of_library(folder)
    plain = _app(database)
    capped = _app(database, DAILY_BUDGET="1000000", TOKEN_BUDGETS="api:1000000")
    ledger, checked = [], []
    for _ in range(2):  # interleaved, so both see the same machine load
        with plain.app_context():
            ledger += _checks(plain, keyed=False)
        with capped.app_context():
            checked += _checks(capped, keyed=True)
    for app in (plain, capped):
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
    ledger_ms, checked_ms = statistics.median(ledger), statistics.median(checked)
    return [
        {"what": "spending ledger per generation (reserve + settle; no budget, no key)",
         **summary(ledger), "other": "paid by every generation",
         "target": f"< {TARGET_OVERHEAD_MS:g} ms", "ok": ledger_ms < TARGET_OVERHEAD_MS},
        {"what": "budgets + Idempotency-Key per generation (DAILY_BUDGET, TOKEN_BUDGETS)",
         **summary(checked),
         "other": f"+{checked_ms - ledger_ms:.2f} ms over a generation without them (the "
                  f"ledger alone); {LIBRARY_SIZE:,} charges in the ledger",
         "target": f"median < {TARGET_OVERHEAD_MS:g} ms more than without",
         "ok": checked_ms - ledger_ms < TARGET_OVERHEAD_MS},
    ]


def usage_rows(server) -> list[dict]:
    client = server.client()
    since = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    cases = [("GET /api/usage (by day, everything)", "/api/usage"),
             ("GET /api/usage?by=model", "/api/usage?by=model"),
             ("GET /api/usage?by=token", "/api/usage?by=token"),
             ("GET /api/usage?by=provider&since=<30 days ago>",
              f"/api/usage?by=provider&since={since}"),
             ("usage page (GET /usage: 30-day chart, two tables)", "/usage")]
    rows = []
    for what, path in cases:
        times = timed(client, path, HTTP_N)
        stats = summary(times)
        rows.append({"what": what, **stats, "other": f"{LIBRARY_SIZE:,} charges",
                     "target": f"median < {TARGET_USAGE_MS:g} ms",
                     "ok": stats["median_ms"] < TARGET_USAGE_MS})
    client.close()
    return rows


def run(server=None) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        rows = overhead_rows(Path(folder))
        if server is not None:
            return rows + usage_rows(server)
        library = Path(folder) / "http"
        library.mkdir()
        with Gunicorn(copy_of_library(library), library / "images") as started:
            return rows + usage_rows(started)


def main() -> None:
    print(f"machine: {machine()}")
    print(f"parameters: {N} × 2 generations' checks per case, in-process on SQLite; "
          f"{HTTP_N} sequential usage requests per case through {GUNICORN_SETUP} over "
          f"{LIBRARY_SIZE:,} charges")
    print()
    print_rows(run())


if __name__ == "__main__":
    main()
