"""Changing the library: favourites, collections, bulk actions, zip export and import.

Each function is one unit of work and commits it; files are written before their record is
committed and removed after their record is gone (a leftover is what `images verify` finds).
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import abort
from PIL import Image as PILImage

from . import gallery, metadata
from .extensions import db
from .generation import service
from .models import Collection, Image, collection_image, utcnow
from .params import ValidationFailed
from .storage import InvalidImage, StorageError, open_image

BULK_ACTIONS = ("delete", "favorite", "unfavorite", "add_to_collection", "remove_from_collection")
MAX_BULK = 1000
MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_SEED_VALUE = 2**63 - 1  # what the seed column holds


class Conflict(Exception):
    """A name already taken (409 `conflict`)."""


def _body_error(field_name: str | None, msg: str, kind: str) -> dict:
    return {"loc": ["body", field_name] if field_name else ["body"], "msg": msg, "type": kind}


def _require_object(body) -> dict:
    if not isinstance(body, dict):
        raise ValidationFailed([_body_error(
            None, "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type")])
    return body


def _extra(body: dict, allowed: Iterable[str]) -> list[dict]:
    return [_body_error(str(k), "Extra inputs are not permitted", "extra_forbidden")
            for k in body if k not in allowed]


# --- favourites ---------------------------------------------------------------------------------

def update_image(image: Image, body) -> Image:
    """PATCH an image: only `favorite` may change."""
    body = _require_object(body)
    errors = _extra(body, ("favorite",))
    if "favorite" not in body:
        errors.append(_body_error("favorite", "Field required", "missing"))
    elif not isinstance(body["favorite"], bool):
        errors.append(_body_error("favorite", "Input should be a valid boolean", "bool_type"))
    if errors:
        raise ValidationFailed(errors)
    image.favorite = body["favorite"]
    db.session.commit()
    return image


# --- collections --------------------------------------------------------------------------------

def collection_or_404(collection_id: int) -> Collection:
    if not 0 < collection_id <= gallery.MAX_ID:
        abort(404, description=f"Collection {collection_id} not found.")
    return db.get_or_404(Collection, collection_id,
                         description=f"Collection {collection_id} not found.")


def _collection_fields(body, *, partial: bool) -> dict:
    body = _require_object(body)
    errors = _extra(body, ("name", "description"))
    values = {}
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str):
            errors.append(_body_error("name", "Input should be a valid string", "string_type"))
        elif not name.strip():
            errors.append(_body_error("name", "Value error, name must not be blank",
                                      "value_error"))
        elif len(name.strip()) > MAX_NAME:
            errors.append(_body_error("name", f"String should have at most {MAX_NAME} characters",
                                      "string_too_long"))
        else:
            values["name"] = name.strip()
    elif not partial:
        errors.append(_body_error("name", "Field required", "missing"))
    if "description" in body:
        description = body["description"]
        if not isinstance(description, str):
            errors.append(_body_error("description", "Input should be a valid string",
                                      "string_type"))
        elif len(description) > MAX_DESCRIPTION:
            errors.append(_body_error("description", "String should have at most "
                                      f"{MAX_DESCRIPTION} characters", "string_too_long"))
        else:
            values["description"] = description.strip()
    if errors:
        raise ValidationFailed(errors)
    return values


def _check_name_free(name: str, keep: Collection | None = None) -> None:
    taken = db.session.scalar(sa.select(Collection).where(
        sa.func.lower(Collection.name) == name.lower()))
    if taken is not None and taken is not keep:
        raise Conflict(f"A collection named '{taken.name}' already exists.")


def _commit_named() -> None:
    try:
        db.session.commit()
    except sa.exc.IntegrityError:  # the same name created at the same moment elsewhere
        db.session.rollback()
        raise Conflict("A collection with that name already exists.") from None


def create_collection(body) -> Collection:
    values = _collection_fields(body, partial=False)
    _check_name_free(values["name"])
    collection = Collection(name=values["name"], description=values.get("description", ""),
                            created_at=utcnow())
    db.session.add(collection)
    _commit_named()
    return collection


def update_collection(collection: Collection, body) -> Collection:
    values = _collection_fields(body, partial=True)
    if "name" in values:
        _check_name_free(values["name"], keep=collection)
    for key, value in values.items():
        setattr(collection, key, value)
    _commit_named()
    return collection


def delete_collection(collection: Collection) -> None:
    """The collection goes; its images stay."""
    db.session.execute(sa.delete(collection_image).where(
        collection_image.c.collection_id == collection.id))
    db.session.delete(collection)
    db.session.commit()


def describe_collections(collections: list[Collection]) -> list[dict]:
    """Each collection with its image count and cover (the image added last)."""
    ids = [c.id for c in collections]
    counts = dict(db.session.execute(
        sa.select(collection_image.c.collection_id, sa.func.count())
        .where(collection_image.c.collection_id.in_(ids))
        .group_by(collection_image.c.collection_id)).all()) if ids else {}
    covers = {}
    for collection_id in (i for i in ids if counts.get(i)):
        covers[collection_id] = db.session.scalar(
            sa.select(collection_image.c.image_id)
            .where(collection_image.c.collection_id == collection_id)
            .order_by(collection_image.c.added_at.desc(), collection_image.c.image_id.desc())
            .limit(1))
    store = service().store
    return [{
        "id": c.id, "name": c.name, "description": c.description,
        "image_count": counts.get(c.id, 0),
        "cover_image_id": covers.get(c.id),
        "cover_thumbnail_url": (store.thumbnail_url(covers[c.id]) if covers.get(c.id)
                                else None),
        "created_at": c.created_at.isoformat(),
    } for c in collections]


def all_collections() -> list[Collection]:
    return list(db.session.scalars(sa.select(Collection).order_by(sa.func.lower(Collection.name))))


def add_to_collection(collection: Collection, image_ids: list[int]) -> int:
    """Put images in a collection (those already in it stay as they were); returns how many."""
    present = set(db.session.scalars(sa.select(collection_image.c.image_id).where(
        collection_image.c.collection_id == collection.id,
        collection_image.c.image_id.in_(image_ids))))
    now = utcnow()
    new = [{"collection_id": collection.id, "image_id": i, "added_at": now}
           for i in dict.fromkeys(image_ids) if i not in present]
    if new:
        db.session.execute(sa.insert(collection_image), new)
    db.session.commit()
    db.session.expire_all()
    return len(image_ids)


def remove_from_collection(collection: Collection, image_ids: list[int]) -> int:
    db.session.execute(sa.delete(collection_image).where(
        collection_image.c.collection_id == collection.id,
        collection_image.c.image_id.in_(image_ids)))
    db.session.commit()
    db.session.expire_all()
    return len(image_ids)


# --- bulk actions -------------------------------------------------------------------------------

@dataclass
class BulkResult:
    done: int
    missing: list[int]
    failed: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        body = {"done": self.done, "missing": self.missing}
        if self.failed:
            body["failed"] = self.failed
        return body


def parse_bulk(body) -> tuple[str, list[int], int | None]:
    """Check a bulk request: an action, 1–1000 ids, and a collection for collection actions."""
    body = _require_object(body)
    errors = _extra(body, ("action", "ids", "collection"))
    action, ids, collection = body.get("action"), body.get("ids"), body.get("collection")
    if action not in BULK_ACTIONS:
        options = ", ".join(f"'{a}'" for a in BULK_ACTIONS)
        errors.append(_body_error("action", f"Input should be one of {options}",
                                  "literal_error"))
    if not isinstance(ids, list) or not ids:
        errors.append(_body_error("ids", "Input should be a list of 1 to 1000 image ids",
                                  "list_type" if not isinstance(ids, list) else "too_short"))
    elif len(ids) > MAX_BULK:
        errors.append(_body_error("ids", f"List should have at most {MAX_BULK} items, "
                                  f"not {len(ids)}", "too_long"))
    else:
        errors += [{"loc": ["body", "ids", n], "msg": "Input should be a valid integer id",
                    "type": "int_type"}
                   for n, value in enumerate(ids)
                   if isinstance(value, bool) or not isinstance(value, int)
                   or not 0 < value <= gallery.MAX_ID]
    if action in ("add_to_collection", "remove_from_collection"):
        if isinstance(collection, bool) or not isinstance(collection, int):
            errors.append(_body_error("collection", "Field required: the collection's id "
                                      "(an integer)", "missing" if collection is None
                                      else "int_type"))
    elif collection is not None and action in BULK_ACTIONS:
        errors.append(_body_error("collection", f"Not used by action '{action}'",
                                  "extra_forbidden"))
    if errors:
        raise ValidationFailed(errors)
    return action, list(dict.fromkeys(ids)), collection


def bulk(action: str, ids: list[int], collection_id: int | None = None) -> BulkResult:
    """Apply one action to many images; ids that name no image come back in `missing`."""
    collection = collection_or_404(collection_id) if collection_id is not None else None
    found = set(db.session.scalars(sa.select(Image.id).where(Image.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    present = [i for i in ids if i in found]
    if not present:
        return BulkResult(0, missing)
    if action in ("favorite", "unfavorite"):
        db.session.execute(sa.update(Image).where(Image.id.in_(present))
                           .values(favorite=action == "favorite"))
        db.session.commit()
        db.session.expire_all()
    elif action == "add_to_collection":
        add_to_collection(collection, present)
    elif action == "remove_from_collection":
        remove_from_collection(collection, present)
    elif action == "delete":
        return _delete_result(present, missing)
    return BulkResult(len(present), missing)


def _delete_result(ids: list[int], missing: list[int]) -> BulkResult:
    """Records first, in one transaction; then their files, reporting any that stay."""
    rows = db.session.execute(sa.select(Image.id, Image.filename).where(Image.id.in_(ids))).all()
    db.session.execute(sa.delete(collection_image).where(collection_image.c.image_id.in_(ids)))
    db.session.execute(sa.delete(Image).where(Image.id.in_(ids)))
    db.session.commit()
    db.session.expire_all()
    store = service().store
    failed = []
    for row in rows:
        try:
            store.delete(row.filename, row.id)
        except (OSError, StorageError) as exc:
            reason = exc.detail if isinstance(exc, StorageError) else exc.strerror
            failed.append({"id": row.id, "detail": f"record deleted, file left: {reason}"})
    return BulkResult(len(rows), missing, failed)


# --- zip export ---------------------------------------------------------------------------------

class _Sink(io.RawIOBase):
    """A write-only, unseekable stream whose bytes are taken out as they come (zipfile then
    writes data descriptors and never seeks back)."""

    def __init__(self):
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


BLOCK = 256 * 1024


def export_zip(id_chunks: Iterable[list[int]]) -> Iterator[bytes]:
    """The images of the given ids (in chunks), each under its filename, and metadata.jsonl.

    Streamed: a block of a file at a time goes out, the records' lines wait in a temporary
    file, so memory stays flat however many images there are.
    """
    store = service().store
    sink = _Sink()
    lines = tempfile.TemporaryFile()
    try:
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for ids in id_chunks:
                records = list(db.session.scalars(
                    sa.select(Image).where(Image.id.in_(ids))
                    .order_by(Image.created_at.desc(), Image.id.desc())))
                entries = [(r.filename, r.created_at, r.file_size, r.to_dict()) for r in records]
                db.session.commit()  # no read transaction held open while the bytes stream
                db.session.expunge_all()
                for filename, created_at, size, record in entries:
                    record["file_included"] = yield from _add_file(
                        archive, sink, store, filename, created_at, size)
                    lines.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
                yield sink.take()
            info = zipfile.ZipInfo("metadata.jsonl", utcnow().timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            lines.seek(0)
            with archive.open(info, "w", force_zip64=True) as entry:
                for block in iter(lambda: lines.read(BLOCK), b""):
                    entry.write(block)
                    yield sink.take()
        yield sink.take()
    finally:
        lines.close()


def _add_file(archive, sink, store, filename, created_at, size):
    """Copy one stored file into the archive a block at a time; False when it is missing."""
    try:
        source = store.open(filename)
    except (OSError, StorageError):  # the record still says what the file was
        return False
    with source:
        info = zipfile.ZipInfo(filename, created_at.timetuple()[:6])
        info.file_size = size
        with archive.open(info, "w", force_zip64=size > 2**31) as entry:
            for block in iter(lambda: source.read(BLOCK), b""):
                entry.write(block)
                yield sink.take()
    return True


# --- import -------------------------------------------------------------------------------------

@dataclass
class Imported:
    record: Image
    created: bool


class Refused(Exception):
    """A file that cannot be imported, with the reason."""


def inspect(data: bytes) -> tuple[PILImage.Image, metadata.Metadata]:
    """Open and check an upload, and read its metadata; Refused says why it cannot be used."""
    try:
        image = open_image(data)
    except InvalidImage as exc:
        raise Refused(str(exc)) from None
    try:
        found = metadata.read(image)
    except metadata.MetadataTooLarge as exc:
        raise Refused(str(exc)) from None
    return image, found


def existing(digest: str) -> Image | None:
    return db.session.scalar(sa.select(Image).where(Image.sha256 == digest)
                             .order_by(Image.id).limit(1))


def import_image(data: bytes, *, dry_run: bool = False) -> Imported | None:
    """Store the file as it is, with a thumbnail and a record of what its metadata says.

    The same file (SHA-256) already in the library is not stored again: its record is returned.
    With `dry_run`, the file is checked and looked up but nothing is written (None if new).
    """
    digest = hashlib.sha256(data).hexdigest()
    found = existing(digest)
    if found is not None:
        return Imported(found, created=False)
    _, meta = inspect(data)
    if dry_run:
        return None
    staged = service().store.stage(data, None)
    params = meta.parameters
    seed = params.get("seed")
    created_at = utcnow()
    record = Image(
        filename=staged.placeholder,
        prompt=str(params.get("prompt") or ""),
        negative_prompt=str(params.get("negative_prompt") or ""),
        provider="imported",
        model=str(params.get("model") or "")[:200],
        seed=seed if isinstance(seed, int) and 0 <= seed <= MAX_SEED_VALUE else None,
        width=staged.width,
        height=staged.height,
        steps=_in_range(params.get("steps"), 0, 2**31 - 1),
        cfg_scale=params.get("cfg_scale"),
        requested={},
        ignored=[],
        content_filtered=False,
        format=staged.format,
        file_size=staged.file_size,
        duration_ms=0,
        created_at=created_at,
        sha256=staged.sha256,
        source=meta.format,
    )
    try:
        db.session.add(record)
        db.session.flush()
        staged.place(f"{created_at:%Y%m%d_%H%M%S}_{record.id}", record.id)
        record.filename = staged.filename
        db.session.commit()
    except BaseException:
        db.session.rollback()
        staged.discard(record.id)
        raise
    return Imported(record, created=True)


def _in_range(value, low: int, high: int) -> int | None:
    return value if isinstance(value, int) and low <= value <= high else None
