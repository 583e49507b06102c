"""What generation costs: the price table, the cost of a request, budgets and usage.

Prices are US dollars per image (Stability's credits at $0.01, Replicate's per-image prices, an
estimate for models Replicate bills by the second, OpenAI's token rates), overridable with PRICES.
Budgets are per UTC day. Every request first reserves its estimate in the `charge` ledger, in one
serialised transaction that also checks the budgets (BEGIN IMMEDIATE on SQLite, an advisory lock
on PostgreSQL), so concurrent requests on any worker or node cannot overshoot together; the real
cost replaces the estimate once the provider has answered, and a failed request releases it.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from config import ConfigError

from .extensions import db
from .models import Charge, ChargeDay, utcnow
from .providers.base import ProviderError

CREDIT = 0.01  # dollars per Stability credit
EPSILON = 1e-9  # dollars: float sums must not refuse a request that reaches a budget exactly
LOCK_KEY = 0x5E4D  # the PostgreSQL advisory lock that serialises reservations
SPECIAL_CALLERS = ("api", "web", "cli")
GROUPINGS = ("day", "provider", "model", "token")

# OpenAI's image models bill tokens: dollars per million text-in, image-in and image-out tokens.
OPENAI_RATES = {"text": 5.0, "image": 8.0, "output": 30.0}
# Typical output tokens of a 1024x1024 image per quality (about $0.02 / $0.07 / $0.19); "auto"
# is reckoned as high, so an estimate never undershoots what the model may choose.
OPENAI_OUTPUT_TOKENS = {"low": 650, "medium": 2300, "high": 6300}
OPENAI_DEFAULT_QUALITY = "auto"


@dataclass(frozen=True)
class Price:
    """One model's price as /api/providers shows it."""

    per_image: float | None  # dollars; for tokens, a typical 1024x1024 image at the default quality
    basis: str  # credits, per_image, tokens, time or free
    note: str
    credits: float | None = None  # Stability's credits per image

    def describe(self) -> dict:
        return {"per_image": self.per_image, "basis": self.basis, "note": self.note}


STABILITY_CREDITS = {"sd3.5-large": 6.5, "sd3.5-large-turbo": 4, "sd3.5-medium": 3.5,
                     "sd3.5-flash": 2.5, "core": 3, "ultra": 8, "sdxl-1.0": 0.9}
SDXL_INCLUDED_STEPS = 30  # SDXL 1.0 costs 0.9 credits up to 30 steps, proportionally more after
REPLICATE_PER_IMAGE = {"black-forest-labs/flux-schnell": 0.003, "black-forest-labs/flux-dev": 0.025,
                       "black-forest-labs/flux-1.1-pro": 0.04,
                       "ideogram-ai/ideogram-v3-quality": 0.09}
REPLICATE_TIME_ESTIMATE = 0.01  # dollars an image on models Replicate bills by the second


def dollars(amount: float) -> str:
    """$1.50, $0.10, $0.065, $0.003: cents from a dollar up, up to four decimals below one."""
    if amount >= 1:
        return f"${amount:,.2f}"
    text = f"{amount:.4f}".rstrip("0")
    return "$" + text + "0" * max(0, 2 - len(text.partition(".")[2]))


def _number(text: str, setting: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{setting}: {what} must be a number of dollars ≥ 0, not {text!r}.")
    return value


def parse_prices(raw) -> dict[tuple[str, str], float]:
    """PRICES: `provider/model=dollars_per_image,...` (a model may hold '/' and ':')."""
    from .params import PROVIDER_NAMES

    if isinstance(raw, dict):
        return dict(raw)
    prices = {}
    for entry in (item.strip() for item in (raw or "").split(",")):
        if not entry:
            continue
        name, sep, value = entry.rpartition("=")
        provider, slash, model = name.strip().partition("/")
        if not sep or not slash or not model.strip():
            raise ConfigError(f"PRICES: {entry!r} should read provider/model=dollars_per_image.")
        known = set(PROVIDER_NAMES) | {"openai", "stability", "replicate", "offline"}
        if provider not in known:
            raise ConfigError(f"PRICES: {entry!r} names an unknown provider {provider!r}.")
        prices[(provider, model.strip())] = _number(value.strip(), "PRICES", name.strip())
    return prices


def parse_daily_budget(raw) -> float | None:
    if raw is None or raw == "":
        return None
    return _number(str(raw).strip(), "DAILY_BUDGET", "the budget")


def parse_token_budgets(raw, names: list[str]) -> dict[str, float]:
    """TOKEN_BUDGETS: `name:dollars,...`, each name one of API_TOKENS' (or api, web, cli)."""
    if isinstance(raw, dict):
        return dict(raw)
    budgets = {}
    for entry in (item.strip() for item in (raw or "").split(",")):
        if not entry:
            continue
        name, sep, value = entry.rpartition(":")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"TOKEN_BUDGETS: {entry!r} should read name:dollars.")
        if name not in names and name not in SPECIAL_CALLERS:
            raise ConfigError(f"TOKEN_BUDGETS: {name!r} is not the name of a token in API_TOKENS.")
        if name in budgets:
            raise ConfigError(f"TOKEN_BUDGETS: {name!r} is given twice.")
        budgets[name] = _number(value.strip(), "TOKEN_BUDGETS", name)
    return budgets


class BudgetExceeded(ProviderError):
    """Refused before any provider call: the estimate does not fit what is left of a budget."""

    status, code = 402, "budget_exceeded"


def openai_cost(usage: dict, rates: dict = OPENAI_RATES) -> tuple[float, str]:
    """Dollars and a description from an OpenAI answer's `usage`."""
    details = usage.get("input_tokens_details") or {}
    output = int(usage.get("output_tokens") or 0)
    text = int(details.get("text_tokens") or 0)
    image = int(details.get("image_tokens") or 0)
    if not details:
        text = int(usage.get("input_tokens") or 0)
    cost = (text * rates["text"] + image * rates["image"] + output * rates["output"]) / 1e6
    inputs = f"{text} text" + (f" + {image} image" if image else "")
    return cost, f"{output} output tokens, {inputs} input tokens"


def _openai_estimate(prompt: str, width: int, height: int, quality: str) -> tuple[float, int]:
    typical = OPENAI_OUTPUT_TOKENS.get(quality, OPENAI_OUTPUT_TOKENS["high"])
    output = math.ceil(typical * width * height / (1024 * 1024))
    text = math.ceil(len(prompt) / 4) + 10
    return (text * OPENAI_RATES["text"] + output * OPENAI_RATES["output"]) / 1e6, output


def _base_name(model: str) -> str:
    return model.partition(":")[0]


@dataclass
class Reservation:
    """A reservation while the provider works: add() what each image really cost."""

    ledger: Spending
    charge_id: int
    provider: str
    model: str
    params: object
    created_by: str
    day: str

    def __post_init__(self):
        self.costs: list[float] = []
        self.lock = threading.Lock()
        self.settled = False  # by the transaction of the images' records (settle_in)

    def settle_in(self, connection) -> None:
        """Settle what was add()ed in the caller's transaction, the one that commits the images'
        records: they and their charge are then one commit. Call committed() once it has; until
        then (or should it roll back) the block still settles on its own when it ends."""
        self.ledger.write_settlement(connection, self, len(self.costs), sum(self.costs))

    def committed(self) -> None:
        self.settled = True

    def add(self, result) -> tuple[float, str]:
        """The real cost of one image the provider made (it is settled when the block ends)."""
        cost, detail = self.ledger.cost(self.provider, self.model, self.params, result)
        with self.lock:
            self.costs.append(cost)
        return cost, detail


class Spending:
    """Prices, budgets and the ledger of one app, from its settings."""

    def __init__(self, config, token_names: list[str]):
        self.overrides = parse_prices(config.get("PRICES"))
        self.daily = parse_daily_budget(config.get("DAILY_BUDGET"))
        self.token_budgets = parse_token_budgets(config.get("TOKEN_BUDGETS"), token_names)
        self.hold = timedelta(seconds=float(config.get("GENERATION_TIMEOUT") or 120) + 60)

    # --- prices ---------------------------------------------------------------------------------

    def _override(self, provider: str, model: str) -> float | None:
        for key in ((provider, model), (provider, _base_name(model))):
            if key in self.overrides:
                return self.overrides[key]
        return None

    def price(self, provider: str, model: str) -> Price:
        override = self._override(provider, model)
        if override is not None:
            return Price(override, "per_image", f"{dollars(override)} an image, set by PRICES.")
        if provider == "offline":
            return Price(0.0, "free", "Rendered here: free.")
        if provider == "stability":
            credits = STABILITY_CREDITS.get(model)
            if credits is None:
                return Price(None, "credits", "Billed in credits; price unknown.")
            more = (f" up to {SDXL_INCLUDED_STEPS} steps, proportionally more beyond"
                    if model == "sdxl-1.0" else "")
            return Price(credits * CREDIT, "credits",
                         f"{credits:g} credits an image{more} (1 credit = $0.01).", credits)
        if provider == "replicate":
            per_image = REPLICATE_PER_IMAGE.get(_base_name(model))
            if per_image is not None:
                return Price(per_image, "per_image", f"Replicate's price: {dollars(per_image)} "
                             "an image.")
            return Price(REPLICATE_TIME_ESTIMATE, "time",
                         f"Estimate: Replicate bills this model by the second of hardware time; "
                         f"about {dollars(REPLICATE_TIME_ESTIMATE)} an image (set PRICES to "
                         "yours).")
        if provider == "openai":
            typical, _ = _openai_estimate("", 1024, 1024, OPENAI_DEFAULT_QUALITY)
            return Price(round(typical, 6), "tokens",
                         "Billed by tokens: $5 per 1M text-in, $8 per 1M image-in, $30 per 1M "
                         "image-out; about $0.02 / $0.07 / $0.19 for 1024×1024 at low / medium "
                         "/ high quality (auto is reckoned as high).")
        return Price(None, "per_image", "Price unknown.")

    def describe_models(self, described: dict) -> dict:
        """A provider's /api/providers entry with each model's price added."""
        for model in described["models"]:
            price = self.price(described["name"], model["name"])
            model["price"] = price.describe()
            if price.basis == "tokens":
                model["price"]["by_quality"] = {
                    quality: round(_openai_estimate("", 1024, 1024, quality)[0], 6)
                    for quality in (*OPENAI_OUTPUT_TOKENS, "auto")}
            if described["name"] == "stability" and model["name"] == "sdxl-1.0" and \
                    price.basis == "credits":
                model["price"]["steps_included"] = SDXL_INCLUDED_STEPS
        return described

    def estimate(self, provider: str, model: str, params, count: int = 1) -> float:
        """Dollars a request is expected to cost before it is sent (count × one image)."""
        return round(self._one(provider, model, params)[0] * count, 6)

    def _one(self, provider: str, model: str, params) -> tuple[float, str]:
        price = self.price(provider, model)
        if price.basis == "credits" and price.credits is not None:
            credits = price.credits
            if model == "sdxl-1.0":
                credits *= max(params.steps, SDXL_INCLUDED_STEPS) / SDXL_INCLUDED_STEPS
            return credits * CREDIT, f"{round(credits, 4):g} credits"
        if price.basis == "tokens":
            options = getattr(params, "options", None) or {}
            quality = options.get("quality") or OPENAI_DEFAULT_QUALITY
            cost, output = _openai_estimate(params.prompt, params.width, params.height, quality)
            return cost, f"about {output} output tokens (estimate)"
        if price.basis == "free":
            return 0.0, "free (rendered offline)"
        per_image = price.per_image or 0.0
        if price.basis == "time":
            return per_image, f"{dollars(per_image)} per image (estimate; billed by time)"
        return per_image, f"{dollars(per_image)} per image"

    def cost(self, provider: str, model: str, params, result) -> tuple[float, str]:
        """What one image the provider made cost, and how that was reckoned."""
        usage = getattr(result, "usage", None)
        if usage and self.price(provider, model).basis == "tokens":
            cost, detail = openai_cost(usage)
            return round(cost, 6), detail
        cost, detail = self._one(provider, model, params)
        return round(cost, 6), detail

    # --- budgets --------------------------------------------------------------------------------

    def _committed(self, connection, day: str, now: datetime, created_by: str | None) -> float:
        """Dollars settled today plus what live reservations hold (for one caller, or all).

        One statement (one snapshot on any database): the day's totals and the few charges
        still open, so the check under the lock costs the same on a busy day as on a quiet one.
        """
        settled = sa.select(sa.func.coalesce(sa.func.sum(ChargeDay.amount), 0.0)).where(
            ChargeDay.day == day)
        held = sa.select(sa.func.coalesce(sa.func.sum(Charge.amount), 0.0)).where(
            Charge.settled.is_(False), Charge.day == day, Charge.expires_at > now)
        if created_by is not None:
            settled = settled.where(ChargeDay.created_by == created_by)
            held = held.where(Charge.created_by == created_by)
        return float(connection.execute(
            sa.select(settled.scalar_subquery() + held.scalar_subquery())).scalar_one())

    def _budgets(self, created_by: str) -> list[tuple[str | None, float, str]]:
        budgets = []
        if self.daily is not None:
            budgets.append((None, self.daily, "today's budget (DAILY_BUDGET)"))
        if created_by in self.token_budgets:
            budgets.append((created_by, self.token_budgets[created_by],
                            f"the budget for token '{created_by}' today (TOKEN_BUDGETS)"))
        return budgets

    def reserve(self, created_by: str, provider: str, model: str, images: int,
                amount: float, day: str | None = None) -> int:
        """Hold `amount` dollars for a request, or raise BudgetExceeded; returns the charge id."""
        now = utcnow()
        day = day or now.date().isoformat()
        budgets = self._budgets(created_by)
        row = dict(day=day, created_at=now, created_by=created_by, provider=provider,
                   model=model, images=images, amount=amount, settled=False,
                   expires_at=now + self.hold)
        with db.engine.connect() as connection:
            if budgets:
                self._serialise(connection)
                for who, limit, name in budgets:
                    left = max(0.0, limit - self._committed(connection, day, now, who))
                    if amount > left + EPSILON:
                        raise BudgetExceeded(
                            f"This request is estimated at {dollars(amount)}, more than the "
                            f"{dollars(left)} left of {name} of {dollars(limit)}; it resets at "
                            "midnight UTC.")
            charge_id = connection.execute(_RESERVE, row).inserted_primary_key[0]
            connection.commit()
        return charge_id

    @staticmethod
    def _serialise(connection) -> None:
        """Make this transaction the only one checking budgets until it commits."""
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        else:
            connection.execute(sa.select(Charge.id).with_for_update().limit(1))

    def settle(self, charge: Reservation, images: int, amount: float) -> None:
        """The real cost replaces the estimate, and joins its day's totals."""
        with db.engine.begin() as connection:
            self.write_settlement(connection, charge, images, amount)

    @staticmethod
    def write_settlement(connection, charge: Reservation, images: int, amount: float) -> None:
        """settle()'s statements, in the connection's transaction (committed by its owner)."""
        amount = round(amount, 6)
        connection.execute(_SETTLE, {"charge_id": charge.charge_id, "images": images,
                                     "amount": amount, "settled": True})
        _add_to_day(connection, dict(day=charge.day, provider=charge.provider,
                                     model=charge.model, created_by=charge.created_by,
                                     images=images, amount=amount))

    def release(self, charge: Reservation) -> None:
        with db.engine.begin() as connection:
            connection.execute(_RELEASE, {"charge_id": charge.charge_id})

    @contextmanager
    def reservation(self, created_by: str, provider: str, model: str, params,
                    count: int = 1) -> Iterator[Reservation]:
        """Reserve the estimate; settle what was add()ed when the block ends (unless settle_in()
        already did, in a transaction that committed), else release."""
        day = utcnow().date().isoformat()
        charge_id = self.reserve(created_by, provider, model, count,
                                 self.estimate(provider, model, params, count), day)
        charge = Reservation(self, charge_id, provider, model, params, created_by, day)
        try:
            yield charge
        finally:
            if charge.costs and not charge.settled:
                # Images that were made were paid for, whatever happened next.
                self.settle(charge, len(charge.costs), sum(charge.costs))
            elif not charge.costs:
                self.release(charge)

    # --- usage ----------------------------------------------------------------------------------

    def usage(self, since: datetime | None = None, until: datetime | None = None,
              by: str = "day") -> dict:
        """Settled spending in [since, until), grouped, with today's budget.

        Whole days come from the daily totals; a since or until inside a day adds that part
        of the day from the charges themselves.
        """
        days, parts = _split(since, until)
        totals: dict[str, list] = {}
        queries = []
        if days is not None:
            key = _key(ChargeDay, by)
            query = sa.select(key, sa.func.sum(ChargeDay.images), sa.func.sum(ChargeDay.amount)
                              ).group_by(key)
            first, last = days
            if first is not None:
                query = query.where(ChargeDay.day >= first.isoformat())
            if last is not None:
                query = query.where(ChargeDay.day < last.isoformat())
            queries.append(query)
        for start, end in parts:
            key = _key(Charge, by)
            queries.append(sa.select(key, sa.func.sum(Charge.images), sa.func.sum(Charge.amount))
                           .where(Charge.settled, Charge.created_at >= start,
                                  Charge.created_at < end).group_by(key))
        for query in queries:
            for name, images, cost in db.session.execute(query):
                entry = totals.setdefault(name, [0, 0.0])
                entry[0] += int(images)
                entry[1] += cost
        groups = [{"key": name, "images": images, "cost": round(cost, 6)}
                  for name, (images, cost) in sorted(totals.items())]
        if by != "day":
            groups.sort(key=lambda group: (-group["cost"], -group["images"], group["key"]))
        return {
            "total": {"images": sum(g["images"] for g in groups),
                      "cost": round(sum(g["cost"] for g in groups), 6)},
            "groups": groups,
            "budget": self.today(),
        }

    def chart_rows(self, days: int = 30) -> tuple[date, list[tuple[str, str, int, float]]]:
        """(first day, [(day, provider, images, cost)]) for the last `days` UTC days."""
        first = utcnow().date() - timedelta(days=days - 1)
        query = sa.select(ChargeDay.day, ChargeDay.provider, sa.func.sum(ChargeDay.images),
                          sa.func.sum(ChargeDay.amount)).where(
            ChargeDay.day >= first.isoformat()).group_by(ChargeDay.day, ChargeDay.provider)
        return first, [(d, p, int(n), float(c)) for d, p, n, c in db.session.execute(query)]

    def today(self) -> dict:
        """The deployment's budget today, and each token budget: daily, spent, left."""
        now = utcnow()
        day = now.date().isoformat()
        connection = db.session.connection()

        def one(who: str | None, limit: float | None) -> dict:
            spent = float(db.session.execute(
                sa.select(sa.func.coalesce(sa.func.sum(ChargeDay.amount), 0.0)).where(
                    ChargeDay.day == day,
                    *([ChargeDay.created_by == who] if who else []))).scalar_one())
            left = None
            if limit is not None:
                left = round(max(0.0, limit - self._committed(connection, day, now, who)), 6)
            return {"daily": limit, "spent_today": round(spent, 6), "left_today": left}

        budget = one(None, self.daily)
        if self.token_budgets:
            budget["tokens"] = [{"name": name, **one(name, limit)}
                                for name, limit in sorted(self.token_budgets.items())]
        return budget


def _key(table, by: str):
    return {"day": table.day, "provider": table.provider,
            "model": table.provider + "/" + table.model, "token": table.created_by}[by]


# The ledger's statements on every generation, built once and run with each one's values: making
# a statement anew each time costs several times what running it does.
_RESERVE = sa.insert(Charge)
_SETTLE = sa.update(Charge).where(Charge.id == sa.bindparam("charge_id"))
_RELEASE = sa.delete(Charge).where(Charge.id == sa.bindparam("charge_id"))


@functools.cache
def _upsert_day(dialect: str) -> sa.Insert:
    """Add a settled charge to its day's totals: one atomic upsert, on SQLite or PostgreSQL."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = ChargeDay.__table__
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=["day", "provider", "model", "created_by"],
        set_={"images": table.c.images + statement.excluded.images,
              "amount": table.c.amount + statement.excluded.amount})


def _add_to_day(connection, row: dict) -> None:
    connection.execute(_upsert_day(connection.dialect.name), row)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _split(since: datetime | None, until: datetime | None):
    """[since, until) as (whole days [first, last) or None, [(start, end) parts of days])."""
    first = last = None
    if since is not None:
        first = since.date() if since == _midnight(since.date()) else since.date() + timedelta(1)
    if until is not None:
        last = until.date()
    if first is not None and last is not None and first >= last:
        return None, ([(since, until)] if since < until else [])
    parts = []
    if since is not None and since < _midnight(first):
        parts.append((since, _midnight(first)))
    if until is not None and _midnight(last) < until:
        parts.append((_midnight(last), until))
    return (first, last), parts


def parse_time(text: str, *, end: bool = False) -> datetime:
    """An ISO date or time (UTC when it has no offset); a bare date as `until` means its end."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        # A '+' in a query string arrives as a space.
        text = text.replace(" ", "+") if "T" in text else text.replace(" ", "T", 1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date or time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def spending() -> Spending:
    return current_app.extensions["spending"]
