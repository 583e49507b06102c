"""What generation costs: prices, the cost on each record, named tokens, budgets and usage."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from app.extensions import db
from app.models import Charge
from app.spending import dollars, openai_cost
from config import ConfigError
from tests.deploy import ROOT

OFFLINE = {"prompt": "a quiet harbour at dawn", "provider": "offline", "width": 512,
           "height": 512}


def post(client, token=None, **fields):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/generate", json={**OFFLINE, **fields}, headers=headers)


def prices_of(client, provider: str, headers=None) -> dict:
    listing = client.get("/api/providers", headers=headers or {}).get_json()
    entry = next(p for p in listing if p["name"] == provider)
    return {model["name"]: model["price"] for model in entry["models"]} | {
        "_balance": entry.get("balance")}


# --- the price table and the cost on each record ------------------------------------------------

def test_offline_images_are_free_and_say_so(client):
    record = post(client).get_json()
    assert record["cost"] == 0 and record["cost_detail"] == "free (rendered offline)"
    assert record["created_by"] == "api"
    assert prices_of(client, "offline")["abstract"] == {
        "per_image": 0.0, "basis": "free", "note": "Rendered here: free."}


@pytest.mark.parametrize(("model", "steps", "credits"), [
    ("sd3.5-large", 30, 6.5), ("sd3.5-large-turbo", 30, 4), ("sd3.5-medium", 30, 3.5),
    ("sd3.5-flash", 30, 2.5), ("core", 30, 3), ("ultra", 30, 8), ("sdxl-1.0", 30, 0.9),
    ("sdxl-1.0", 50, 1.5),
])
def test_stability_costs_its_credits(make_app, fake_stability, model, steps, credits):
    client = make_app(STABILITY_API_KEY=fake_stability.api_key,
                      STABILITY_BASE_URL=fake_stability.url).test_client()
    cfg = 4.0 if model.startswith("sd3") else 7.0
    response = client.post("/api/generate", json={
        "prompt": "a lighthouse", "provider": "stability", "model": model, "steps": steps,
        "cfg_scale": cfg})
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    assert record["cost"] == pytest.approx(credits * 0.01)
    assert record["cost_detail"] == f"{credits:g} credits"
    price = prices_of(client, "stability")[model]
    assert price["basis"] == "credits" and f"{0.9 if model == 'sdxl-1.0' else credits:g} credits" \
        in price["note"]


def test_stability_balance_is_listed_and_on_the_form(make_app, fake_stability):
    fake_stability.credits = 42.5
    client = make_app(STABILITY_API_KEY=fake_stability.api_key,
                      STABILITY_BASE_URL=fake_stability.url).test_client()
    assert prices_of(client, "stability")["_balance"] == 42.5
    assert "Stability AI balance: 42.5 credits" in client.get("/").get_data(as_text=True)
    balance_calls = [r for r in fake_stability.requests if r.path == "/v1/user/balance"]
    assert len(balance_calls) == 1  # the second look came from the cache


def test_no_balance_without_a_readable_account(make_app, fake_stability):
    client = make_app(STABILITY_API_KEY="sk-wrong", STABILITY_BASE_URL=fake_stability.url
                      ).test_client()
    assert prices_of(client, "stability")["_balance"] is None
    assert "balance:" not in client.get("/").get_data(as_text=True)


def test_replicate_official_and_time_billed_models(make_app, fake_replicate):
    client = make_app(REPLICATE_API_TOKEN=fake_replicate.api_token,
                      REPLICATE_BASE_URL=fake_replicate.url).test_client()
    flux = client.post("/api/generate", json={
        "prompt": "a fox", "provider": "replicate", "model": "black-forest-labs/flux-schnell"})
    assert flux.status_code == 201, flux.get_json()
    assert (flux.get_json()["cost"], flux.get_json()["cost_detail"]) == (0.003, "$0.003 per image")
    sdxl = client.post("/api/generate", json={"prompt": "a fox", "provider": "replicate",
                                              "width": 512, "height": 512})
    assert sdxl.status_code == 201, sdxl.get_json()
    assert sdxl.get_json()["cost"] == 0.01
    assert sdxl.get_json()["cost_detail"] == "$0.01 per image (estimate; billed by time)"
    prices = prices_of(client, "replicate")
    assert prices["black-forest-labs/flux-schnell"]["basis"] == "per_image"
    sdxl_price = next(v for k, v in prices.items() if k.startswith("stability-ai/sdxl"))
    assert sdxl_price["basis"] == "time" and sdxl_price["note"].startswith("Estimate")


@pytest.mark.parametrize(("quality", "output"), [("low", 272), ("high", 4160), (None, 1056)])
def test_openai_costs_the_tokens_its_answer_reports(make_app, fake_openai, quality, output):
    client = make_app(OPENAI_API_KEY=fake_openai.api_key,
                      OPENAI_BASE_URL=fake_openai.url + "/v1").test_client()
    prompt = "a lighthouse at dusk, oil painting"
    body = {"prompt": prompt, "provider": "openai", "width": 1024, "height": 1024}
    if quality:
        body["options"] = {"quality": quality}
    response = client.post("/api/generate", json=body)
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    text = len(prompt) // 4  # what the fake counts as the prompt's tokens
    assert record["cost"] == pytest.approx((text * 5 + output * 30) / 1e6)
    assert record["cost_detail"] == f"{output} output tokens, {text} text input tokens"
    price = prices_of(client, "openai")["gpt-image-2"]
    assert price["basis"] == "tokens" and price["per_image"] == pytest.approx(0.189, abs=0.002)


def test_a_batch_is_refused_whole_when_its_estimate_does_not_fit(make_app):
    client = make_app(PRICES="offline/abstract=0.1", DAILY_BUDGET="0.35").test_client()
    refused = post(client, count=4)
    assert refused.status_code == 402 and "estimated at $0.40" in refused.get_json()["detail"]
    made = post(client, count=3)
    assert made.status_code == 201 and len(made.get_json()["images"]) == 3
    assert [image["cost"] for image in made.get_json()["images"]] == [0.1, 0.1, 0.1]
    assert client.get("/api/usage").get_json()["total"] == {"images": 3, "cost": 0.3}


def test_openai_cost_comes_from_the_answers_token_usage():
    # With image input tokens too (the provider's answers for edits would carry them).
    usage = {"input_tokens": 50, "input_tokens_details": {"text_tokens": 40, "image_tokens": 10},
             "output_tokens": 1056}
    cost, detail = openai_cost(usage)
    assert cost == pytest.approx((40 * 5 + 10 * 8 + 1056 * 30) / 1e6)
    assert detail == "1056 output tokens, 40 text + 10 image input tokens"
    assert openai_cost({"input_tokens": 12, "output_tokens": 100})[0] == pytest.approx(
        (12 * 5 + 100 * 30) / 1e6)


def test_openai_price_and_estimate_follow_quality_and_size(app):
    from app.params import GenerationParams

    with app.app_context():
        ledger = app.extensions["spending"]
        price = ledger.price("openai", "gpt-image-2")
        assert price.basis == "tokens" and "$30 per 1M" in price.note
        low = GenerationParams(prompt="a cat", options={"quality": "low"})
        high = GenerationParams(prompt="a cat", options={"quality": "high"})
        assert ledger.estimate("openai", "gpt-image-2", low) == pytest.approx(0.0195, abs=0.001)
        assert ledger.estimate("openai", "gpt-image-2", high) == pytest.approx(0.189, abs=0.002)
        assert ledger.estimate("openai", "gpt-image-2", high, count=3) == pytest.approx(
            3 * ledger.estimate("openai", "gpt-image-2", high))


def test_prices_overrides_the_table(make_app, fake_replicate):
    client = make_app(PRICES="offline/abstract=0.25, replicate/stability-ai/sdxl=0.02",
                      REPLICATE_API_TOKEN=fake_replicate.api_token,
                      REPLICATE_BASE_URL=fake_replicate.url).test_client()
    record = post(client).get_json()
    assert (record["cost"], record["cost_detail"]) == (0.25, "$0.25 per image")
    assert prices_of(client, "offline")["abstract"]["basis"] == "per_image"
    sdxl = next(v for k, v in prices_of(client, "replicate").items()
                if k.startswith("stability-ai/sdxl"))  # a price without the version matches
    assert sdxl["per_image"] == 0.02 and "PRICES" in sdxl["note"]


def test_the_image_page_shows_cost_and_author(make_app):
    client = make_app(PRICES="offline/abstract=0.065", API_TOKENS=["alice:ta"]).test_client()
    record = post(client, "ta").get_json()
    page = client.get(f"/images/{record['id']}").get_data(as_text=True)
    assert '<td colspan="2" id="cost">$0.065 <span class="muted">($0.065 per image)</span>' in page
    assert '<td colspan="2" id="created-by">alice</td>' in page


def test_the_form_shows_the_estimate(make_app):
    page = make_app(PRICES="offline/abstract=0.065").test_client().get("/").get_data(as_text=True)
    assert 'Estimated cost: <strong id="cost-value">$0.065</strong>' in page


def test_dollars_reads_naturally():
    assert [dollars(x) for x in (0, 0.003, 0.065, 0.1, 1, 12.5)] == [
        "$0.00", "$0.003", "$0.065", "$0.10", "$1.00", "$12.50"]


# --- named tokens and created_by -----------------------------------------------------------------

def test_created_by_names_the_token_never_the_token_itself(make_app, caplog):
    client = make_app(API_TOKENS=["alice:secret-alice-1", "bare-token-2", "ci:secret-ci-3"]
                      ).test_client()
    caplog.set_level("DEBUG")
    by = [post(client, token).get_json()["created_by"]
          for token in ("secret-alice-1", "bare-token-2", "secret-ci-3")]
    assert by == ["alice", "token-2", "ci"]
    assert post(client, "alice").status_code == 401  # a name is not a token
    usage = client.get("/api/usage?by=token", headers={"Authorization": "Bearer bare-token-2"})
    assert {g["key"] for g in usage.get_json()["groups"]} == {"alice", "token-2", "ci"}
    everything = usage.get_data(as_text=True) + caplog.text + json.dumps(
        client.get("/api/images", headers={"Authorization": "Bearer bare-token-2"}).get_json())
    for secret in ("secret-alice-1", "bare-token-2", "secret-ci-3"):
        assert secret not in everything


def test_web_and_cli_are_named(app, client):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["generate", "a cat", "--provider", "offline", "--width", "512",
                                 "--height", "512"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["created_by"] == "cli"
    with app.app_context():
        assert db.session.scalars(db.select(Charge.created_by)).all() == ["cli"]


# --- settings that stop the app ----------------------------------------------------------------

@pytest.mark.parametrize(("setting", "value"), [
    ("PRICES", "offline/abstract"), ("PRICES", "abstract=0.1"), ("PRICES", "offline/abstract=x"),
    ("PRICES", "nobody/model=1"), ("PRICES", "offline/abstract=-1"),
    ("TOKEN_BUDGETS", "alice"), ("TOKEN_BUDGETS", "alice:lots"), ("TOKEN_BUDGETS", "bob:1"),
    ("TOKEN_BUDGETS", "alice:1,alice:2"), ("DAILY_BUDGET", "five"), ("DAILY_BUDGET", "-1"),
    ("API_TOKENS", ":secret"), ("API_TOKENS", "alice:"), ("API_TOKENS", "a:x,a:y"),
    ("API_TOKENS", "a:x,b:x"), ("API_TOKENS", "bad name:x"),
])
def test_malformed_settings_stop_the_app_naming_them(make_app, setting, value):
    tokens = ["alice:secret"] if setting != "API_TOKENS" else value.split(",")
    with pytest.raises(ConfigError, match=f"^{setting}: "):
        make_app(API_TOKENS=tokens, **({} if setting == "API_TOKENS" else {setting: value}))


def test_a_malformed_setting_stops_the_real_app_at_start(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
           "TOKEN_BUDGETS": "nobody:5", "API_TOKENS": "alice:sek-ret-value"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "routes"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "TOKEN_BUDGETS: 'nobody' is not the name of a token in API_TOKENS" in result.stderr
    assert "sek-ret-value" not in result.stderr + result.stdout


# --- budgets ------------------------------------------------------------------------------------

def test_daily_budget_may_be_reached_exactly_then_refuses_before_any_provider_call(make_app):
    app = make_app(PRICES="offline/abstract=0.1", DAILY_BUDGET="0.3")
    client = app.test_client()
    assert [post(client).status_code for _ in range(3)] == [201, 201, 201]  # 0.1 × 3 == 0.3
    refused = post(client)
    assert refused.status_code == 402
    body = refused.get_json()
    assert body["error"] == "budget_exceeded"
    assert "$0.10" in body["detail"] and "$0.00 left" in body["detail"]
    assert "DAILY_BUDGET" in body["detail"]
    assert client.get("/api/images").headers["X-Total-Count"] == "3"
    with app.app_context():  # the refused request left no reservation behind
        assert db.session.scalar(db.select(db.func.count(Charge.id))) == 3
    budget = client.get("/api/usage").get_json()["budget"]
    assert budget == {"daily": 0.3, "spent_today": 0.3, "left_today": 0.0}


def test_budget_message_says_what_is_left(make_app):
    client = make_app(PRICES="offline/abstract=0.4", DAILY_BUDGET="1").test_client()
    assert post(client).status_code == 201 and post(client).status_code == 201
    refused = post(client).get_json()
    assert "estimated at $0.40" in refused["detail"] and "$0.20 left" in refused["detail"]


def test_token_budgets_cap_each_token(make_app):
    client = make_app(API_TOKENS=["alice:ta", "bob:tb"], TOKEN_BUDGETS="alice:0.2",
                      PRICES="offline/abstract=0.1").test_client()
    assert [post(client, "ta").status_code for _ in range(3)] == [201, 201, 402]
    assert "token 'alice'" in post(client, "ta").get_json()["detail"]
    assert [post(client, "tb").status_code for _ in range(3)] == [201, 201, 201]  # no cap
    tokens = client.get("/api/usage", headers={"Authorization": "Bearer tb"}).get_json()[
        "budget"]["tokens"]
    assert tokens == [{"name": "alice", "daily": 0.2, "spent_today": 0.2, "left_today": 0.0}]


def test_the_web_form_is_refused_with_the_budget_message(make_app):
    import re

    app = make_app(PRICES="offline/abstract=1", DAILY_BUDGET="0.5")
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    key = re.search(r'name="idempotency_key"[^>]*value="([^"]+)"', page)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    response = client.post("/", data={"prompt": "a cat", "provider": "offline", "width": 512,
                                      "height": 512, "steps": 30, "cfg_scale": 7,
                                      "csrf_token": csrf.group(1),
                                      "idempotency_key": key.group(1)})
    assert response.status_code == 402
    text = response.get_data(as_text=True)
    assert "Today&#39;s budget does not cover this request" in text
    assert "$0.50 left" in text


def test_a_failed_generation_releases_its_reservation(make_app, fake_stability):
    app = make_app(STABILITY_API_KEY="sk-wrong", STABILITY_BASE_URL=fake_stability.url,
                   DAILY_BUDGET="0.07")
    client = app.test_client()
    for _ in range(3):  # each holds $0.065 while it runs, then gives it back
        response = client.post("/api/generate", json={"prompt": "x", "provider": "stability"})
        assert response.status_code == 502
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Charge.id))) == 0
    assert client.get("/api/usage").get_json()["budget"]["left_today"] == 0.07


def test_a_dead_requests_reservation_stops_counting_when_it_expires(make_app):
    app = make_app(PRICES="offline/abstract=0.1", DAILY_BUDGET="0.1")
    now = datetime.now(UTC)
    with app.app_context():
        db.session.add(Charge(day=now.date().isoformat(), created_at=now, created_by="api",
                              provider="offline", model="abstract", images=1, amount=0.1,
                              settled=False, expires_at=now + timedelta(minutes=5)))
        db.session.commit()
    client = app.test_client()
    assert post(client).status_code == 402  # held by a request still (as far as we know) running
    with app.app_context():
        db.session.execute(db.update(Charge).values(expires_at=now - timedelta(seconds=1)))
        db.session.commit()
    assert post(client).status_code == 201


# --- usage --------------------------------------------------------------------------------------

def spent(app, when: datetime, provider: str, model: str, by: str, amount: float,
          images: int = 1) -> None:
    """A settled charge in the past, as a generation then would have left it."""
    from app.spending import _add_to_day

    row = dict(day=when.date().isoformat(), provider=provider, model=model, created_by=by,
               images=images, amount=amount)
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(db.insert(Charge).values(**row, created_at=when, settled=True,
                                                    expires_at=when))
        _add_to_day(connection, row)


@pytest.fixture
def history(app):
    """Three days of spending by two tokens on three providers."""
    day1 = datetime(2026, 11, 1, 9, tzinfo=UTC)
    spent(app, day1, "stability", "sd3.5-large", "alice", 0.065)
    spent(app, day1, "replicate", "black-forest-labs/flux-schnell", "bob", 0.006, 2)
    spent(app, day1 + timedelta(days=1), "stability", "sd3.5-large", "alice", 0.13, 2)
    spent(app, day1 + timedelta(days=2, hours=14), "offline", "abstract", "web", 0.0)
    return day1


def test_usage_by_every_grouping(client, history):
    by_day = client.get("/api/usage").get_json()
    assert by_day["total"] == {"images": 6, "cost": 0.201}
    assert by_day["groups"] == [{"key": "2026-11-01", "images": 3, "cost": 0.071},
                                {"key": "2026-11-02", "images": 2, "cost": 0.13},
                                {"key": "2026-11-03", "images": 1, "cost": 0.0}]
    assert by_day["budget"] == {"daily": None, "spent_today": 0.0, "left_today": None}
    assert client.get("/api/usage?by=provider").get_json()["groups"] == [
        {"key": "stability", "images": 3, "cost": 0.195},
        {"key": "replicate", "images": 2, "cost": 0.006},
        {"key": "offline", "images": 1, "cost": 0.0}]
    assert [g["key"] for g in client.get("/api/usage?by=model").get_json()["groups"]] == [
        "stability/sd3.5-large", "replicate/black-forest-labs/flux-schnell", "offline/abstract"]
    assert [(g["key"], g["cost"]) for g in client.get("/api/usage?by=token").get_json()[
        "groups"]] == [("alice", 0.195), ("bob", 0.006), ("web", 0.0)]


def test_usage_since_and_until(client, history):
    def total(query):
        return client.get(f"/api/usage?{query}").get_json()["total"]

    assert total("since=2026-11-02") == {"images": 3, "cost": 0.13}
    assert total("until=2026-11-02") == {"images": 5, "cost": 0.201}  # a date means its end
    assert total("since=2026-11-03T12:00:00Z") == {"images": 1, "cost": 0.0}
    assert total("since=2026-11-03T15:00:00%2B02:00") == {"images": 1, "cost": 0.0}
    assert total("until=2026-11-03T12:00:00") == {"images": 5, "cost": 0.201}
    # The offline image was made at 23:00 on the 3rd.
    assert total("since=2026-11-01T10:00:00&until=2026-11-03T15:00") == {"images": 2,
                                                                          "cost": 0.13}
    assert total("since=2026-11-03T22:00&until=2026-11-03T23:30") == {"images": 1, "cost": 0}
    assert total("since=2026-11-01T08:00:00&until=2026-11-01T10:00") == {"images": 3,
                                                                          "cost": 0.071}
    assert total("since=2026-11-02&until=2026-11-02") == {"images": 2, "cost": 0.13}
    assert total("since=2026-11-03&until=2026-11-01") == {"images": 0, "cost": 0}


@pytest.mark.parametrize("query", ["since=yesterday", "until=2026-13-01", "since=2026-11-01T25:00",
                                   "by=week"])
def test_bad_usage_queries_are_422(client, query):
    response = client.get(f"/api/usage?{query}")
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_error"
    assert body["detail"][0]["loc"] == ["query", query.split("=")[0]]


def test_deleting_an_image_does_not_give_its_money_back(make_app):
    client = make_app(PRICES="offline/abstract=0.1").test_client()
    record = post(client).get_json()
    assert client.delete(f"/api/images/{record['id']}").status_code == 204
    assert client.get("/api/usage").get_json()["total"] == {"images": 1, "cost": 0.1}


def test_flask_usage_prints_the_same_table(app, history):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["usage", "--by", "provider"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["provider", "images", "cost"]
    assert [line.split() for line in lines[1:]] == [
        ["stability", "3", "$0.195"], ["replicate", "2", "$0.006"], ["offline", "1", "$0.00"],
        ["total", "6", "$0.201"]]
    since = runner.invoke(args=["usage", "--since", "2026-11-02"])
    assert [line.split() for line in since.output.splitlines()[1:]] == [
        ["2026-11-02", "2", "$0.13"], ["2026-11-03", "1", "$0.00"], ["total", "3", "$0.13"]]
    bad = runner.invoke(args=["usage", "--since", "soon"])
    assert bad.exit_code == 2 and "not an ISO date" in bad.output


def test_flask_usage_shows_todays_budget(make_app):
    app = make_app(PRICES="offline/abstract=0.1", DAILY_BUDGET="1")
    post(app.test_client())
    result = app.test_cli_runner().invoke(args=["usage"])
    assert "today: $0.10 spent, $0.90 left of $1.00 (DAILY_BUDGET)" in result.output


def test_create_app_reads_the_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PRICES", "offline/abstract=0.5")
    monkeypatch.setenv("DAILY_BUDGET", "2")
    monkeypatch.setenv("API_TOKENS", "alice:t1")
    monkeypatch.setenv("TOKEN_BUDGETS", "alice:1")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db",
                      "IMAGES_DIR": str(tmp_path / "images")})
    ledger = app.extensions["spending"]
    assert (ledger.daily, ledger.token_budgets) == (2.0, {"alice": 1.0})
    assert ledger.price("offline", "abstract").per_image == 0.5
    assert app.config["API_TOKEN_NAMES"] == {"alice": "t1"}


@pytest.mark.parametrize("serialised", [True, False])
def test_reservations_are_serialised_so_concurrent_requests_cannot_overshoot(
        make_app, monkeypatch, serialised):
    # Without the lock, ten requests that all read today's spending before any of them holds
    # its estimate would all fit; with it, exactly the five that fit get their hold.
    from app.spending import BudgetExceeded, Spending

    app = make_app(DAILY_BUDGET="0.05")
    ledger = app.extensions["spending"]
    read = Spending._committed
    all_read = threading.Barrier(10)

    def read_then_wait(self, *args):
        value = read(self, *args)
        if not serialised:
            all_read.wait(timeout=30)  # every thread has read before any inserts
        return value

    monkeypatch.setattr(Spending, "_committed", read_then_wait)
    if not serialised:
        monkeypatch.setattr(Spending, "_serialise", staticmethod(lambda connection: None))
    start = threading.Barrier(10)

    def reserve(_):
        with app.app_context():
            start.wait()
            try:
                ledger.reserve("api", "offline", "abstract", 1, 0.01)
                return "held"
            except BudgetExceeded:
                return "refused"

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(reserve, range(10)))
    if serialised:
        assert outcomes.count("held") == 5 and outcomes.count("refused") == 5
    else:  # the race the lock prevents
        assert outcomes.count("held") == 10
