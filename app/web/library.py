"""Page actions on the library: favourites, collections, bulk, export, import and png-info.

They are web routes rather than calls from the page to /api/*: the page is authenticated by
its session cookie and CSRF token (sent by app.js in the X-CSRFToken header), so it works the
same whether or not the server sets API_TOKENS, and never needs a token in the browser.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import flash, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from .. import gallery, library
from ..api.library import export_response, png_info_body, refused, uploaded_bytes
from ..params import ValidationFailed
from .routes import GALLERY_PAGE, bp, tolerant_filters


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or request.is_json


def _back(default: str):
    target = request.form.get("next") or ""
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return redirect(target, code=303)
    return redirect(default, code=303)


@bp.post("/images/<int:image_id>/favorite")
def favorite(image_id: int):
    """Star or unstar an image."""
    image = gallery.get_or_404(image_id)
    library.update_image(image, {"favorite": request.form.get("favorite") == "1"})
    if _wants_json():
        return jsonify({"id": image.id, "favorite": image.favorite})
    return _back(url_for("web.image", image_id=image.id))


@bp.post("/images/<int:image_id>/collections")
def image_collections(image_id: int):
    """Add the image to a collection (an existing one, or a new one by name), or take it out."""
    image = gallery.get_or_404(image_id)
    page = url_for("web.image", image_id=image.id)
    try:
        if request.form.get("new_name", "").strip():
            collection = library.create_collection({"name": request.form["new_name"]})
        else:
            collection = library.collection_or_404(request.form.get("collection", type=int) or 0)
    except library.Conflict as exc:
        flash(str(exc))
        return redirect(page, code=303)
    except ValidationFailed as exc:
        flash(exc.errors[0]["msg"])
        return redirect(page, code=303)
    if request.form.get("action") == "remove":
        library.remove_from_collection(collection, [image.id])
        flash(f"Removed from “{collection.name}”.")
    else:
        library.add_to_collection(collection, [image.id])
        flash(f"Added to “{collection.name}”.")
    return redirect(page, code=303)


def _filter_args(query: str) -> MultiDict:
    return MultiDict([(k, v) for k, values in parse_qs(query.lstrip("?")).items()
                      for v in values])


@bp.post("/images/bulk")
def bulk():
    """The gallery's action bar: JSON {action, ids | filter, collection} with the CSRF header.

    `filter` is the gallery's query string ("select all matching"): every image it matches,
    a thousand at a time.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed([{"loc": ["body"], "msg": "Expected a JSON object",
                                 "type": "model_attributes_type"}])
    if "filter" in body and "ids" not in body:
        query = body.pop("filter")
        filters = gallery.parse_filters(_filter_args(query if isinstance(query, str) else ""))
        action, _, collection = library.parse_bulk({**body, "ids": [1]})
        total = library.BulkResult(0, [])
        for ids in list(gallery.matching_ids(filters, library.MAX_BULK)):
            result = library.bulk(action, ids, collection)
            total.done += result.done
            total.failed += result.failed
        return jsonify(total.as_dict())
    action, ids, collection = library.parse_bulk(body)
    return jsonify(library.bulk(action, ids, collection).as_dict())


@bp.get("/images/export")
def export():
    """Download a selection, or everything a gallery filter matches, as a zip."""
    return export_response(request.args)


@bp.post("/images/import")
def import_image():
    """One file dropped on the gallery (multipart `file`, CSRF header); answers JSON."""
    try:
        result = library.import_image(uploaded_bytes())
    except library.Refused as exc:
        raise refused(exc) from None
    body = result.record.to_dict()
    body["created"] = result.created
    return jsonify(body), 201 if result.created else 200


@bp.post("/png-info")
def png_info():
    """What an image dropped on the form carries (multipart `file`, CSRF header)."""
    return jsonify(png_info_body(uploaded_bytes()))


@bp.get("/collections")
def collections():
    """Every collection, with its count and cover."""
    return render_template("collections.html",
                           collections=library.describe_collections(library.all_collections()))


@bp.post("/collections")
def create_collection():
    """Make a collection from the form."""
    try:
        collection = library.create_collection({"name": request.form.get("name", ""),
                                                "description": request.form.get("description",
                                                                                "")})
    except library.Conflict as exc:
        flash(str(exc))
        return redirect(url_for("web.collections"), code=303)
    except ValidationFailed as exc:
        flash(f"{exc.errors[0]['loc'][-1]}: {exc.errors[0]['msg']}")
        return redirect(url_for("web.collections"), code=303)
    flash(f"Collection “{collection.name}” created.")
    return redirect(url_for("web.collection", collection_id=collection.id), code=303)


@bp.get("/collections/<int:collection_id>")
def collection(collection_id: int):
    """One collection's images, newest first."""
    found = library.collection_or_404(collection_id)
    filters, _ = tolerant_filters(request.args)
    filters["collection"] = found.id
    before = request.args.get("before") or None
    after = None if before else request.args.get("after") or None
    try:
        page = gallery.page(GALLERY_PAGE, before, after=after, **filters)
    except gallery.BadCursor:
        page = gallery.page(GALLERY_PAGE, **filters)
    return render_template("collection.html", collection=library.describe_collections([found])[0],
                           page=page, paged=bool(before or after))


@bp.post("/collections/<int:collection_id>/edit")
def edit_collection(collection_id: int):
    """Rename a collection or change its description."""
    found = library.collection_or_404(collection_id)
    try:
        library.update_collection(found, {"name": request.form.get("name", found.name),
                                          "description": request.form.get("description", "")})
        flash("Collection saved.")
    except library.Conflict as exc:
        flash(str(exc))
    except ValidationFailed as exc:
        flash(f"{exc.errors[0]['loc'][-1]}: {exc.errors[0]['msg']}")
    return redirect(url_for("web.collection", collection_id=found.id), code=303)


@bp.post("/collections/<int:collection_id>/delete")
def delete_collection(collection_id: int):
    """Delete a collection; its images stay."""
    found = library.collection_or_404(collection_id)
    library.delete_collection(found)
    flash(f"Collection “{found.name}” deleted; its images are still in the gallery.")
    return redirect(url_for("web.collections"), code=303)
