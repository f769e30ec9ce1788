"""What one ``POST /search`` costs besides the search: counted steps, never timings.

A JSON vector query must not resolve file paths for result keys that name no
file, and its answer must not go through FastAPI's generic (recursive)
``jsonable_encoder``: both used to cost milliseconds per request next to a
sub-millisecond search.
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
