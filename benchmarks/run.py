"""Every benchmark in one run (`make bench`): one table, and benchmarks/results.md for the README.

The HTTP rows share one gunicorn (the shipped gunicorn.conf.py, see server.py) over a copy of the
100,000-record library, so the memory row is the peak of a worker after all of that load.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_batches  # noqa: E402
import bench_generate  # noqa: E402
import bench_library  # noqa: E402
import bench_offline  # noqa: E402
import bench_postgres  # noqa: E402
import bench_spending  # noqa: E402
import bench_store  # noqa: E402
from common import LIBRARY_SIZE, copy_of_library, machine, print_rows, verdict  # noqa: E402
from server import GUNICORN_SETUP, Gunicorn, memory_row  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results.md"
COMMAND = "make bench"


def _ms(value) -> str:
    return f"{value:g} ms" if isinstance(value, int | float) else ""


def markdown(rows: list[dict], machine_line: str, provider_note: str, seconds: float) -> str:
    lines = [
        "## Performance",
        "",
        f"Measured by `{COMMAND}` (`benchmarks/run.py`; each `benchmarks/bench_*.py` also runs "
        "alone) on one machine: " + machine_line + ".",
        "",
        "| case | median | p95 | details | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        details = str(row.get("other", "")).replace("|", "/")
        lines.append(f"| {row['what']} | {_ms(row.get('median_ms'))} | {_ms(row.get('p95_ms'))} "
                     f"| {details} | {row['target']} | {verdict(row, '**no**')} |")
    lines += [
        "",
        f"HTTP cases go through {GUNICORN_SETUP} over loopback with "
        f"{LIBRARY_SIZE:,} records inserted in bulk (varied prompts, three providers, a year "
        "of timestamps); list, search and gallery timings are medians of sequential requests on "
        "one keep-alive connection. Generation cases use " + provider_note + ". The whole run "
        f"took {seconds / 60:.1f} minutes.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    started = time.perf_counter()
    machine_line = machine()
    print(f"machine: {machine_line}")
    print(f"parameters: store {bench_store.N} runs ({bench_store.N_S3} on S3 vs disk); "
          f"offline renderer {bench_offline.N} renders; "
          f"{LIBRARY_SIZE:,} records; list/search/gallery {bench_library.N} requests per case; "
          f"deep page {bench_library.DEEP_PAGES} pages; generation "
          f"{bench_generate.SEQUENTIAL} sequential then {bench_generate.CONCURRENT} from "
          f"{bench_generate.CLIENTS} clients; spending checks {bench_spending.N} × 2, usage "
          f"{bench_spending.HTTP_N} requests per case; {GUNICORN_SETUP}")
    rows = bench_store.run() + bench_store.run_s3() + bench_offline.run()
    with bench_generate.provider() as chosen, tempfile.TemporaryDirectory() as folder:
        database = copy_of_library(Path(folder))
        with Gunicorn(database, Path(folder) / "images", **chosen.env) as server:
            rows += bench_library.run(server)
            rows += bench_generate.run(server, chosen)
            rows += bench_spending.run(server)
            rows.append(memory_row(server))
    rows += bench_batches.run()
    rows += bench_postgres.run()
    seconds = time.perf_counter() - started
    print()
    print_rows(rows)
    RESULTS.write_text(markdown(rows, machine_line, chosen.note, seconds))
    print(f"\nwrote benchmarks/{RESULTS.name}; the whole run took {seconds:.0f} s")
    if any(row["ok"] is False for row in rows):
        print("some targets were missed (rows marked NO)")


if __name__ == "__main__":
    main()
