"""The library in the pages: stars, collections, the gallery's filters and bulk actions, import
and png-info through the web routes (session cookie + CSRF, so they work with API_TOKENS set)."""

from __future__ import annotations

import io
import re
import zipfile

import pytest

from tests import metadata_samples as samples
from tests.conftest import files_in


def token(client, path="/images") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def generate(client, prompt="a red fox"):
    response = client.post("/api/generate", json={"prompt": prompt, "provider": "offline",
                                                  "width": 512, "height": 512})
    assert response.status_code == 201
    return response.get_json()


@pytest.fixture
def guarded(make_app):
    """API tokens set: the pages must still work without one."""
    app = make_app(API_TOKENS=["page-test-token"])
    client = app.test_client()
    auth = {"Authorization": "Bearer page-test-token"}
    client.generate = lambda prompt="a red fox": client.post(
        "/api/generate", json={"prompt": prompt, "provider": "offline", "width": 512,
                               "height": 512}, headers=auth).get_json()
    return client


def test_star_from_the_gallery_without_a_token(guarded):
    record = guarded.generate()
    page = guarded.get("/images").get_data(as_text=True)
    assert 'aria-label="Add to favourites"' in page
    response = guarded.post(f"/images/{record['id']}/favorite",
                            data={"csrf_token": token(guarded), "favorite": "1", "next": "/images"})
    assert response.status_code == 303 and response.headers["Location"] == "/images"
    assert 'aria-label="Remove from favourites"' in guarded.get("/images").get_data(as_text=True)
    response = guarded.post(f"/images/{record['id']}/favorite", data={"favorite": "0"},
                            headers={"X-CSRFToken": token(guarded), "Accept": "application/json"})
    assert response.get_json() == {"id": record["id"], "favorite": False}


def test_page_actions_need_the_csrf_token(guarded):
    record = guarded.generate()
    assert guarded.post(f"/images/{record['id']}/favorite", data={"favorite": "1"}).status_code \
        == 400
    assert guarded.post("/images/bulk", json={"action": "delete",
                                              "ids": [record["id"]]}).status_code == 400
    assert guarded.post("/collections", data={"name": "x"}).status_code == 400


def test_collections_pages_and_image_page(client):
    record = generate(client, "a castle")
    csrf = token(client)
    response = client.post("/collections", data={"csrf_token": csrf, "name": "Castles",
                                                 "description": "for the client"})
    assert response.status_code == 303
    collection_url = response.headers["Location"]
    image_page = client.get(f"/images/{record['id']}").get_data(as_text=True)
    assert "In no collection." in image_page and ">Castles</option>" in image_page
    cid = int(collection_url.rsplit("/", 1)[1])
    client.post(f"/images/{record['id']}/collections", data={"csrf_token": csrf,
                                                             "collection": cid})
    image_page = client.get(f"/images/{record['id']}").get_data(as_text=True)
    assert f'href="/collections/{cid}">Castles</a>' in image_page
    listing = client.get("/collections").get_data(as_text=True)
    assert "1 image<" in listing and f"/static/images/thumbs/{record['id']}.webp" in listing
    assert 'alt="a castle"' in client.get(collection_url).get_data(as_text=True)
    client.post(f"/images/{record['id']}/collections", data={"csrf_token": csrf,
                                                             "new_name": "Also castles"})
    assert client.get("/api/collections").get_json()[0]["name"] == "Also castles"
    response = client.post("/collections", data={"csrf_token": csrf, "name": "castles"},
                           follow_redirects=True)
    assert "already exists" in response.get_data(as_text=True)
    client.post(f"/images/{record['id']}/collections", data={"csrf_token": csrf,
                                                             "collection": cid,
                                                             "action": "remove"})
    assert "0 images" in client.get(collection_url).get_data(as_text=True)
    client.post(f"/collections/{cid}/delete", data={"csrf_token": csrf})
    assert client.get(collection_url).status_code == 404
    assert client.get(f"/images/{record['id']}").status_code == 200


def test_gallery_filters(client):
    fox, owl = generate(client, "a fox"), generate(client, "an owl")
    client.patch(f"/api/images/{owl['id']}", json={"favorite": True})
    page = client.get("/images?favorite=true").get_data(as_text=True)
    assert 'alt="an owl"' in page and 'alt="a fox"' not in page and "1 image<" in page
    page = client.get("/images?since=not-a-date").get_data(as_text=True)
    assert "Ignored since=" in page and "2 images" in page
    assert 'alt="a fox"' in client.get("/images?model=abstract&q=fox").get_data(as_text=True)
    assert fox


def test_bulk_by_filter_select_all_matching(client, images_dir):
    for index in range(5):
        generate(client, f"storm {index}")
    keep = generate(client, "calm sea")
    response = client.post("/images/bulk", json={"action": "delete", "filter": "q=storm"},
                           headers={"X-CSRFToken": token(client)})
    assert response.status_code == 200 and response.get_json()["done"] == 5
    assert files_in(images_dir) == sorted([keep["filename"], f"thumbs/{keep['id']}.webp"])


def test_download_selection_as_zip(client):
    records = [generate(client, f"tile {i}") for i in range(2)]
    response = client.get(f"/images/export?ids={records[0]['id']},{records[1]['id']}")
    names = zipfile.ZipFile(io.BytesIO(response.get_data())).namelist()
    assert sorted(names) == sorted([r["filename"] for r in records] + ["metadata.jsonl"])


def test_import_and_png_info_through_the_page_routes(guarded):
    csrf = token(guarded, "/")
    data = samples.a1111_png()
    files = {"file": (io.BytesIO(data), "a.png")}
    response = guarded.post("/png-info", data=files, headers={"X-CSRFToken": csrf},
                            content_type="multipart/form-data")
    assert response.get_json()["parameters"]["seed"] == 1234567890
    response = guarded.post("/images/import", data={"file": (io.BytesIO(data), "a.png")},
                            headers={"X-CSRFToken": csrf}, content_type="multipart/form-data")
    assert response.status_code == 201 and response.get_json()["created"] is True
    again = guarded.post("/images/import", data={"file": (io.BytesIO(data), "a.png")},
                         headers={"X-CSRFToken": csrf}, content_type="multipart/form-data")
    assert again.status_code == 200 and again.get_json()["created"] is False
    image_page = guarded.get(f"/images/{response.get_json()['id']}").get_data(as_text=True)
    assert "parameters read from a1111 metadata" in image_page
