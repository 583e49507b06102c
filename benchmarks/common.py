"""What the benchmarks share: the machine line, statistics, the cached large library, HTTP."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / ".data"
PYTHON = sys.executable
LIBRARY_SIZE = 100_000


def machine() -> str:
    import PIL
    import sqlalchemy

    return (f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"SQLAlchemy {sqlalchemy.__version__}, Pillow {PIL.__version__}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


def summary(times: list[float]) -> dict:
    """Median, min and p95 of milliseconds, rounded for the table."""
    return {"median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "p95_ms": round(percentile(times, 0.95), 2)}


def print_rows(rows: list[dict]) -> None:
    print("| what | median ms | min ms | p95 ms | other | target | ok |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(table_line(row))


def verdict(row: dict, missed: str = "NO") -> str:
    """Whether a row met its target; a row with `ok` None is a reference, with no target."""
    if row["ok"] is None:
        return "reference"
    return "yes" if row["ok"] else missed


def table_line(row: dict) -> str:
    cells = [row["what"], row.get("median_ms", ""), row.get("min_ms", ""), row.get("p95_ms", ""),
             row.get("other", ""), row["target"], verdict(row)]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


# --- the large library ------------------------------------------------------------------------

SUBJECTS = ("a lighthouse on a cliff", "an old fisherman", "a red fox in the snow", "a cat",
            "a futuristic city skyline", "a dragon", "a bowl of ramen", "an astronaut",
            "a medieval castle", "a cozy cabin", "a samurai", "a hummingbird", "a vintage car",
            "a mountain lake", "a robot gardener", "a library full of books", "a koi pond",
            "a desert caravan", "a steam locomotive", "a portrait of a young woman",
            "a wolf howling at the moon", "a sailing ship in a storm", "a neon noodle bar",
            "an owl on a branch", "a waterfall in the jungle", "a knight in armour",
            "a tiny house on stilts", "a field of sunflowers", "a jellyfish", "a treehouse")
SETTINGS = ("at sunset", "at night", "in the rain", "in autumn", "under the northern lights",
            "on a foggy morning", "in a snowstorm", "at golden hour", "in spring", "underwater",
            "on mars", "in a cyberpunk alley", "in a quiet village", "by the sea")
STYLES = ("oil painting", "watercolor", "digital art", "photorealistic", "studio ghibli style",
          "cinematic lighting", "concept art", "isometric", "pixel art", "35mm photograph",
          "ukiyo-e woodblock print", "low poly", "charcoal sketch", "art nouveau",
          "unreal engine render", "matte painting", "volumetric light", "bokeh",
          "highly detailed", "8k", "trending on artstation", "soft pastel colors",
          "dramatic shadows", "wide angle", "macro photography", "vibrant colors",
          "muted palette", "by greg rutkowski", "octane render", "sharp focus")
NEGATIVES = ("blurry", "low quality", "watermark", "text", "extra fingers", "deformed",
             "jpeg artifacts", "oversaturated", "cropped", "bad anatomy", "signature")
PROVIDERS = (("stability", ("sd3.5-large", "sd3.5-medium", "sdxl-1.0"), 0.45),
             ("replicate", ("stability-ai/sdxl:39ed52f2a78e", "black-forest-labs/flux-schnell"),
              0.30),
             ("offline", ("abstract",), 0.25))
SIZES = ((1024, 1024), (1216, 832), (832, 1216), (1344, 768), (512, 512))
SEARCH_WORD = "lighthouse"


def _prompt(rng: random.Random) -> str:
    words = [rng.choice(SUBJECTS), rng.choice(SETTINGS)]
    words += rng.sample(STYLES, rng.randint(0, 12))
    if rng.random() < 0.2:  # some people write paragraphs
        words += [f"{rng.choice(SUBJECTS)} {rng.choice(SETTINGS)}"
                  for _ in range(rng.randint(3, 10))]
    return ", ".join(words)


def _rows(count: int, seed: int = 1):
    rng = random.Random(seed)
    start = datetime(2025, 11, 1, tzinfo=UTC)
    stamps = sorted(rng.uniform(0, 365 * 86400) for _ in range(count))
    names = [p[0] for p in PROVIDERS]
    weights = [p[2] for p in PROVIDERS]
    models = {p[0]: p[1] for p in PROVIDERS}
    for index, offset in enumerate(stamps, start=1):
        provider = rng.choices(names, weights)[0]
        model = rng.choice(models[provider])
        width, height = rng.choice(SIZES)
        created = (start + timedelta(seconds=offset)).replace(tzinfo=None)
        negative = ", ".join(rng.sample(NEGATIVES, rng.randint(0, 5)))
        steps, cfg, seed_value = rng.choice((20, 25, 30, 40)), rng.choice((4.5, 7.0, 8.0)), \
            rng.randint(1, 4294967294)
        requested = {"provider": provider, "model": model, "width": width, "height": height,
                     "steps": steps, "cfg_scale": cfg, "seed": 0}
        fmt = "png" if provider != "replicate" else rng.choice(("png", "webp"))
        yield (f"{created:%Y%m%d_%H%M%S}_{index}.{fmt}", _prompt(rng), negative, provider, model,
               seed_value, width, height, steps, cfg, json.dumps(requested),
               json.dumps(["steps"] if model.startswith("sd3") else []), 0, fmt,
               rng.randint(300_000, 2_500_000), rng.randint(3_000, 25_000),
               created.isoformat(sep=" ", timespec="microseconds"))


TOKEN_NAMES = ("alice", "ci", "web", "cli")
PRICE = {"stability": 0.065, "replicate": 0.003, "offline": 0.0}


def _charges(connection: sqlite3.Connection) -> None:
    """One settled charge per record (the year moved to end today), their daily totals, and each
    record's cost."""
    shift = (datetime.now(UTC).date() - datetime(2026, 11, 1, tzinfo=UTC).date()).days
    price = " ".join(f"WHEN '{name}' THEN {value}" for name, value in PRICE.items())
    by = " ".join(f"WHEN {n} THEN '{name}'" for n, name in enumerate(TOKEN_NAMES))
    moved = f"datetime(created_at, '{shift:+d} days')"
    connection.execute(
        "INSERT INTO charge (day, created_at, created_by, provider, model, images, amount,"
        f" settled, expires_at) SELECT substr({moved}, 1, 10), {moved},"
        f" CASE id % {len(TOKEN_NAMES)} {by} END, provider, model, 1,"
        f" CASE provider {price} END, 1, {moved} FROM image")
    connection.execute(
        "INSERT INTO charge_day (day, provider, model, created_by, images, amount)"
        " SELECT day, provider, model, created_by, sum(images), sum(amount) FROM charge"
        " GROUP BY day, provider, model, created_by")
    connection.execute(
        f"UPDATE image SET cost = CASE provider {price} END,"
        f" created_by = CASE id % {len(TOKEN_NAMES)} {by} END")


def _schema_key() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def flask_env(database: Path, **extra: str) -> dict:
    # Set (even empty) here, a developer's .env cannot change them: no API tokens, no keys.
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "SECRET_KEY": "benchmark",
           "RATE_LIMIT": "1000000 per minute", "API_TOKENS": "", "STABILITY_API_KEY": "",
           "REPLICATE_API_TOKEN": "", "DEFAULT_PROVIDER": "", "PYTHONPATH": str(ROOT)}
    env.update(extra)
    return env


def library(count: int = LIBRARY_SIZE) -> Path:
    """A database of `count` records at the newest migration, built once and cached."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"library-{count}-{_schema_key()}.db"
    if path.exists():
        return path
    for stale in DATA.glob(f"library-{count}-*.db*"):
        stale.unlink()
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run([PYTHON, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                   env=flask_env(building), check=True, capture_output=True)
    connection = sqlite3.connect(building)
    with connection:
        connection.executemany(
            "INSERT INTO image (filename, prompt, negative_prompt, provider, model, seed, width,"
            " height, steps, cfg_scale, requested, ignored, content_filtered, format, file_size,"
            " duration_ms, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            _rows(count))
        _charges(connection)
    connection.execute("ANALYZE")
    connection.execute("VACUUM")
    connection.close()
    building.rename(path)
    print(f"built {path.name} ({count} records) in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return path


def copy_of_library(folder: Path, count: int = LIBRARY_SIZE) -> Path:
    target = folder / "library.db"
    shutil.copy(library(count), target)
    return target


# --- HTTP over loopback ---------------------------------------------------------------------

class Client:
    """One keep-alive connection; request() returns (status, headers, body, milliseconds)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.connection = http.client.HTTPConnection(host, port, timeout=120)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, http.client.HTTPMessage, bytes, float]:
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self.connection.request(method, path, body=body, headers=headers or {})
                response = self.connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                # gunicorn closes idle keep-alive connections; reconnect once
                self.connection.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt == 2:
                    raise
                continue
            return response.status, response.headers, data, (time.perf_counter() - started) * 1000
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()
