"""The service's item lifecycle: DELETE /items/{id}, upsert by key, where/filter in /search."""

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from skfindkit import ExactIndex, attach_keys, attach_metadata, io  # noqa: E402
from skfindkit.serve import create_app  # noqa: E402

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
N = 30


def _index(metadata=True):
    X = np.random.RandomState(0).rand(N, 4)
    index = ExactIndex(n_neighbors=3).fit(X)
    attach_keys(index, [f"k{i}" for i in range(N)])
    if metadata:
        attach_metadata(index, {"shop": np.array(["a", "b"])[np.arange(N) % 2],
                                "year": 2000 + np.arange(N)})
    return index, X


def _ids(response):
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


def test_where_and_filter_restrict_a_search_as_json_or_query_parameters():
    index, X = _index()
    with TestClient(create_app(index)) as client:
        body = {"vector": X[0].tolist()}
        assert set(_ids(client.post("/search", json={**body, "where": "shop == 'b'"}))) <= set(
            range(1, N, 2))
        assert _ids(client.post("/search?where=year%20%3E%3D%202028", json=body)) in (
            [28, 29], [29, 28])  # two items pass: two results, not k
        assert set(_ids(client.post("/search", json={**body, "filter": [5, 6, 7]}))) == {5, 6, 7}
        assert set(_ids(client.post("/search?filter=5,6", json=body))) == {5, 6}
        for bad in ({"where": "colour == 1"}, {"where": "shop =="}, {"filter": [N + 5]},
                    {"filter": "x"}, {"where": 3}):
            response = client.post("/search", json={**body, **bad})
            assert response.status_code == 422, (bad, response.text)
        hit = client.post("/search?k=1", json=body).json()["results"][0]
        assert hit["metadata"] == {"shop": "a", "year": 2000}
        assert "unknown column 'colour'" in client.post(
            "/search", json={**body, "where": "colour == 1"}).json()["detail"]


@pytest.mark.parametrize("where", ["json", "query"])
def test_a_filter_id_beyond_int64_is_422_naming_filter(where):
    index, X = _index(metadata=False)
    body = {"vector": X[0].tolist()}
    with TestClient(create_app(index), raise_server_exceptions=False) as client:
        for huge in (10**40, 9999999999999999999, int("9" * 4000)):
            if where == "json":
                response = client.post("/search", json={**body, "filter": [huge]})
            else:
                response = client.post(f"/search?filter={huge}", json=body)
            assert response.status_code == 422, response.text
            assert "filter" in response.json()["detail"]
        response = client.post("/search?filter=" + "9" * 5000, json=body)
        assert response.status_code == 422 and "filter" in response.json()["detail"]
        assert client.post("/search", json=body).status_code == 200


def test_delete_removes_an_item_for_good_and_saves(tmp_path):
    index, X = _index()
    path = tmp_path / "p.skfk"
    io.save(index, path)
    with TestClient(create_app(index, token=TOKEN, save_path=path)) as client:
        assert client.delete("/items/4").status_code == 401
        response = client.delete("/items/4", headers=AUTH)
        assert response.status_code == 200 and response.json()["items"] == N - 1
        assert 4 not in _ids(client.post("/search", json={"vector": X[4].tolist()}))
        assert client.delete("/items/4", headers=AUTH).status_code == 404
        assert client.get("/items/4").status_code == 404
        assert client.get("/info").json()["items"] == N - 1
    assert not io.load(path).is_live(4)
    with TestClient(create_app(_index()[0])) as client:  # no token: read-only
        assert client.delete("/items/1", headers=AUTH).status_code == 403


def test_posting_a_known_key_replaces_the_item():
    index, X = _index(metadata=False)
    with TestClient(create_app(index, token=TOKEN)) as client:
        moved = (X[3] + 5.0).tolist()
        response = client.post("/items", json={"vector": moved, "key": "k3"}, headers=AUTH)
        assert response.status_code == 201, response.text
        assert response.json()["replaced"] == [3] and response.json()["added"][0]["id"] == N
        hits = client.post("/search?k=1", json={"vector": moved}).json()["results"]
        assert hits[0]["id"] == N and hits[0]["key"] == "k3"
        assert 3 not in _ids(client.post("/search", json={"vector": X[3].tolist()}))
        assert client.get("/info").json()["items"] == N


def test_an_addition_with_metadata_is_found_by_a_where_search_and_saved(tmp_path):
    index, X = _index()
    path = tmp_path / "p.skfk"
    io.save(index, path)
    with TestClient(create_app(index, token=TOKEN, save_path=path)) as client:
        assert client.get("/info").json()["metadata"] == {"shop": "text", "year": "numeric"}
        new = (X[0] + 0.01).tolist()
        response = client.post("/items", headers=AUTH, json={
            "vector": new, "key": "new", "metadata": {"shop": "c", "year": 2100}})
        assert response.status_code == 201, response.text
        assert response.json()["added"] == [{"id": N, "key": "new"}]
        hits = client.post("/search", json={"vector": X[0].tolist(),
                                            "where": "shop == 'c'"}).json()["results"]
        assert [(h["id"], h["key"], h["metadata"]) for h in hits] == [
            (N, "new", {"shop": "c", "year": 2100})]
        # several at once: one object per item; an upsert gives the item its new row
        response = client.post("/items", headers=AUTH, json={
            "vectors": [X[1].tolist(), X[2].tolist()], "keys": ["k1", "two"],
            "metadata": [{"shop": "d", "year": 1}, {"shop": "d", "year": 2.5}]})
        assert response.status_code == 201 and response.json()["replaced"] == [1]
        assert sorted(_ids(client.post("/search?where=shop%20%3D%3D%20%27d%27",
                                       json={"vector": X[1].tolist()}))) == [N + 1, N + 2]
    saved = io.load(path)  # saved with every addition: keys, ids and columns agree
    assert saved.n_samples_fit_ == N + 3 and not saved.is_live(1)
    assert all(v.shape == (N + 3,) for v in saved.item_metadata_.values())
    assert saved.item_keys_[N + 1] == "k1" and saved.item_metadata_["year"][N + 2] == 2.5
    assert io.load(path).kneighbors([new], 1, return_distance=False)[0, 0] == N


@pytest.mark.parametrize("metadata, message", [
    (None, "the index has metadata columns ['shop', 'year']"),
    ({"shop": "c"}, "lack the column(s) ['year']"),
    ({"shop": "c", "year": 1, "colour": "red"}, "no column(s) ['colour']"),
    ({"shop": "c", "year": "1999"}, "'year' is numeric in the index"),
    ({"shop": "c", "year": True}, "'year' is numeric in the index"),
    ({"shop": "c", "year": None}, "gives null for column 'year'"),
    ({"shop": "c", "year": [1]}, "gives list for column 'year'"),
    ([{"shop": "c", "year": 1}] * 2, "2 objects for 1 items"),
    ("shop=c", "metadata must be an object"),
])
def test_additions_with_missing_or_wrong_metadata_are_422_naming_it(metadata, message):
    index, X = _index()
    with TestClient(create_app(index, token=TOKEN)) as client:
        body = {"vector": X[0].tolist(), "key": "new"}
        response = client.post("/items", headers=AUTH, json={
            **body, **({} if metadata is None else {"metadata": metadata})})
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"]
        assert client.get("/info").json()["items"] == N  # nothing was added


def test_metadata_for_an_index_without_columns_is_refused():
    index, X = _index(metadata=False)
    with TestClient(create_app(index, token=TOKEN)) as client:
        response = client.post("/items", headers=AUTH, json={
            "vector": X[0].tolist(), "key": "new", "metadata": {"shop": "c"}})
        assert response.status_code == 422 and "['shop']" in response.json()["detail"]
        assert client.get("/info").json()["metadata"] == {}


def test_an_uploaded_file_takes_its_metadata_from_a_multipart_field(tmp_path):
    pytest.importorskip("PIL", reason="Pillow (image extra) is not installed")
    from .._serve_fixtures import digit_image_pipeline, write_digit_pngs

    paths, labels = write_digit_pngs(tmp_path, n=21)
    pipeline = attach_metadata(digit_image_pipeline(paths[:20]), {"label": labels[:20]})
    with TestClient(create_app(pipeline, items_dir=tmp_path, token=TOKEN,
                               added_dir=tmp_path / "added")) as client:
        with open(paths[20], "rb") as handle:
            data = handle.read()
        response = client.post("/items", headers=AUTH, files={"file": ("new.png", data)},
                               data={"metadata": '{"label": 99}'})
        assert response.status_code == 201, response.text
        hits = client.post("/search?where=label%20%3D%3D%2099",
                           files={"file": ("q.png", data)}).json()["results"]
        assert [(h["id"], h["metadata"]) for h in hits] == [(20, {"label": 99})]
        for bad, message in (("{label: 1}", "not valid JSON"), ('{"colour": 1}', "['label']")):
            response = client.post("/items", headers=AUTH, files={"file": ("new.png", data)},
                                   data={"metadata": bad})
            assert response.status_code == 422 and message in response.json()["detail"]
