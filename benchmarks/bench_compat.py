"""The compatible routes against POST /api/generate for the same image: whole requests through
gunicorn, the routes interleaved so that each sees the same conditions; the ratio of medians.

The compatible answers carry the image itself in base64 (or its URL), the JSON API only the
record: the encoding is part of what is measured.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_generate  # noqa: E402
from common import copy_of_library, machine, print_rows, summary  # noqa: E402
from server import Gunicorn  # noqa: E402

N = 100
TARGET = 1.15
JSON = {"Content-Type": "application/json"}


def routes(chosen: bench_generate.Provider) -> dict[str, tuple[str, int, callable]]:
    """Each route: its path, the status of a success, and the body of request i."""
    model_id = "offline" if chosen.name == "offline" else f"{chosen.name}/{bench_generate.MODEL}"

    def api(index: int) -> dict:
        return json.loads(chosen.body(index))

    def openai(response_format: str):
        def body(index: int) -> dict:
            return {"prompt": api(index)["prompt"], "model": model_id, "size": "1024x1024",
                    "response_format": response_format}
        return body

    def a1111(index: int) -> dict:
        fields = api(index)
        return {"prompt": fields["prompt"], "negative_prompt": fields["negative_prompt"],
                "seed": fields["seed"], "width": 1024, "height": 1024,
                "steps": fields.get("steps", 30), "cfg_scale": fields.get("cfg_scale", 7.0),
                "override_settings": {"sd_model_checkpoint": model_id}}

    def api_random_seed(index: int) -> dict:
        return {**api(index), "seed": 0}  # as OpenAI's requests, which carry no seed

    return {
        "POST /api/generate": ("/api/generate", 201, api),
        "POST /api/generate (seed 0)": ("/api/generate", 201, api_random_seed),
        "POST /v1/images/generations (b64_json)": ("/v1/images/generations", 200,
                                                   openai("b64_json")),
        "POST /v1/images/generations (url)": ("/v1/images/generations", 200, openai("url")),
        "POST /sdapi/v1/txt2img": ("/sdapi/v1/txt2img", 200, a1111),
    }


def measure(server, chosen: bench_generate.Provider) -> list[dict]:
    client = server.client()
    table = routes(chosen)
    times: dict[str, list[float]] = {name: [] for name in table}
    for index in range(-3, N):  # three rounds of warming up, not counted
        for name, (path, expected, body) in table.items():
            status, _headers, data, ms = client.request(
                "POST", path, json.dumps(body(index % 4)).encode(), JSON)
            if status != expected:
                raise RuntimeError(f"{name} answered {status}: {data[:300]!r}")
            if index >= 0:
                times[name].append(ms)
    client.close()
    rows = []
    for name, measured in times.items():
        if name.startswith("POST /api/"):
            continue
        # The same image: a seeded one for A1111, a random seed for OpenAI (which takes none).
        baseline = ("POST /api/generate (seed 0)" if name.startswith("POST /v1/")
                    else "POST /api/generate")
        base = statistics.median(times[baseline])
        ratio = statistics.median(measured) / base
        rows.append({"what": f"{name} vs {baseline}", **summary(measured),
                     "other": f"{ratio:.2f}× ({baseline} median {base:.1f} ms; {N} each, "
                              f"interleaved; {chosen.name})",
                     "target": f"≤ {TARGET:g}×", "ok": ratio <= TARGET})
    return rows


def run(server=None, chosen: bench_generate.Provider | None = None) -> list[dict]:
    if server is not None:
        return measure(server, chosen)
    with bench_generate.provider() as chosen, tempfile.TemporaryDirectory() as folder:
        database = copy_of_library(Path(folder))
        with Gunicorn(database, Path(folder) / "images", **chosen.env) as started:
            return measure(started, chosen)


def main() -> None:
    print(f"machine: {machine()}")
    print(f"parameters: gunicorn -k gthread --threads 8 -w 2 on loopback; {N} requests per "
          "route, interleaved, one keep-alive connection; 1024x1024 images")
    print()
    print_rows(run())


if __name__ == "__main__":
    main()
