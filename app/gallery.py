"""Reading the library: newest first, cursor pages, word search and the filters."""

from __future__ import annotations

import base64
import binascii
import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from flask import abort
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import lazyload
from sqlalchemy.orm.attributes import set_committed_value

from .extensions import db
from .models import Collection, Image, collection_image
from .params import PROVIDER_NAMES, ValidationFailed

MAX_ID = 2**63 - 1  # SQLite's integers and PostgreSQL's bigint; a larger id names no image


def get_or_404(image_id: int) -> Image:
    """One record, or a 404 (also for ids no database integer can hold)."""
    if not 0 < image_id <= MAX_ID:
        abort(404, description=f"Image {image_id} not found.")
    return db.get_or_404(Image, image_id, description=f"Image {image_id} not found.")


class BadCursor(ValueError):
    pass


@dataclass
class Page:
    items: list[Image]
    total: int
    next_cursor: str | None
    prev_cursor: str | None = None  # the cursor of the newer page, when there is one


def encode_cursor(image: Image) -> str:
    raw = f"{image.created_at.astimezone(UTC).isoformat()}|{image.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, image_id = raw.split("|")
        decoded = datetime.fromisoformat(stamp).astimezone(UTC), int(image_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise BadCursor(cursor) from exc
    if not 0 <= decoded[1] <= MAX_ID:
        raise BadCursor(cursor)
    return decoded


# The full-text indexes: on SQLite an FTS5 table (migration 0002; external content, rowid is
# image.id), on PostgreSQL a generated tsvector column with a GIN index (0003). This is the one
# place that speaks either dialect.
_image_fts = sa.table("image_fts", sa.column("rowid", sa.Integer))
_search_vector = sa.column("search_vector", type_=TSVECTOR)
_FIND_INDEX = {
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE name = 'image_fts'",
    "postgresql": "SELECT count(*) FROM information_schema.columns"
                  " WHERE table_schema = current_schema() AND table_name = 'image'"
                  " AND column_name = 'search_vector'",
}
_index_of: weakref.WeakKeyDictionary[sa.Engine, str | None] = weakref.WeakKeyDictionary()
_TOKEN_CHAR = re.compile(r"[^\W_]")
_TOKEN = re.compile(r"[^\W_]+")


def _full_text_index() -> str | None:
    """This database's full-text index ("sqlite" or "postgresql"), or None before its migration."""
    engine = db.engine
    if engine not in _index_of:
        found = _FIND_INDEX.get(engine.dialect.name)
        _index_of[engine] = (engine.dialect.name if found and db.session.scalar(sa.text(found))
                             else None)
    return _index_of[engine]


def _like(word: str):
    pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return sa.or_(Image.prompt.ilike(pattern, escape="\\"),
                  Image.negative_prompt.ilike(pattern, escape="\\"))


def _fts5_match(words: list[str]):
    phrases = ['"' + word.replace('"', '""') + '"*' for word in words]
    match = sa.literal_column("image_fts").op("MATCH")(" AND ".join(phrases))
    return Image.id.in_(sa.select(_image_fts.c.rowid).where(match))


def _tsvector_match(words: list[str]):
    # A word's letter-and-digit runs in a row (as FTS5 reads a quoted phrase), the last one a
    # prefix; the runs hold no quotes or operators, so nothing typed is query syntax.
    phrases = [" <-> ".join(f"'{token}'" for token in _TOKEN.findall(word)) + ":*"
               for word in words]
    query = sa.func.to_tsquery(sa.literal_column("'imagegen_search'::regconfig"),
                               " & ".join(f"({phrase})" for phrase in phrases))
    return _search_vector.op("@@")(query)


def _search(q: str) -> list:
    """Every word must appear in the prompt or the negative prompt, ignoring case.

    With the full-text index a word matches the start of a word in the text ("fox" finds "foxes");
    a word holding punctuation must also appear as typed, and one with no letters or digits at all
    is only a substring match. Each word is quoted, so FTS syntax (AND, NEAR, *, -) is plain text.
    """
    words = q.split()
    index = _full_text_index()
    if index is None:
        return [_like(word) for word in words]
    indexed = [word for word in words if _TOKEN_CHAR.search(word)]
    conditions = [_like(word) for word in words if not word.isalnum()]
    if indexed:
        match = _fts5_match if index == "sqlite" else _tsvector_match
        conditions.insert(0, match(indexed))
    return conditions


# Records per provider, kept by a trigger on PostgreSQL (0003, with the search column): counting
# a large table there reads all of it. `changes` (0008) moves on whenever a committed transaction
# added, removed or altered records.
_image_count = sa.table("image_count", sa.column("provider", sa.String),
                        sa.column("images", sa.BigInteger), sa.column("changes", sa.BigInteger))
_FIND_CHANGES = ("SELECT count(*) FROM information_schema.columns"
                 " WHERE table_schema = current_schema() AND table_name = 'image_count'"
                 " AND column_name = 'changes'")
# The filters whose columns move `changes` when they change: favourites and collections don't.
KEPT_FILTERS = frozenset(("q", "provider", "model", "since", "until", "batch"))


class KeptTotals:
    """Search totals of one database, each kept with the reading of `changes` it was counted at.

    PostgreSQL counts a search's matches by reading every table page that holds one (a GIN index
    cannot count on its own): about 75 ms for 70,000 matches among a million records. A total
    counted at one reading is exact for as long as the reading stays the same, so paging through
    a search, or asking it again, counts it once per process until the library changes.
    """

    def __init__(self, size: int = 512):
        self._lock = threading.Lock()
        self._totals: OrderedDict[tuple, tuple[int, int]] = OrderedDict()
        self._size = size

    def get(self, key: tuple, reading: int) -> int | None:
        with self._lock:
            kept = self._totals.get(key)
            if kept is None or kept[0] != reading:
                return None
            self._totals.move_to_end(key)
            return kept[1]

    def put(self, key: tuple, reading: int, total: int) -> None:
        with self._lock:
            self._totals[key] = (reading, total)
            self._totals.move_to_end(key)
            while len(self._totals) > self._size:
                self._totals.popitem(last=False)


_kept_totals: weakref.WeakKeyDictionary[sa.Engine, KeptTotals | None] = \
    weakref.WeakKeyDictionary()


def _kept_totals_here() -> KeptTotals | None:
    """This database's kept totals, or None where it has no change counter (SQLite counts fast)."""
    engine = db.engine
    if engine not in _kept_totals:
        found = _full_text_index() == "postgresql" and db.session.scalar(sa.text(_FIND_CHANGES))
        _kept_totals[engine] = KeptTotals() if found else None
    return _kept_totals[engine]


def _total(conditions: list, provider: str | None, kept_as: tuple | None = None) -> int:
    """How many records match: from the kept counts when only a provider (or nothing) is asked,
    from the kept totals when a search under `kept_as` was counted since the last change."""
    if _full_text_index() == "postgresql" and len(conditions) == (1 if provider else 0):
        query = sa.select(sa.func.coalesce(sa.func.sum(_image_count.c.images), 0))
        if provider:
            query = query.where(_image_count.c.provider == provider)
        return int(db.session.scalar(query))
    count = sa.select(sa.func.count()).select_from(Image).where(*conditions)
    kept = _kept_totals_here() if kept_as is not None else None
    if kept is None:
        return db.session.scalar(count)
    changes = sa.select(sa.func.coalesce(sa.func.sum(_image_count.c.changes), 0)).scalar_subquery()
    total = kept.get(kept_as, db.session.scalar(sa.select(changes)))
    if total is None:
        # One statement, so one snapshot: the reading belongs to the total counted with it.
        reading, total = db.session.execute(sa.select(changes, count.scalar_subquery())).one()
        kept.put(kept_as, reading, total)
    return total


FILTERS = ("q", "provider", "model", "favorite", "collection", "since", "until", "batch")
EXTRA_PROVIDERS = ("imported",)


def _query_error(name: str, msg: str, kind: str) -> ValidationFailed:
    return ValidationFailed([{"loc": ["query", name], "msg": msg, "type": kind}])


def parse_time(name: str, raw: str) -> datetime:
    """An ISO date or date-time (UTC when it names no offset); `until` a date covers that day."""
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=name == "until"), time(), UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
            if name == "until":  # the bound is exclusive; the moment named is included
                moment += timedelta(microseconds=1)
    except (ValueError, OverflowError):
        raise _query_error(name, "Input should be an ISO 8601 date or date-time "
                                 "(e.g. 2025-01-31 or 2025-01-31T12:00:00Z)",
                           "datetime_parsing") from None
    return moment.astimezone(UTC)


def parse_filters(args) -> dict:
    """The filters of a query string, checked (ValidationFailed names the bad one)."""
    filters: dict = {}
    q = (args.get("q") or "").strip()
    if q:
        filters["q"] = q
    provider = args.get("provider") or None
    if provider:
        if provider not in (*PROVIDER_NAMES, *EXTRA_PROVIDERS):
            options = ", ".join((*PROVIDER_NAMES, *EXTRA_PROVIDERS))
            raise _query_error("provider", f"Input should be one of {options}", "literal_error")
        filters["provider"] = provider
    for name in ("model", "batch"):
        if args.get(name):
            filters[name] = args[name]
    favorite = args.get("favorite")
    if favorite:
        if favorite.lower() not in ("true", "false", "1", "0"):
            raise _query_error("favorite", "Input should be a valid boolean (true or false)",
                               "bool_parsing")
        filters["favorite"] = favorite.lower() in ("true", "1")
    collection = args.get("collection")
    if collection:
        try:
            filters["collection"] = int(collection)
        except ValueError:
            raise _query_error("collection", "Input should be a valid integer",
                               "int_parsing") from None
        if not 0 < filters["collection"] <= MAX_ID:
            raise _query_error("collection", f"Input should be between 1 and {MAX_ID}", "range")
    for name in ("since", "until"):
        if args.get(name):
            filters[name] = parse_time(name, args[name])
    return filters


def _filters(q: str | None = None, provider: str | None = None, model: str | None = None,
             favorite: bool | None = None, collection: int | None = None,
             since: datetime | None = None, until: datetime | None = None,
             batch: str | None = None) -> list:
    conditions = []
    if provider:
        conditions.append(Image.provider == provider)
    if batch:
        conditions.append(Image.batch_id == batch)
    if model:
        conditions.append(Image.model == model)
    if favorite is not None:
        conditions.append(Image.favorite.is_(favorite))
    if collection is not None:
        members = sa.select(collection_image.c.image_id).where(
            collection_image.c.collection_id == collection)
        conditions.append(Image.id.in_(members))
    if since is not None:
        conditions.append(Image.created_at >= since)
    if until is not None:
        conditions.append(Image.created_at < until)
    if q and q.strip():
        conditions += _search(q)
    return conditions


def matching_ids(filters: dict, chunk: int = 500):
    """Every id the filters match, newest first, a chunk at a time (for export and bulk)."""
    conditions = _filters(**filters)
    key = sa.tuple_(Image.created_at, Image.id)
    last = None
    while True:
        query = sa.select(Image.id, Image.created_at).where(*conditions)
        if last is not None:
            query = query.where(key < last)
        rows = db.session.execute(
            query.order_by(Image.created_at.desc(), Image.id.desc()).limit(chunk)).all()
        if not rows:
            return
        yield [row.id for row in rows]
        last = (rows[-1].created_at, rows[-1].id)


def page(limit: int = 50, before: str | None = None, q: str | None = None,
         provider: str | None = None, after: str | None = None, **filters) -> Page:
    """One page of records, newest first, with the cursors of the older and newer pages.

    `before` gives the records older than a cursor, `after` the ones just newer than it;
    `filters` are the others of FILTERS (model, favorite, collection, since, until, batch).
    """
    conditions = _filters(q, provider, **filters)
    asked = {name: value for name, value in {"q": q, "provider": provider, **filters}.items()
             if value is not None and value != ""}
    total = _total(conditions, provider,
                   tuple(sorted(asked.items())) if asked.keys() <= KEPT_FILTERS else None)
    key = sa.tuple_(Image.created_at, Image.id)
    query = sa.select(Image.id).where(*conditions)
    if after:
        query = query.where(key > decode_cursor(after))
        query = query.order_by(Image.created_at.asc(), Image.id.asc()).limit(limit + 1)
        items = _load(query)[::-1]
        has_newer = len(items) > limit
        items = items[:limit][::-1]
        has_older = bool(items) and _exists(conditions, key < (items[-1].created_at, items[-1].id))
    else:
        if before:
            query = query.where(key < decode_cursor(before))
        query = query.order_by(Image.created_at.desc(), Image.id.desc()).limit(limit + 1)
        items = _load(query)
        has_older = len(items) > limit
        items = items[:limit]
        has_newer = bool(before) and bool(items) and _exists(
            conditions, key > (items[0].created_at, items[0].id))
    return Page(
        items,
        total or 0,
        encode_cursor(items[-1]) if has_older else None,
        encode_cursor(items[0]) if has_newer else None,
    )


def batch_images(batch_id: str) -> list[Image]:
    """Every image of one batch, in the order it was asked for."""
    return list(db.session.scalars(sa.select(Image).where(Image.batch_id == batch_id)
                                   .order_by(Image.batch_index)))


def newest(count: int) -> list[Image]:
    """The latest records, for a strip of recent images: no count and no cursors to work out."""
    return _load(sa.select(Image.id).order_by(Image.created_at.desc(), Image.id.desc())
                 .limit(count))


# The collections of a page's images (their ids bound as `ids`).
_MEMBERSHIPS = (sa.select(collection_image.c.image_id, Collection)
                .join(Collection, Collection.id == collection_image.c.collection_id)
                .where(collection_image.c.image_id.in_(sa.bindparam("ids", expanding=True)))
                .order_by(Collection.name))


def _load(ids: sa.Select) -> list[Image]:
    """The records whose ids a query picks, newest first.

    Choosing the ids first reads only the indexes (ix_image_id_created_provider covers a search's
    matches), then only the page's rows are read whole; then their collections, in one statement
    built once (the relationship's own loader builds a new one for every page).
    """
    query = sa.select(Image).where(Image.id.in_(ids)).options(lazyload(Image.collections))
    images = list(db.session.scalars(query.order_by(Image.created_at.desc(), Image.id.desc())))
    found: dict[int, list[Collection]] = {image.id: [] for image in images}
    if found:
        for image_id, collection in db.session.execute(_MEMBERSHIPS, {"ids": list(found)}):
            found[image_id].append(collection)
    for image in images:
        set_committed_value(image, "collections", found[image.id])
    return images


def _exists(conditions: list, condition) -> bool:
    return bool(db.session.scalar(sa.select(sa.exists().where(*conditions, condition))))
