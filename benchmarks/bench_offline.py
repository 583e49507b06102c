"""Time the offline renderer at 1024x1024 (PNG encoding included) against its 150 ms target."""

import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import PIL  # noqa: E402

from app.providers.offline import render  # noqa: E402

N = 30
TARGET_MS = 150.0
PROMPTS = ("sunset over the ocean", "neon city at night", "misty green forest", "red fire",
           "a cat playing piano")
PARAMS = dict(negative_prompt="blurry", width=1024, height=1024, steps=30, cfg_scale=7.0)


def timings(n: int = N) -> list[float]:
    """Milliseconds of n renders, cycling through the prompts with a new seed each time."""
    render(PROMPTS[0], seed=1, **PARAMS)  # warm-up
    times = []
    for i in range(n):
        start = time.perf_counter()
        render(PROMPTS[i % len(PROMPTS)], seed=i + 1, **PARAMS)
        times.append((time.perf_counter() - start) * 1000)
    return times


def run() -> list[dict]:
    """Measure and return one result row."""
    times = sorted(timings())
    median = statistics.median(times)
    return [{
        "what": "offline renderer 1024x1024",
        "median_ms": round(median, 1),
        "min_ms": round(times[0], 1),
        "p95_ms": round(times[round(0.95 * (len(times) - 1))], 1),
        "target": f"< {TARGET_MS:.0f} ms",
        "ok": median < TARGET_MS,
    }]


def main() -> None:
    """Print the machine, the parameters and a markdown table row."""
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, "
          f"Python {platform.python_version()}, numpy {np.__version__}, Pillow {PIL.__version__}")
    print(f"parameters: {N} renders, prompts {', '.join(PROMPTS)}; {PARAMS}")
    print()
    print("| what | median ms | min ms | p95 ms | target | ok |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in run():
        print(f"| {row['what']} | {row['median_ms']} | {row['min_ms']} | {row['p95_ms']} | "
              f"{row['target']} | {'yes' if row['ok'] else 'NO'} |")


if __name__ == "__main__":
    main()
