"""What one ``POST /search`` costs besides the search: counted steps, never timings.

A JSON vector query must not resolve file paths for result keys that name no
file, its answer must not go through FastAPI's generic (recursive)
``jsonable_encoder``, and its query string (``k``, ``where``, ``filter``) must
not go through FastAPI's per-request parameter validation: each costs a
noticeable share of a sub-millisecond search.
"""

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("python_multipart",
                    reason="the serve extra (python-multipart) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from skfindkit import ExactIndex, attach_keys, search  # noqa: E402
from skfindkit.serve import create_app  # noqa: E402
from skfindkit.serve._items import ItemStore  # noqa: E402

N, DIM, K = 300, 16, 10


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, DIM)).astype(np.float32), rng.normal(size=(20, DIM))


def _counting(monkeypatch, owner, name):
    """Wrap ``owner.name`` so that its calls are counted; the counter (a list)."""
    calls = []
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def _searches(client, queries, index):
    for q in queries:
        response = client.post(f"/search?k={K}", json={"vector": q.tolist()})
        assert response.status_code == 200, response.text
        hits = response.json()["results"]
        expected = search(index, q[None], n_neighbors=K)
        assert [h["id"] for h in hits] == expected.indices[0].tolist()
        assert [h["key"] for h in hits] == expected.keys[0].tolist()
        np.testing.assert_allclose([h["distance"] for h in hits], expected.distances[0],
                                   rtol=1e-6)
        yield hits


def test_label_keys_resolve_no_paths(data, tmp_path, monkeypatch):
    """Keys that name no file in the items folder are told apart with one lookup, not a
    resolution of every reading of the key (``Path.resolve`` for each hit)."""
    X, queries = data
    index = attach_keys(ExactIndex(n_neighbors=K).fit(X), [f"item-{i}" for i in range(N)])
    (tmp_path / "item-3.txt").write_text("a file whose name is close to a key")
    resolutions = _counting(monkeypatch, ItemStore, "_inside")
    with TestClient(create_app(index, items_dir=tmp_path)) as client:
        for hits in _searches(client, queries, index):
            assert all(hit["url"] is None for hit in hits)
    assert len(resolutions) == 0


def test_file_keys_are_still_served(data, tmp_path):
    """A key naming a file inside the items folder keeps its URL; one outside does not."""
    X, queries = data
    keys = [f"item-{i}.txt" for i in range(N)]
    for key in keys[: N // 2]:
        (tmp_path / key).write_text(key)
    (tmp_path.parent / "outside.txt").write_text("outside")
    keys[-1] = "../outside.txt"
    index = attach_keys(ExactIndex(n_neighbors=K).fit(X), keys)
    with TestClient(create_app(index, items_dir=tmp_path)) as client:
        for hits in _searches(client, np.vstack([queries, X[-1:]]), index):
            for hit in hits:
                assert (hit["url"] is not None) == (hit["id"] < N // 2), hit


def test_search_answer_skips_the_generic_encoder(data, tmp_path, monkeypatch):
    """The /search answer is plain JSON built once, not walked by ``jsonable_encoder``."""
    routing = pytest.importorskip("fastapi.routing")
    if not hasattr(routing, "jsonable_encoder"):
        pytest.skip("this FastAPI version encodes responses elsewhere")
    X, queries = data
    index = attach_keys(ExactIndex(n_neighbors=K).fit(X), [f"item-{i}" for i in range(N)])
    with TestClient(create_app(index, items_dir=tmp_path)) as client:
        client.get("/health")
        encoded = _counting(monkeypatch, routing, "jsonable_encoder")
        assert client.get("/info").status_code == 200
        assert encoded, "the counter does not see FastAPI's encoder: the test cannot fail"
        encoded.clear()
        list(_searches(client, queries[:3], index))
    assert len(encoded) == 0


def _search_route(app):
    return next(r for r in app.routes if getattr(r, "path", None) == "/search")


def test_query_string_skips_the_generic_validator(data, tmp_path):
    """/search declares no typed query parameters (FastAPI would introspect each
    annotation on every request); it reads ``k``, ``where`` and ``filter`` itself, and
    the OpenAPI description still lists them."""
    X, queries = data
    index = attach_keys(ExactIndex(n_neighbors=K).fit(X), [f"item-{i}" for i in range(N)])
    app = create_app(index, items_dir=tmp_path)
    dependant = getattr(_search_route(app), "dependant", None)
    if dependant is None:
        pytest.skip("this FastAPI version keeps no dependant on its routes")
    assert [p.name for p in dependant.query_params] == []
    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()["paths"]["/search"]["post"]
        assert [p["name"] for p in schema["parameters"]] == ["k", "where", "filter"]
        list(_searches(client, queries[:2], index))


@pytest.mark.parametrize("query, status, count", [
    ("k=3", 200, 3), ("k=", 422, None), ("", 200, K), ("k=2&k=4", 200, 4), ("k=0", 422, None),
    ("k=-1", 422, None), ("k=ten", 422, None), ("k=1e3", 422, None), ("k=2.0", 422, None),
    ("k=" + "9" * 400, 422, None), ("k=%20", 422, None), ("k=%D9%A3", 422, None),
])
def test_k_from_the_query_string(data, tmp_path, query, status, count):
    """``k`` is a whole number in range (422 naming ``k`` otherwise); absent: the index's
    ``n_neighbors``; given twice: the last."""
    X, queries = data
    with TestClient(create_app(ExactIndex(n_neighbors=K).fit(X), items_dir=tmp_path)) as client:
        response = client.post(f"/search?{query}", json={"vector": queries[0].tolist()})
    assert response.status_code == status, response.text
    if count is None:
        assert response.json()["detail"].startswith("k"), response.text
    else:
        assert len(response.json()["results"]) == count
