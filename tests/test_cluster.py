"""README "Scaling out", performed on one machine: two gunicorn nodes (their own instance folders,
no shared disk) behind one nginx (deploy/nginx-cluster.conf), sharing a real PostgreSQL, Redis
and S3 server (SeaweedFS); migrations run once, as the deploy step, before the nodes start.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import files_in
from tests.deploy import ROOT, Gunicorn, Nginx, Site

pytestmark = [pytest.mark.deploy, pytest.mark.sqlite_only]  # it runs its own PostgreSQL nodes

CLUSTER_SITE = ROOT / "deploy" / "nginx-cluster.conf"
SMALL = {"prompt": "a lighthouse on a cliff", "provider": "offline", "width": 512,
         "height": 512}


@contextlib.contextmanager
def running_cluster(folder, postgres, redis_server, s3_server, database: str, **settings):
    """Two nodes on one new database and bucket, behind nginx: (sites, nodes, nginx, bucket)."""
    postgres.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)",
                     f"CREATE DATABASE {database}")
    shared = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{postgres.port}/{database}",
              "RATE_LIMIT_STORAGE_URI": redis_server.url, "RATE_LIMIT": "3 per minute",
              "SECRET_KEY": "one key for every node", **settings}
    bucket = s3_server.new_bucket()
    shared.update(s3_server.settings(bucket))
    sites = [Site(folder / name, **shared) for name in ("node-a", "node-b")]
    sites[0].migrate()  # the deploy step, once, from one machine
    nodes = [Gunicorn(site, workers=1, threads=4).start() for site in sites]
    try:
        upstreams = {"10.0.0.11:8000": nodes[0].url.split("//")[1],
                     "10.0.0.12:8000": nodes[1].url.split("//")[1]}
        with Nginx(folder / "nginx", site=CLUSTER_SITE, replacements=upstreams) as nginx:
            yield sites, nodes, nginx, bucket
    finally:
        for node in nodes:
            node.stop()
        postgres.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres, redis_server, s3_server):
    with running_cluster(tmp_path_factory.mktemp("cluster"), postgres, redis_server, s3_server,
                         "cluster") as running:
        yield running


def as_client(address: str) -> dict:
    """Headers for a request from `address` as the one trusted proxy would forward it."""
    return {"X-Forwarded-For": address}


def generate(url: str, address: str, **fields) -> requests.Response:
    return requests.post(f"{url}/api/generate", json={**SMALL, **fields},
                         headers=as_client(address), timeout=60)


def test_an_image_made_on_one_node_is_everyone_s(cluster, s3_server):
    sites, (a, b), _nginx, bucket = cluster
    made = generate(a.url, "198.51.100.1", prompt="a heron made on node A")
    assert made.status_code == 201, made.text
    record = made.json()
    image_key, thumb_key = f"imagegen/{record['filename']}", f"imagegen/thumbs/{record['id']}.webp"
    assert {image_key, thumb_key} <= set(s3_server.keys(bucket))
    for site in sites:  # on no node's disk
        assert files_in(site.images_dir) == []

    listed = requests.get(f"{b.url}/api/images", timeout=10)
    assert record["id"] in [r["id"] for r in listed.json()]
    found = requests.get(f"{b.url}/api/images", params={"q": "heron"}, timeout=10).json()
    assert [r["id"] for r in found] == [record["id"]]
    shown = requests.get(f"{b.url}/api/images/{record['id']}", timeout=10).json()
    # The URLs are presigned by each node when it answers: the same object, a signature of its own.
    assert {name: value.split("?")[0] if name.endswith("url") else value
            for name, value in shown.items()} == \
        {name: value.split("?")[0] if name.endswith("url") else value
         for name, value in record.items()}
    assert requests.get(f"{b.url}/images/{record['id']}", timeout=10).status_code == 200
    from_b = requests.get(f"{b.url}/api/images/{record['id']}", timeout=10).json()
    for url, kind in ((from_b["url"], "image/png"), (from_b["thumbnail_url"], "image/webp")):
        served = requests.get(url if url.startswith("http") else b.url + url, timeout=10)
        assert served.status_code == 200 and served.headers["Content-Type"] == kind
    assert served.content[:4] == b"RIFF"

    exported = requests.get(f"{b.url}/api/images/export", params={"ids": record["id"]},
                            timeout=30)
    assert exported.status_code == 200
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        original = requests.get(from_b["url"] if from_b["url"].startswith("http")
                                else b.url + from_b["url"], timeout=10).content
        assert archive.read(record["filename"]) == original
        assert json.loads(archive.read("metadata.jsonl"))["id"] == record["id"]

    def herons(node) -> str:
        return requests.get(f"{node.url}/api/images", params={"q": "heron"},
                            timeout=10).headers["X-Total-Count"]

    assert herons(a) == herons(a) == "1"  # counted once, then kept by A
    deleted = requests.delete(f"{b.url}/api/images/{record['id']}", timeout=10)
    assert deleted.status_code == 204
    assert requests.get(f"{a.url}/api/images/{record['id']}", timeout=10).status_code == 404
    assert herons(a) == "0"  # the total A kept went with B's delete
    assert not {image_key, thumb_key} & set(s3_server.keys(bucket))


def test_the_rate_limit_holds_across_nodes(cluster):
    _sites, (a, b), _nginx, _bucket = cluster
    address = "198.51.100.2"
    statuses = [requests.post(f"{node.url}/api/generate", json={}, headers=as_client(address),
                              timeout=30).status_code for node in (a, b, a, b)]
    assert statuses == [422, 422, 422, 429]  # counted in Redis: the 4th is refused, on either
    for node in (a, b):
        health = requests.get(f"{node.url}/health", timeout=10).json()
        assert health["database"] == "ok" and health["rate_limit_store"] == "ok"


def test_a_form_rendered_by_one_node_posts_to_another(cluster):
    _sites, (a, b), _nginx, _bucket = cluster
    with requests.Session() as browser:
        page = browser.get(f"{a.url}/", timeout=10).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        answer = browser.post(f"{b.url}/", data={
            "csrf_token": token, "prompt": "a form from A, sent to B", "negative_prompt": "",
            "provider": "offline", "model": "", "width": "512", "height": "512", "steps": "20",
            "cfg_scale": "7", "seed": ""}, headers=as_client("198.51.100.3"),
            allow_redirects=False, timeout=60)
    assert answer.status_code == 303, answer.text[:500]
    image_id = int(answer.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    assert requests.get(f"{a.url}/api/images/{image_id}", timeout=10).json()["prompt"] == \
        "a form from A, sent to B"


def test_with_one_node_stopped_nginx_answers_everything(cluster, s3_server):
    sites, (a, b), nginx, bucket = cluster
    answered = []
    with nginx.session() as session:
        # Both nodes up: requests are spread over them.
        for _ in range(4):
            assert session.get(f"{nginx.url}/api/images?limit=1", timeout=10).status_code == 200
        b.stop(signal.SIGTERM)
        try:
            for index, source in enumerate(("127.0.0.2", "127.0.0.3", "127.0.0.4")):
                status, _headers, body = nginx.raw(
                    "POST", "/api/generate",
                    body=json.dumps({**SMALL, "prompt": f"while B is down {index}"}).encode(),
                    headers={"Content-Type": "application/json"}, source=source)
                assert status == 201, body
                answered.append(int(re.search(rb'"id":\s*(\d+)', body).group(1)))
                assert session.get(f"{nginx.url}/api/images?limit=5",
                                   timeout=10).status_code == 200
                assert session.get(f"{nginx.url}/health", timeout=10).status_code == 200
        finally:
            b.start()
    # Nothing answered was lost: every record is there, through either node, with its objects.
    keys = set(s3_server.keys(bucket))
    for node in (a, b):
        for image_id in answered:
            record = requests.get(f"{node.url}/api/images/{image_id}", timeout=10)
            assert record.status_code == 200
            assert f"imagegen/{record.json()['filename']}" in keys
            assert f"imagegen/thumbs/{image_id}.webp" in keys
    assert all(files_in(site.images_dir) == [] for site in sites)


def test_with_redis_stopped_requests_are_still_served(cluster, redis_server):
    _sites, (a, b), _nginx, _bucket = cluster
    redis_server.stop()
    try:
        for node, address in ((a, "198.51.100.4"), (b, "198.51.100.5")):
            made = generate(node.url, address, prompt="made while Redis is down")
            assert made.status_code == 201, made.text
            health = requests.get(f"{node.url}/health", timeout=10)
            assert health.status_code == 200 and health.json()["rate_limit_store"] == "error"
        log = a.log() + b.log()
        assert "falling back to in-memory storage" in log and "Traceback" not in log
    finally:
        redis_server.start()
    assert requests.get(f"{a.url}/health", timeout=10).json()["rate_limit_store"] == "ok"


def test_budgets_and_idempotent_retries_hold_across_nodes(tmp_path, postgres, redis_server,
                                                           s3_server):
    """A daily budget for five images, and Idempotency-Key replays, with the requests spread over
    both nodes: one shared ledger, one shared table of keys."""
    with running_cluster(tmp_path, postgres, redis_server, s3_server, "cluster_budget",
                         PRICES="offline/abstract=0.01", DAILY_BUDGET="0.05",
                         RATE_LIMIT="1000 per minute") as (_sites, (a, b), _nginx, _bucket):
        address = "198.51.100.9"  # one caller: keys are kept per caller
        headers = {**as_client(address), "Idempotency-Key": "retry-1"}
        first = requests.post(f"{a.url}/api/generate", json={**SMALL, "prompt": "kept once"},
                              headers=headers, timeout=60)
        assert first.status_code == 201, first.text
        again = requests.post(f"{b.url}/api/generate", json={**SMALL, "prompt": "kept once"},
                              headers=headers, timeout=60)
        assert (again.status_code, again.json()) == (201, first.json())
        assert again.headers["Idempotent-Replayed"] == "true"
        other = requests.post(f"{b.url}/api/generate", json={**SMALL, "prompt": "another"},
                              headers=headers, timeout=60)
        assert (other.status_code, other.json()["error"]) == \
            (422, "idempotency_key_reused")

        # One key sent to both nodes at once: made once; the other answer is the replay or a 409.
        def same_key(node) -> requests.Response:
            return requests.post(f"{node.url}/api/generate", json={**SMALL, "prompt": "at once"},
                                 headers={**as_client(address), "Idempotency-Key": "retry-2"},
                                 timeout=60)

        with ThreadPoolExecutor(2) as pool:
            pair = list(pool.map(same_key, (a, b)))
        outcomes = sorted((answer.status_code, answer.headers.get("Idempotent-Replayed", ""),
                           answer.json().get("error", "")) for answer in pair)
        assert outcomes in ([(201, "", ""), (201, "true", "")],
                            [(201, "", ""), (409, "", "request_in_progress")]), outcomes
        assert requests.get(f"{a.url}/api/images", params={"q": "at once"},
                            timeout=10).headers["X-Total-Count"] == "1"

        # Three images of the budget are left; twelve requests race for them through both nodes.
        def one(index: int) -> requests.Response:
            node = (a, b)[index % 2]
            return requests.post(f"{node.url}/api/generate",
                                 json={**SMALL, "prompt": f"racing {index}"},
                                 headers=as_client(f"198.51.100.{20 + index}"), timeout=60)

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(one, range(12)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201] * 3 + [402] * 9, [answer.text for answer in answers]
        assert {answer.json()["error"] for answer in answers
                if answer.status_code == 402} == {"budget_exceeded"}
        for node in (a, b):
            listed = requests.get(f"{node.url}/api/images", params={"limit": 100}, timeout=10)
            assert listed.headers["X-Total-Count"] == "5"
            usage = requests.get(f"{node.url}/api/usage", timeout=10).json()
            assert usage["budget"]["spent_today"] == pytest.approx(0.05)
            assert usage["budget"]["left_today"] == pytest.approx(0)
