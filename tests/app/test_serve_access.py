"""What the search service serves, and to whom: files only under its items folder, tokens."""

import base64
import os

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("python_multipart", reason="the serve extra (python-multipart) is not installed")
pytest.importorskip("PIL", reason="Pillow (image extra) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from skfindkit import ExactIndex, attach_keys  # noqa: E402
from skfindkit import io as skio  # noqa: E402
from skfindkit.serve import create_app  # noqa: E402

from .._serve_fixtures import ServeProcess, digit_image_pipeline, write_digit_pngs  # noqa: E402

READ, WRITE = "read-only-token", "write-token"
SECRET = "the secret outside the items folder"


@pytest.fixture
def folders(tmp_path):
    """(items folder, a secret file outside it); the items folder holds links that leave it."""
    items, outside = tmp_path / "items", tmp_path / "outside"
    items.mkdir()
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text(SECRET)
    (items / "inside.txt").write_text("an item")
    (items / "sub").mkdir()
    (items / "sub" / "nested.txt").write_text("a nested item")
    os.symlink(outside, items / "linkdir")
    os.symlink(secret, items / "escape.txt")
    return items, secret


@pytest.fixture(scope="module")
def vectors():
    return np.random.RandomState(0).rand(40, 8).astype(np.float32)


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def _hostile_keys(secret):
    return ["/etc/passwd", str(secret), "../outside/secret.txt", "sub/../../outside/secret.txt",
            "..\\outside\\secret.txt", "sub\\..\\..\\outside\\secret.txt",
            "..%2Foutside%2Fsecret.txt", "%2e%2e/outside/secret.txt", "linkdir/secret.txt",
            "escape.txt", "inside.txt\x00.png", "C:\\Windows\\win.ini", "//etc/passwd"]


def test_adding_a_key_that_names_a_file_outside_the_items_folder_is_refused(folders, vectors):
    items, secret = folders
    app = create_app(ExactIndex(n_neighbors=3).fit(vectors[:30]), items_dir=items, token=WRITE)
    with TestClient(app) as client:
        for key in _hostile_keys(secret):
            response = client.post("/items", headers=_auth(WRITE),
                                   json={"vector": vectors[35].tolist(), "key": key})
            assert response.status_code == 422, (key, response.text)
            detail = response.json()["detail"]
            assert repr(key) in detail and "items folder" in detail, detail
        assert client.get("/health").json()["items"] == 30  # nothing was added
        for n, key in enumerate(["inside.txt", "sub/nested.txt", "a label", 7]):
            response = client.post("/items", headers=_auth(WRITE),
                                   json={"vector": vectors[31 + n].tolist(), "key": key})
            assert response.status_code == 201, (key, response.text)
        assert client.get("/items/30").text == "an item"
        assert client.get("/items/31").text == "a nested item"
        assert client.get("/items/32").status_code == 404


def test_items_serves_no_file_outside_the_items_folder_whatever_the_pipeline_holds(folders,
                                                                                     vectors):
    """Keys written elsewhere (absolute paths, links, traversal) are shown, never read."""
    items, secret = folders
    inside = str(items / "inside.txt")  # an absolute key under the items folder is served
    keys = _hostile_keys(secret) + [inside]
    index = attach_keys(ExactIndex(n_neighbors=3).fit(vectors[:len(keys)]),
                        np.asarray(keys, dtype=object))
    with TestClient(create_app(index, items_dir=items)) as client:
        for i, key in enumerate(keys[:-1]):
            response = client.get(f"/items/{i}")
            assert response.status_code == 404, (key, response.text)
            assert "no file to show" in response.json()["detail"]
            assert SECRET not in response.text and "root:" not in response.text
        assert client.get(f"/items/{len(keys) - 1}").text == "an item"
        hits = client.post(f"/search?k={len(keys)}", json={"vector": vectors[0].tolist()}).json()
        urls = {h["key"]: h["url"] for h in hits["results"]}
        assert urls.pop(inside) == f"/items/{len(keys) - 1}"
        assert set(urls.values()) == {None}
        assert set(urls) == set(keys[:-1])  # the keys themselves are still shown


def test_added_uploads_are_served_from_where_the_server_stored_them(tmp_path):
    """Items added by upload live in the added folder, outside the items folder: served."""
    folder = tmp_path / "digits"
    folder.mkdir()
    paths, _ = write_digit_pngs(folder, n=30)
    app = create_app(digit_image_pipeline(paths[:20]), items_dir=folder, token=WRITE,
                     added_dir=tmp_path / "added")
    with TestClient(app) as client:
        with open(paths[25], "rb") as handle:
            added = client.post("/items", headers=_auth(WRITE),
                                files={"file": ("new.png", handle.read(), "image/png")})
        assert added.status_code == 201, added.text
        assert added.json()["added"][0]["key"].startswith(str(tmp_path / "added"))
        assert client.get("/items/20").headers["content-type"] == "image/png"


def _basic(token, user="anyone"):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


READ_ENDPOINTS = [("GET", "/"), ("GET", "/info"), ("GET", "/static/app.js"),
                  ("GET", "/static/style.css"), ("GET", "/items/0"), ("POST", "/search"),
                  ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/nowhere")]


def _call(client, method, path, vector, headers):
    if method == "POST":
        return client.post(path, json={"vector": vector}, headers=headers)
    return client.get(path, headers=headers)


def test_a_read_token_guards_every_endpoint_but_a_health_probe_that_says_only_ok(folders,
                                                                                  vectors):
    items, _ = folders
    index = attach_keys(ExactIndex(n_neighbors=3).fit(vectors[:3]),
                        np.asarray(["inside.txt", "a", "b"], dtype=object))
    app = create_app(index, items_dir=items, read_token=READ, token=WRITE)
    vector = vectors[0].tolist()
    with TestClient(app) as client:
        for method, path in READ_ENDPOINTS:
            for headers in ({}, _auth("wrong"), _basic("wrong"), {"Authorization": "Bearer"},
                            {"Authorization": "Basic !!notbase64"}, _auth(READ + "x"),
                            {"Authorization": READ}):
                response = _call(client, method, path, vector, headers)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert "read token" in response.json()["detail"]
                assert 'Basic realm="skfindkit"' in response.headers["www-authenticate"]
                assert "inside" not in response.text and "an item" not in response.text
            for headers in (_auth(READ), _basic(READ), _auth(WRITE), _basic(WRITE, user="")):
                response = _call(client, method, path, vector, headers)
                assert response.status_code == (404 if path == "/nowhere" else 200), (
                    method, path, headers, response.text)
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/health", headers=_auth("wrong")).json() == {"status": "ok"}
        assert client.get("/health", headers=_auth(READ)).json()["items"] == 3
        assert client.get("/info", headers=_basic(READ)).json() == client.get(
            "/health", headers=_basic(READ)).json()
        add = {"vector": vectors[5].tolist(), "key": "new"}
        assert client.post("/items", json=add).status_code == 401
        refused = client.post("/items", json=add, headers=_auth(READ))
        assert refused.status_code == 403 and "read" in refused.json()["detail"]
        assert client.post("/items", json=add, headers=_auth(WRITE)).status_code == 201
        # a browser sends a Basic login by itself, even for a form posted from another site
        basic = client.post("/items", json=add, headers=_basic(WRITE))
        assert basic.status_code == 401 and "Bearer" in basic.json()["detail"]
        assert client.get("/health", headers=_auth(READ)).json()["items"] == 4


def test_without_a_read_token_reading_is_open_and_health_describes_the_pipeline(vectors):
    with TestClient(create_app(ExactIndex(n_neighbors=3).fit(vectors), token=WRITE)) as client:
        assert client.get("/").status_code == 200
        assert client.get("/health", headers=_auth("anything")).json()["items"] == 40
        assert client.post("/search", json={"vector": vectors[1].tolist()}).status_code == 200


@pytest.mark.slow
def test_the_command_takes_a_read_token_from_the_environment(tmp_path):
    import httpx

    folder = tmp_path / "digits"
    folder.mkdir()
    paths, _ = write_digit_pngs(folder, n=20)
    skio.save(digit_image_pipeline(paths), folder / "pipeline.skfk")
    with ServeProcess(folder / "pipeline.skfk", env={"SKFINDKIT_SERVE_READ_TOKEN": READ}) as served:
        assert httpx.get(served.url + "/health").json() == {"status": "ok"}
        assert httpx.get(served.url + "/").status_code == 401
        assert httpx.get(served.url + "/items/3").status_code == 401
        page = httpx.get(served.url + "/", headers=_basic(READ))
        assert page.status_code == 200 and "<html" in page.text.lower()
        thumb = httpx.get(served.url + "/items/3", headers=_auth(READ))
        assert thumb.headers["content-type"] == "image/png"
    with ServeProcess(folder / "pipeline.skfk", "--read-token", READ, "--max-pixels", "63",
                      "--max-seconds", "2.5", "--max-decodes", "1") as served:
        assert httpx.get(served.url + "/items/3").status_code == 401
        info = httpx.get(served.url + "/info", headers=_auth(READ)).json()
        assert (info["max_pixels"], info["max_seconds"], info["max_decodes"]) == (63, 2.5, 1)
        with open(paths[3], "rb") as handle:
            big = httpx.post(served.url + "/search", headers=_auth(READ),
                             files={"file": ("q.png", handle.read())})
        assert big.status_code == 413 and "max_pixels=63" in big.json()["detail"]


@pytest.mark.slow
def test_added_uploads_stay_served_after_a_restart_without_the_token(tmp_path):
    import httpx

    folder, elsewhere = tmp_path / "digits", tmp_path / "pipelines"
    folder.mkdir()
    elsewhere.mkdir()
    paths, _ = write_digit_pngs(folder, n=25)
    saved = elsewhere / "pipeline.skfk"
    skio.save(digit_image_pipeline(paths[:20]), saved)
    with ServeProcess(saved, "--items-dir", str(folder), "--token", WRITE) as served:
        with open(paths[22], "rb") as handle:
            added = httpx.post(served.url + "/items", headers=_auth(WRITE),
                               files={"file": ("new.png", handle.read())})
        assert added.status_code == 201, added.text
    with ServeProcess(saved, "--items-dir", str(folder)) as served:
        item = httpx.get(served.url + "/items/20")
        assert item.status_code == 200 and item.headers["content-type"] == "image/png"
