"""What one ``POST /search`` costs besides the search: counted steps, never timings.

A JSON vector query must not resolve file paths for result keys that name no
file, its answer must not go through FastAPI's generic (recursive)
``jsonable_encoder``, its query string (``k``, ``where``, ``filter``) must
not go through FastAPI's per-request parameter validation nor the route
through FastAPI's dependency resolution, its body is parsed by orjson where
that gives the standard library's answer, and a search known to be short runs
on the event loop rather than in a worker thread (and a long one never does):
each costs a noticeable share of a sub-millisecond search.
"""

import json
import threading

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("python_multipart",
                    reason="the serve extra (python-multipart) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from skfindkit import ExactIndex, attach_keys, search  # noqa: E402
from skfindkit.serve import _json, _service, create_app  # noqa: E402
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


def test_the_search_route_resolves_no_dependencies(data, tmp_path, monkeypatch):
    """/search reads its Request itself: FastAPI's ``solve_dependencies`` is not called
    for it (it is for /info's routes), and its answer is unchanged."""
    routing = pytest.importorskip("fastapi.routing")
    if not hasattr(routing, "solve_dependencies"):
        pytest.skip("this FastAPI version resolves dependencies elsewhere")
    X, queries = data
    index = attach_keys(ExactIndex(n_neighbors=K).fit(X), [f"item-{i}" for i in range(N)])
    with TestClient(create_app(index, items_dir=tmp_path)) as client:
        solved = _counting(monkeypatch, routing, "solve_dependencies")
        assert client.get("/health").status_code == 200
        assert solved, "the counter does not see FastAPI's resolver: the test cannot fail"
        solved.clear()
        list(_searches(client, queries[:3], index))
    assert len(solved) == 0


BODIES = {
    "floats": json.dumps({"vector": np.random.default_rng(1).normal(size=64).tolist()}),
    "float32 values": json.dumps({"vector": np.random.default_rng(2).normal(
        size=64).astype(np.float32).tolist()}),
    "long mantissas and exponents": '{"vector": [0.1000000000000000055511151231257827, '
                                    '1e-400, 1E5, -0.0, 2.5e+3, 4.9e-324, 1.7976931348623157e308]}',
    "19-digit integers": '{"vector": [9223372036854775807, -9223372036854775808, '
                         '18446744073709551615]}',
    "an integer just past int64": '{"vector": [-9223372036854775809]}',
    "an integer just past uint64": '{"vector": [18446744073709551616]}',
    "a 40-digit integer": '{"vector": [' + "9" * 40 + "]}",
    "a 400-digit integer": '{"vector": [' + "9" * 400 + "]}",
    "a 5000-digit integer": '{"vector": [' + "9" * 5000 + "]}",
    "NaN and infinities": '{"vector": [NaN, Infinity, -Infinity, 1e400]}',
    "a lone surrogate": '{"text": "\\ud800"}',
    "a repeated key": '{"vector": [1], "vector": [2, 3]}',
    "2,000 nested lists": "[" * 2000 + "]" * 2000,
    "a trailing comma": '{"vector": [1.0,]}',
    "trailing data": '{"vector": [1]} x',
    "a control character": '{"text": "a\x01b"}',
    "whitespace everywhere": ' {"vector" : [ 1 , 2.5 ] }\n',
}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
@pytest.mark.parametrize("case", sorted(BODIES))
def test_json_bodies_parse_as_the_standard_library_parses_them(case, encoding):
    """Same values of the same types (an integer stays an integer), or the same error."""
    body = BODIES[case].encode(encoding, errors="surrogatepass")

    def outcome(loads):
        try:
            return "value", repr(loads(body))
        except (ValueError, RecursionError) as exc:
            return type(exc).__name__, str(exc)

    assert outcome(_json.loads) == outcome(json.loads)


def test_an_integer_beyond_float32_is_named_as_an_integer(data, tmp_path):
    """A 40-digit integer (valid JSON, a float64 but no float32) gets the integer's 422."""
    X, _ = data
    body = ('{"vector": [' + "9" * 40 + ", 1" * (DIM - 1) + "]}").encode()
    with TestClient(create_app(ExactIndex(n_neighbors=K).fit(X), items_dir=tmp_path)) as client:
        response = client.post("/search", content=body,
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "vector[0] is beyond the float32 range (|x| > 3.4e+38) that skfindkit indexes hold: "
        "an integer of 40 digits")


def _threads_searching(monkeypatch):
    """The names of the threads that run each library search (a list, filled in)."""
    names = []
    original = _service.search

    def recorded(*args, **kwargs):
        names.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(_service, "search", recorded)
    return names


def test_short_searches_run_on_the_event_loop(data, tmp_path, monkeypatch):
    """The first search for a ``k`` runs in a worker thread and is timed; once known
    short, the next ones run on the event loop (no hop to a thread and back), for JSON
    vectors only: not with a ``where``/``filter``, nor for a new ``k``."""
    monkeypatch.setattr(_service, "INLINE_SECONDS", 3600.0)  # every search counts as short
    X, queries = data
    index = attach_keys(ExactIndex(n_neighbors=K).fit(X), [f"item-{i}" for i in range(N)])
    threads = _threads_searching(monkeypatch)
    with TestClient(create_app(index, items_dir=tmp_path)) as client:
        list(_searches(client, queries[:4], index))
        filtered = client.post(f"/search?k={K}&filter=1,2,3", json={"vector": X[0].tolist()})
        assert filtered.status_code == 200 and len(filtered.json()["results"]) == 3
        assert client.post("/search?k=2", json={"vector": X[0].tolist()}).status_code == 200
    worker = [name.startswith("skfindkit-serve") for name in threads]
    assert worker == [True, False, False, False, True, True], threads


def test_no_search_runs_on_the_event_loop_when_none_is_short(data, tmp_path, monkeypatch):
    monkeypatch.setattr(_service, "INLINE_SECONDS", 0.0)
    X, queries = data
    index = attach_keys(ExactIndex(n_neighbors=K).fit(X), [f"item-{i}" for i in range(N)])
    threads = _threads_searching(monkeypatch)
    with TestClient(create_app(index, items_dir=tmp_path)) as client:
        list(_searches(client, queries[:3], index))
    assert len(threads) == 3 and all(name.startswith("skfindkit-serve") for name in threads)


def _post_in_thread(client, vector, k=K):
    answers = []
    thread = threading.Thread(target=lambda: answers.append(
        client.post(f"/search?k={k}", json={"vector": vector.tolist()})), daemon=True)
    thread.start()
    return thread, answers


def test_a_long_search_does_not_block_other_requests(data, tmp_path):
    """A search held inside a feature step (a pipeline that is not only an index runs in
    a worker thread) while /health and /info are answered; then it completes."""
    X, _ = data
    entered, release, gating = threading.Event(), threading.Event(), []

    def gate(rows):
        if gating:
            entered.set()
            assert release.wait(60), "the test never released the search"
        return rows

    pipeline = Pipeline([("gate", FunctionTransformer(gate)),
                         ("index", ExactIndex(n_neighbors=K))]).fit(X)
    gating.append(True)
    with TestClient(create_app(pipeline, items_dir=tmp_path)) as client:
        thread, answers = _post_in_thread(client, X[7])
        assert entered.wait(60), "the search never started"
        assert client.get("/health").status_code == 200
        assert client.get("/info").json()["items"] == N
        assert thread.is_alive() and not answers  # still held
        release.set()
        thread.join(60)
    assert answers[0].status_code == 200 and answers[0].json()["results"][0]["id"] == 7


def test_a_search_never_waits_for_a_writer_on_the_event_loop(data, tmp_path, monkeypatch):
    """With searches known short, one that arrives while the index is being written (an
    addition saving, say) waits for the writer in a worker thread, not on the loop."""
    monkeypatch.setattr(_service, "INLINE_SECONDS", 3600.0)
    X, queries = data
    index = ExactIndex(n_neighbors=K).fit(X)
    waiting = threading.Event()
    original = _service.Service.search

    def search_noting_waits(self, query, k, wait=True):
        if wait:
            waiting.set()
        return original(self, query, k, wait)

    with TestClient(create_app(index, items_dir=tmp_path)) as client:
        list(_searches(client, queries[:2], index))  # now known short: on the loop
        monkeypatch.setattr(_service.Service, "search", search_noting_waits)
        with index._writing():
            thread, answers = _post_in_thread(client, X[5])
            assert waiting.wait(60), "the search never went to a worker thread"
            assert client.get("/health").status_code == 200
            assert thread.is_alive() and not answers
        thread.join(60)
    assert answers[0].status_code == 200 and answers[0].json()["results"][0]["id"] == 5
