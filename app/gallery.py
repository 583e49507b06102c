"""Reading the library: newest first, cursor pages, word search and provider filter."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from .extensions import db
from .models import Image


class BadCursor(ValueError):
    pass


@dataclass
class Page:
    items: list[Image]
    total: int
    next_cursor: str | None


def encode_cursor(image: Image) -> str:
    raw = f"{image.created_at.astimezone(UTC).isoformat()}|{image.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, image_id = raw.split("|")
        return datetime.fromisoformat(stamp).astimezone(UTC), int(image_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor(cursor) from exc


def _filters(q: str | None, provider: str | None) -> list:
    conditions = []
    if provider:
        conditions.append(Image.provider == provider)
    for word in (q or "").split():
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            sa.or_(Image.prompt.ilike(pattern, escape="\\"),
                   Image.negative_prompt.ilike(pattern, escape="\\"))
        )
    return conditions


def page(limit: int = 50, before: str | None = None, q: str | None = None,
         provider: str | None = None) -> Page:
    """One page of records, newest first, and the cursor of the next page if there is one."""
    conditions = _filters(q, provider)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Image).where(*conditions))
    query = sa.select(Image).where(*conditions)
    if before:
        created_at, image_id = decode_cursor(before)
        query = query.where(sa.tuple_(Image.created_at, Image.id) < (created_at, image_id))
    query = query.order_by(Image.created_at.desc(), Image.id.desc()).limit(limit + 1)
    items = list(db.session.scalars(query))
    has_more = len(items) > limit
    items = items[:limit]
    return Page(items, total or 0, encode_cursor(items[-1]) if has_more else None)
