"""PostgreSQL: reading a 1,000,000-record library, and generation through two nodes behind nginx.

The library is loaded once with COPY (at the revision before 0003, which then adds the search
column and builds its GIN index over the loaded rows, as a deployment migrating an existing
library does)
and kept with its PostgreSQL data folder under benchmarks/.data/. The reading cases are the
same as bench_library's, through one gunicorn. The throughput case runs the same concurrent
generations through nginx (deploy/nginx-cluster.conf) in front of one node and then two, all on
one PostgreSQL and one Redis. Where PostgreSQL is not installed the rows say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_generate  # noqa: E402
import bench_library  # noqa: E402
from common import DATA, PYTHON, ROOT, _rows, _schema_key, flask_env, print_rows  # noqa: E402
from server import Gunicorn  # noqa: E402

RECORDS = int(os.environ.get("BENCH_POSTGRES_RECORDS", "1000000"))
COLUMNS = ("filename, prompt, negative_prompt, provider, model, seed, width, height, steps, "
           "cfg_scale, requested, ignored, content_filtered, format, file_size, duration_ms, "
           "created_at")
THROUGHPUT_REQUESTS = 300
# Room for building the GIN index in one go over a million rows.
SERVER_SETTINGS = "-c maintenance_work_mem=512MB -c shared_buffers=256MB -c work_mem=16MB"


def missing() -> str | None:
    """Why PostgreSQL cannot run here, or None."""
    from tests.servers import postgres_bin

    bindir = postgres_bin()
    if bindir is None or not (bindir / "initdb").exists():
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no `postgres` user to run PostgreSQL as"
    return None


def _flask(url: str, *args: str) -> None:
    env = flask_env(Path("unused.db"), DATABASE_URL=url)
    subprocess.run([PYTHON, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=3600)


def library_server():
    """The PostgreSQL server holding the loaded library, started (loaded the first time)."""
    from tests.servers import PostgresServer

    folder = DATA / f"postgres-{RECORDS}-{_schema_key()}"
    for stale in DATA.glob(f"postgres-{RECORDS}-*"):
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    server = PostgresServer(folder, settings=SERVER_SETTINGS)
    loaded = folder / "data" / "imagegen-loaded"
    if (folder / "data").exists() and not loaded.exists():
        shutil.rmtree(folder / "data")  # a load that did not finish
    server.start()
    if not loaded.exists():
        started = time.perf_counter()
        server.execute("CREATE DATABASE library")
        url = server.url("library")
        _flask(url, "db", "upgrade", "0004")  # the revision 0003 follows
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=server.port, user="postgres",
                             dbname="library") as connection, connection.cursor() as cursor:
            with cursor.copy(f"COPY image ({COLUMNS}) FROM STDIN") as copy:
                for row in _rows(RECORDS):
                    copy.write_row(row)
        _flask(url, "db", "upgrade")
        server.execute("VACUUM ANALYZE")
        with psycopg.connect(host="127.0.0.1", port=server.port, user="postgres",
                             dbname="library", autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE image")
        subprocess.run([*server.as_owner, "touch", str(loaded)], check=True)
        print(f"loaded {RECORDS:,} records into PostgreSQL in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return server


def reading_rows(server) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder, Gunicorn(
            Path(folder) / "unused.db", Path(folder) / "images",
            DATABASE_URL=server.url("library")) as gunicorn:
        rows = bench_library.measure(gunicorn)
    for row in rows:
        row["what"] = f"PostgreSQL, {RECORDS:,} records: {row['what']}"
    return rows


def throughput_rows(server) -> list[dict]:
    """Requests per second through nginx to one node, then to two, same clients and provider."""
    from tests.deploy import Gunicorn as Node
    from tests.deploy import Nginx, Site
    from tests.servers import RedisServer

    if shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
        return [{"what": "generation throughput, two nodes vs one", "other": "nginx not installed",
                 "target": "report the ratio", "ok": True}]
    redis = RedisServer().start() if shutil.which("redis-server") else None
    rates = {}
    try:
        with bench_generate.provider() as chosen, tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            server.execute("DROP DATABASE IF EXISTS throughput WITH (FORCE)",
                           "CREATE DATABASE throughput")
            shared = {"DATABASE_URL": server.url("throughput"), "SECRET_KEY": "benchmark",
                      "RATE_LIMIT": "1000000 per minute", **chosen.env}
            if redis is not None:
                shared["RATE_LIMIT_STORAGE_URI"] = redis.url
            sites = [Site(folder / f"node-{i}", **shared) for i in range(2)]
            sites[0].migrate()
            nodes = [Node(site, workers=2, threads=8).start() for site in sites]
            try:
                for count in (1, 2):
                    # The flood guard (1 request/s per address) would measure itself.
                    upstreams = {"10.0.0.11:8000": nodes[0].url.split("//")[1],
                                 "10.0.0.12:8000": nodes[count - 1].url.split("//")[1],
                                 "limit_req zone=imagegen_generation burst=20 nodelay;": ""}
                    with Nginx(folder / f"nginx-{count}", site=ROOT / "deploy" /
                               "nginx-cluster.conf", replacements=upstreams) as nginx:
                        rates[count] = _rate(nginx, chosen)
            finally:
                for node in nodes:
                    node.stop()
            server.execute("DROP DATABASE IF EXISTS throughput WITH (FORCE)")
    finally:
        if redis is not None:
            redis.close()
    (one, one_p95, one_errors), (two, two_p95, two_errors) = rates[1], rates[2]
    return [{
        "what": "generation throughput through nginx: two nodes vs one (PostgreSQL, Redis)",
        "other": f"one node {one:.1f} requests/s (p95 {one_p95:.0f} ms), two nodes {two:.1f} "
                 f"requests/s (p95 {two_p95:.0f} ms): ratio {two / one:.2f}; "
                 f"{bench_generate.CLIENTS} clients, {THROUGHPUT_REQUESTS} requests each run, "
                 f"errors {one_errors + two_errors}; every node on this one machine's "
                 f"{os.cpu_count()} cores",
        "target": "report the ratio; no errors", "ok": one_errors + two_errors == 0,
    }]


def _rate(nginx, chosen) -> tuple[float, float, int]:
    """Requests/s, p95 ms and errors of concurrent generations from CLIENTS threads."""
    import threading

    from common import percentile

    times, errors, lock = [], [0], threading.Lock()
    counter = iter(range(THROUGHPUT_REQUESTS))

    def client(index: int) -> None:
        with nginx.session() as session:
            session.headers["Content-Type"] = "application/json"
            for number in counter:
                started = time.perf_counter()
                response = session.post(f"{nginx.url}/api/generate", data=chosen.body(number),
                                        timeout=120)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    times.append(elapsed)
                    if response.status_code != 201:
                        errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(bench_generate.CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return len(times) / seconds, percentile(times, 0.95), errors[0]


def run() -> list[dict]:
    reason = missing()
    if reason:
        return [{"what": f"PostgreSQL cases ({RECORDS:,} records; two nodes vs one)",
                 "other": f"skipped: {reason}", "target": "", "ok": True}]
    server = library_server()
    try:
        return reading_rows(server) + throughput_rows(server)
    finally:
        server.stop()


def main() -> None:
    print(f"parameters: {RECORDS:,} records in PostgreSQL; {bench_library.N} requests per "
          f"reading case; {THROUGHPUT_REQUESTS} generations from {bench_generate.CLIENTS} "
          "clients through nginx to one node, then two")
    print()
    print_rows(run())


if __name__ == "__main__":
    main()
