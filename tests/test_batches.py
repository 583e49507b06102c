"""Batches: count images made at once, seed + i each, partial failures reported per image."""

import json
import re

import pytest
from PIL import Image as PILImage

from app.providers.replicate import SDXL
from tests.conftest import files_in


def generate(client, **fields):
    return client.post("/api/generate", json={"prompt": "a lighthouse", "width": 512,
                                              "height": 512, **fields})


def stored(images_dir, records) -> list[str]:
    return sorted([r["filename"] for r in records] + [f"thumbs/{r['id']}.webp" for r in records])


def test_a_batch_answers_201_with_every_image_in_order(client, images_dir):
    response = generate(client, count=3, seed=100)
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"batch_id", "images", "errors"} and body["errors"] == []
    assert re.fullmatch(r"[0-9a-f]{32}", body["batch_id"])
    assert response.headers["Location"] == f"/api/images?batch={body['batch_id']}"
    images = body["images"]
    assert [i["seed"] for i in images] == [100, 101, 102]
    assert [i["batch_index"] for i in images] == [0, 1, 2]
    assert {i["batch_id"] for i in images} == {body["batch_id"]}
    assert all(i["requested"]["count"] == 3 and i["requested"]["seed"] == 100 for i in images)
    assert files_in(images_dir) == stored(images_dir, images)
    listed = client.get(response.headers["Location"])
    assert listed.headers["X-Total-Count"] == "3"
    assert sorted(i["id"] for i in listed.get_json()) == sorted(i["id"] for i in images)
    generate(client)  # another image is not in the batch
    assert client.get(response.headers["Location"]).headers["X-Total-Count"] == "3"


def test_seed_zero_draws_the_first_and_the_rest_follow(client):
    images = generate(client, count=4).get_json()["images"]
    first = images[0]["seed"]
    assert first > 0 and [i["seed"] for i in images] == [first + i for i in range(4)]
    assert all(i["requested"]["seed"] == 0 for i in images)


def test_any_member_can_be_made_again_alone(client, images_dir):
    member = generate(client, count=3, seed=7).get_json()["images"][2]
    alone = generate(client, seed=member["seed"]).get_json()
    with PILImage.open(images_dir / member["filename"]) as a, \
            PILImage.open(images_dir / alone["filename"]) as b:
        assert a.tobytes() == b.tobytes()


def test_count_one_answers_as_a_single_image(client):
    for body in ({}, {"count": 1}):
        response = generate(client, **body)
        assert response.status_code == 201
        record = response.get_json()
        assert response.headers["Location"] == f"/api/images/{record['id']}"
        assert (record["batch_id"], record["batch_index"]) == (None, None)
        assert "count" not in record["requested"]


# --- against the fakes: concurrency, partial failure, timeout --------------------------------


@pytest.fixture
def openai_client(make_app, fake_openai):
    app = make_app(OPENAI_API_KEY=fake_openai.api_key, OPENAI_BASE_URL=fake_openai.url + "/v1")
    return app.test_client()


@pytest.fixture
def replicate_app(make_app, fake_replicate):
    return make_app(REPLICATE_API_TOKEN=fake_replicate.api_token,
                    REPLICATE_BASE_URL=fake_replicate.url, GENERATION_TIMEOUT=3)


def test_members_are_made_at_the_same_time(openai_client, fake_openai):
    fake_openai.latency = 1.0
    response = generate(openai_client, provider="openai", count=4)
    assert response.status_code == 201, response.get_json()
    spans = fake_openai.spans
    assert len(spans) == 4
    # Every request reached the fake before the first one was answered: all four overlapped.
    assert max(arrived for arrived, _ in spans) < min(answered for _, answered in spans)


def test_at_most_four_calls_at_once(openai_client, fake_openai):
    fake_openai.latency = 0.5
    response = generate(openai_client, provider="openai", count=8)
    assert len(response.get_json()["images"]) == 8
    spans = fake_openai.spans
    busiest = max(sum(1 for a, b in spans if a <= moment < b) for moment, _ in spans)
    assert busiest == 4


def test_partial_failure_keeps_what_was_made(replicate_app, fake_replicate):
    client = replicate_app.test_client()
    images_dir = replicate_app.config["IMAGES_DIR"]
    response = generate(client, provider="replicate", model=SDXL, seed=10, count=3,
                        prompt="a harbour [fault:nsfw][fault:only-seed=11]")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert [i["batch_index"] for i in body["images"]] == [0, 2]
    assert [i["seed"] for i in body["images"]] == [10, 12]
    [problem] = body["errors"]
    assert (problem["index"], problem["status"], problem["error"]) == (1, 422,
                                                                        "content_moderation")
    assert "NSFW" in problem["detail"]
    assert files_in(images_dir) == stored(images_dir, body["images"])
    assert client.get("/api/images").headers["X-Total-Count"] == "2"


def test_a_member_with_an_unusable_image_leaves_nothing(replicate_app, fake_replicate):
    client = replicate_app.test_client()
    images_dir = replicate_app.config["IMAGES_DIR"]
    response = generate(client, provider="replicate", model=SDXL, seed=30, count=2,
                        prompt="a harbour [fault:truncated][fault:only-seed=30]")
    body = response.get_json()
    assert [e["index"] for e in body["errors"]] == [0]
    assert body["errors"][0]["error"] == "upstream_error"
    assert files_in(images_dir) == stored(images_dir, body["images"])  # no temporary files


def test_when_every_member_fails_the_answer_is_the_first_error(replicate_app, fake_replicate):
    client = replicate_app.test_client()
    response = generate(client, provider="replicate", model=SDXL, count=3,
                        prompt="a harbour [fault:402]")
    assert response.status_code == 402
    assert response.get_json()["error"] == "credits_exhausted"
    assert files_in(replicate_app.config["IMAGES_DIR"]) == []
    assert client.get("/api/images").headers["X-Total-Count"] == "0"


def test_a_member_still_running_at_the_deadline_is_canceled(replicate_app, fake_replicate):
    client = replicate_app.test_client()
    response = generate(client, provider="replicate", model=SDXL, seed=20, count=3,
                        prompt="a harbour [fault:never][fault:only-seed=21]")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert [i["seed"] for i in body["images"]] == [20, 22]
    [problem] = body["errors"]
    assert (problem["index"], problem["status"], problem["error"]) == (1, 504,
                                                                        "upstream_timeout")
    [stuck] = [pid for pid, p in fake_replicate.predictions.items() if p["input"]["seed"] == 21]
    assert fake_replicate.cancels == [stuck]
    assert fake_replicate.predictions[stuck]["status"] == "canceled"


# --- the CLI and the form --------------------------------------------------------------------


def test_cli_count_goes_through_the_batch(runner, images_dir):
    result = runner.invoke(args=["generate", "a paper boat", "--width", "512", "--height", "512",
                                 "--count", "3", "--seed", "40"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seed"] for r in records] == [40, 41, 42]
    assert len({r["batch_id"] for r in records}) == 1
    assert "Generating" in result.stderr
    single = runner.invoke(args=["generate", "a paper boat", "--width", "512", "--height", "512"])
    assert "Generating" not in single.stderr and json.loads(single.stdout)["batch_id"] is None


def test_cli_count_is_limited_to_eight(runner, images_dir):
    result = runner.invoke(args=["generate", "a paper boat", "--count", "9"])
    assert result.exit_code == 1 and "count: Input should be" in result.stderr
    assert files_in(images_dir) == []


def test_cli_options_are_typed_by_the_model(make_app, fake_openai):
    app = make_app(OPENAI_API_KEY=fake_openai.api_key, OPENAI_BASE_URL=fake_openai.url + "/v1")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["generate", "a kite", "--provider", "openai", "--option",
                                 "quality=low", "--option", "background=opaque"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["options"] == {"quality": "low", "background": "opaque"}
    bad = runner.invoke(args=["generate", "a kite", "--provider", "openai", "--option",
                              "quality=best"])
    assert bad.exit_code == 1 and "options.quality" in bad.stderr
