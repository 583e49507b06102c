"""The records: an image and the parameters that made it, and the collections that hold images."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db
from .storage import a1111_parameters, current_store


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator):
    """Stores UTC without an offset (SQLite keeps none) and always returns an aware UTC time."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime")
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=UTC) if value is not None else None


collection_image = sa.Table(
    "collection_image",
    db.metadata,
    sa.Column("collection_id", sa.ForeignKey("collection.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("image_id", sa.ForeignKey("image.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("added_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Index("ix_collection_image_image", "image_id"),
)


class Image(db.Model):
    __tablename__ = "image"
    __table_args__ = (
        sa.Index("ix_image_created", "created_at", "id"),
        sa.Index("ix_image_provider_created", "provider", "created_at", "id"),
        # Covers what paging needs, so the ids matched by a search are sorted by date without
        # reading their whole rows (prompts and parameters).
        # With model and favourite too (0005), for a search combined with those filters.
        sa.Index("ix_image_id_created_provider", "id", "created_at", "provider", "model",
                 "favorite"),
        sa.Index("ix_image_batch", "batch_id", "batch_index"),
        # The gallery's filters, each paged newest first from its own index.
        sa.Index("ix_image_model_created", "model", "created_at", "id", "favorite"),
        sa.Index("ix_image_favorite_created", "favorite", "created_at", "id"),
        sa.Index("ix_image_sha256", "sha256"),
        # AUTOINCREMENT: an id is never reused, so a cached thumbnail URL never shows another image.
        {"sqlite_autoincrement": True},
    )

    # bigint on PostgreSQL (ids as large as SQLite's); SQLite's AUTOINCREMENT needs INTEGER.
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                    primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(120), unique=True)
    prompt: Mapped[str] = mapped_column(sa.Text)
    negative_prompt: Mapped[str] = mapped_column(sa.Text, default="")
    provider: Mapped[str] = mapped_column(sa.String(32))
    model: Mapped[str] = mapped_column(sa.String(200))
    # None: the model takes no seed, or an imported image's metadata does not say.
    seed: Mapped[int | None] = mapped_column(sa.BigInteger)
    width: Mapped[int]
    height: Mapped[int]
    steps: Mapped[int | None]
    cfg_scale: Mapped[float | None]
    requested: Mapped[dict] = mapped_column(sa.JSON)
    ignored: Mapped[list] = mapped_column(sa.JSON, default=list)
    content_filtered: Mapped[bool] = mapped_column(default=False)
    format: Mapped[str] = mapped_column(sa.String(8))
    file_size: Mapped[int]
    duration_ms: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cost: Mapped[float | None] = mapped_column(sa.Float)  # US dollars; None for imported images
    cost_detail: Mapped[str | None] = mapped_column(sa.String(200))
    created_by: Mapped[str | None] = mapped_column(sa.String(64))
    options: Mapped[dict] = mapped_column(sa.JSON, default=dict, server_default=sa.text("'{}'"))
    batch_id: Mapped[str | None] = mapped_column(sa.String(32))
    batch_index: Mapped[int | None]
    favorite: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    source: Mapped[str | None] = mapped_column(sa.String(16))  # imported: the metadata format
    collections: Mapped[list[Collection]] = relationship(
        secondary=collection_image, back_populates="images", lazy="selectin",
        order_by="Collection.name", passive_deletes=True)

    @property
    def url(self) -> str:
        return current_store().url(self.filename)

    @property
    def thumbnail_url(self) -> str:
        return current_store().thumbnail_url(self.id)

    @property
    def parameters_text(self) -> str:
        """The text embedded in the PNG, in AUTOMATIC1111's format."""
        return a1111_parameters(
            prompt=self.prompt, negative_prompt=self.negative_prompt, steps=self.steps,
            cfg_scale=self.cfg_scale, seed=self.seed, width=self.width, height=self.height,
            model=self.model, options=self.options,
        )

    def to_dict(self) -> dict:
        store = current_store()
        return {
            "id": self.id,
            "filename": self.filename,
            "url": store.url(self.filename),
            "thumbnail_url": store.thumbnail_url(self.id),
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "provider": self.provider,
            "model": self.model,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "cfg_scale": self.cfg_scale,
            "requested": self.requested,
            "ignored": self.ignored,
            "content_filtered": self.content_filtered,
            "format": self.format,
            "file_size": self.file_size,
            "duration_ms": self.duration_ms,
            "created_at": self.created_at.isoformat(),
            "cost": self.cost,
            "cost_detail": self.cost_detail,
            "created_by": self.created_by,
            "options": self.options or {},
            "batch_id": self.batch_id,
            "batch_index": self.batch_index,
            "favorite": self.favorite,
            "collections": [{"id": c.id, "name": c.name} for c in self.collections],
            "sha256": self.sha256,
            "source": self.source,
        }


class Collection(db.Model):
    """A named set of images; an image may be in any number of them."""

    __tablename__ = "collection"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    images: Mapped[list[Image]] = relationship(
        secondary=collection_image, back_populates="collections", lazy="raise",
        passive_deletes=True)


class Charge(db.Model):
    """Money one generation request spends: reserved before the provider call, then settled.

    Rows stay after settling (deleting an image does not give its money back): they are what
    budgets and usage count. An unsettled row past `expires_at` belongs to a request that died.
    """

    __tablename__ = "charge"
    __table_args__ = (
        # The charges still open today: what the budget check adds to the day's totals.
        sa.Index("ix_charge_open", "settled", "day", "created_by"),
        # Covers the usage of part of a day (a since or until at a time, not a date).
        sa.Index("ix_charge_usage", "created_at", "settled", "provider", "model", "created_by",
                 "images", "amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[str] = mapped_column(sa.String(10))  # the UTC date, YYYY-MM-DD
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(64))
    provider: Mapped[str] = mapped_column(sa.String(32))
    model: Mapped[str] = mapped_column(sa.String(200))
    images: Mapped[int]
    amount: Mapped[float] = mapped_column(sa.Float)  # US dollars: the estimate until settled
    settled: Mapped[bool] = mapped_column(default=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChargeDay(db.Model):
    """Settled charges summed per UTC day, provider, model and caller: what usage reports read."""

    __tablename__ = "charge_day"
    __table_args__ = (
        sa.UniqueConstraint("day", "provider", "model", "created_by", name="uq_charge_day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[str] = mapped_column(sa.String(10))
    provider: Mapped[str] = mapped_column(sa.String(32))
    model: Mapped[str] = mapped_column(sa.String(200))
    created_by: Mapped[str] = mapped_column(sa.String(64))
    images: Mapped[int]
    amount: Mapped[float] = mapped_column(sa.Float)


class IdempotencyKey(db.Model):
    """One caller's Idempotency-Key: the request it named and, once done, the answer it got."""

    __tablename__ = "idempotency_key"
    __table_args__ = (
        sa.UniqueConstraint("caller", "key", name="uq_idempotency_caller_key"),
        sa.Index("ix_idempotency_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    caller: Mapped[str] = mapped_column(sa.String(255))
    key: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime] = mapped_column(UTCDateTime)  # a running request's deadline
    status: Mapped[int | None]  # None while the first request runs
    content_type: Mapped[str | None] = mapped_column(sa.String(100))
    location: Mapped[str | None] = mapped_column(sa.String(500))
    body: Mapped[str | None] = mapped_column(sa.Text)


class Setting(db.Model):
    """A setting changed at run time (A1111's sd_model_checkpoint): shared by every node."""

    __tablename__ = "setting"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
