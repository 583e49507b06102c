"""JSON API routes that curate the library: favourites, collections, bulk, export, import, png-info."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from flask import Response, jsonify, request, stream_with_context, url_for

from .. import gallery, library
from ..params import ValidationFailed
from ..storage import MAX_BYTES
from .errors import error_response
from .routes import bp, json_body

# An upload may be as large as the store accepts (the app's body limit is for JSON requests).
UPLOAD_LIMIT = MAX_BYTES + 64 * 1024
BASE64_LIMIT = MAX_BYTES * 4 // 3 + 64 * 1024


@bp.errorhandler(library.Conflict)
def conflict(exc: library.Conflict):
    return error_response(409, str(exc), "conflict")


def _file_error(msg: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed([{"loc": ["body", "file"], "msg": msg, "type": kind}])


def uploaded_bytes(allow_json: bool = False) -> bytes:
    """The bytes of a multipart `file` (or, where allowed, of JSON {"image": "<base64>"})."""
    if allow_json and request.mimetype == "application/json":
        request.max_content_length = BASE64_LIMIT
        body = json_body()
        encoded = body.get("image") if isinstance(body, dict) else None
        if not isinstance(encoded, str):
            raise ValidationFailed([{"loc": ["body", "image"],
                                     "msg": "Field required: the image as base64",
                                     "type": "missing"}])
        if encoded.startswith("data:"):
            encoded = encoded.partition(",")[2]
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed([{"loc": ["body", "image"], "msg": "Invalid base64",
                                     "type": "value_error"}]) from None
    request.max_content_length = UPLOAD_LIMIT
    if request.mimetype != "multipart/form-data":
        raise _file_error("Send the image as a multipart/form-data upload in the field 'file'"
                          + (" (or JSON {\"image\": \"<base64>\"})" if allow_json else ""),
                          "missing")
    upload = request.files.get("file")
    if upload is None:
        raise _file_error("Field required", "missing")
    try:
        return upload.read(MAX_BYTES + 1)
    finally:
        upload.close()


def refused(exc: library.Refused) -> ValidationFailed:
    return _file_error(f"Not an image this app can use: {exc}", "invalid_image")


@bp.patch("/images/<int:image_id>")
def patch_image(image_id: int):
    """Mark an image as a favourite, or not."""
    return jsonify(library.update_image(gallery.get_or_404(image_id), json_body()).to_dict())


@bp.post("/images")
def import_image():
    """Import one image file (PNG, JPEG or WebP) with the parameters its metadata holds."""
    try:
        result = library.import_image(uploaded_bytes())
    except library.Refused as exc:
        raise refused(exc) from None
    response = jsonify(result.record.to_dict())
    response.status_code = 201 if result.created else 200
    response.headers["Location"] = url_for("api.get_image", image_id=result.record.id)
    return response


@bp.post("/images/bulk")
def bulk():
    """One action on up to 1,000 images."""
    action, ids, collection = library.parse_bulk(json_body())
    return jsonify(library.bulk(action, ids, collection).as_dict())


def parse_ids(raw: str) -> list[int]:
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ValidationFailed([{"loc": ["query", "ids"],
                                 "msg": "Input should be comma-separated image ids",
                                 "type": "int_parsing"}]) from None
    if not ids or not all(0 < i <= gallery.MAX_ID for i in ids):
        raise ValidationFailed([{"loc": ["query", "ids"], "msg": "Input should be image ids",
                                 "type": "value_error"}])
    return list(dict.fromkeys(ids))


def export_response(args) -> Response:
    """A streamed zip of the images named by `ids`, else of those the filters match."""
    if args.get("ids") is not None:
        ids = parse_ids(args["ids"])
        chunks = (ids[start:start + 500] for start in range(0, len(ids), 500))
    else:
        chunks = gallery.matching_ids(gallery.parse_filters(args))
    name = f"images-{datetime.now(UTC):%Y%m%d-%H%M%S}.zip"
    return Response(stream_with_context(library.export_zip(chunks)), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@bp.get("/images/export")
def export():
    """A zip of images (each under its filename) and metadata.jsonl, streamed."""
    return export_response(request.args)


@bp.get("/collections")
def list_collections():
    """Every collection with its image count and cover."""
    return jsonify(library.describe_collections(library.all_collections()))


def _collection_response(collection, status: int = 200):
    response = jsonify(library.describe_collections([collection])[0])
    response.status_code = status
    if status == 201:
        response.headers["Location"] = url_for("api.get_collection", collection_id=collection.id)
    return response


@bp.post("/collections")
def create_collection():
    """A new, empty collection; names are unique."""
    return _collection_response(library.create_collection(json_body()), 201)


@bp.get("/collections/<int:collection_id>")
def get_collection(collection_id: int):
    """One collection."""
    return _collection_response(library.collection_or_404(collection_id))


@bp.patch("/collections/<int:collection_id>")
def patch_collection(collection_id: int):
    """Rename a collection or change its description."""
    collection = library.collection_or_404(collection_id)
    return _collection_response(library.update_collection(collection, json_body()))


@bp.delete("/collections/<int:collection_id>")
def delete_collection(collection_id: int):
    """Delete a collection; its images stay in the library."""
    library.delete_collection(library.collection_or_404(collection_id))
    return "", 204


@bp.put("/collections/<int:collection_id>/images/<int:image_id>")
def add_to_collection(collection_id: int, image_id: int):
    """Put an image in a collection (again is fine)."""
    collection = library.collection_or_404(collection_id)
    library.add_to_collection(collection, [gallery.get_or_404(image_id).id])
    return "", 204


@bp.delete("/collections/<int:collection_id>/images/<int:image_id>")
def remove_from_collection(collection_id: int, image_id: int):
    """Take an image out of a collection (the image stays in the library)."""
    collection = library.collection_or_404(collection_id)
    library.remove_from_collection(collection, [gallery.get_or_404(image_id).id])
    return "", 204


def png_info_body(data: bytes) -> dict:
    try:
        image, found = library.inspect(data)
    except library.Refused as exc:
        raise refused(exc) from None
    body = found.as_dict()
    body["image"] = {"format": image.format.lower(), "width": image.width,
                     "height": image.height}
    return body


@bp.post("/png-info")
def png_info():
    """The generation parameters embedded in an image, whoever wrote them; nothing is stored."""
    return jsonify(png_info_body(uploaded_bytes(allow_json=True)))
