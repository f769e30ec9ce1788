"""The search service through FastAPI's test client: every endpoint, every error."""

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("python_multipart", reason="the serve extra (python-multipart) is not installed")
pytest.importorskip("PIL", reason="Pillow (image extra) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from skfindkit import ExactIndex, HNSWIndex, attach_keys, search  # noqa: E402
from skfindkit import io as skio  # noqa: E402
from skfindkit.cli import main as cli_main  # noqa: E402
from skfindkit.serve import create_app  # noqa: E402
from skfindkit._app.pipeline_files import load_pipeline  # noqa: E402

from .._serve_fixtures import (DOCS, ServeProcess, digit_image_pipeline,  # noqa: E402
                              free_port, text_file_pipeline, write_digit_pngs)


def _load_pipeline(path, trust_pickle=False):
    return load_pipeline(path, trust_pickle=trust_pickle, check="index")

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    paths, labels = write_digit_pngs(folder, n=120)
    return folder, paths, labels


@pytest.fixture
def image_app(collection):
    folder, paths, _ = collection
    pipeline = digit_image_pipeline(paths)
    return pipeline, create_app(pipeline, items_dir=folder, max_upload_bytes=64 * 1024)


@pytest.fixture
def client(image_app):
    with TestClient(image_app[1]) as client:
        yield client


@pytest.fixture(scope="module")
def vectors():
    from sklearn.datasets import load_digits

    X, _ = load_digits(return_X_y=True)
    return X.astype(np.float32)


def _upload(path, name=None):
    with open(path, "rb") as handle:
        return {"file": (name or os.path.basename(path), handle.read(), "image/png")}


def test_health_describes_the_pipeline(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["kind"] == "image" and health["query"] == "file"
    assert health["items"] == 120 and health["k_default"] == 5 and health["adding"] is False
    assert ".png" in health["extensions"]


def test_search_upload_gives_the_pipeline_s_ranked_keys(client, image_app, collection):
    pipeline, _ = image_app
    _, paths, _ = collection
    response = client.post("/search?k=7", files=_upload(paths[9], "query.png"))
    assert response.status_code == 200
    body = response.json()
    expected = search(pipeline, [paths[9]], n_neighbors=7)
    assert body["k"] == 7 and len(body["results"]) == 7
    assert [h["id"] for h in body["results"]] == expected.indices[0].tolist()
    assert [h["key"] for h in body["results"]] == expected.keys[0].tolist()
    np.testing.assert_allclose([h["distance"] for h in body["results"]], expected.distances[0])
    assert body["results"][0] == {"rank": 1, "id": 9, "key": "digit_0009.png",
                                  "distance": 0.0, "url": "/items/9"}
    assert client.post("/search", files=_upload(paths[9])).json()["k"] == 5  # default k


def test_items_serves_a_thumbnail_of_indexed_images_only(client, collection):
    from io import BytesIO

    from PIL import Image

    response = client.get("/items/9")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    thumb = np.asarray(Image.open(BytesIO(response.content)))
    original = np.asarray(Image.open(collection[1][9]))
    np.testing.assert_array_equal(thumb, original)  # 8x8: no resize needed


def test_page_and_its_assets_are_served_by_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN or remote asset
    for asset, kind in [("/static/app.js", "javascript"), ("/static/style.css", "css")]:
        response = client.get(asset)
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert "https://" not in response.text


def _png(c, name, data):
    return c.post("/search", files={"file": (name, data, "image/png")})


# name -> (request(client, png bytes of an indexed digit), status, words of the message)
BAD_REQUESTS = {
    "oversize upload": (lambda c, png: _png(c, "big.png", b"\0" * 70_000),
                        413, "larger than the limit"),
    "oversize chunked body": (lambda c, png: c.post(
        "/search", content=iter([b"{" + b" " * 40_000, b" " * 40_000 + b"}"]),
        headers={"content-type": "application/json"}), 413, "larger than the limit"),
    "wrong file type": (lambda c, png: _png(c, "run.exe", b"MZ\x90"),
                        415, "not an accepted image file"),
    "corrupt file": (lambda c, png: _png(c, "bad.png", b"not a png" * 9), 422, "'bad.png'"),
    "truncated file": (lambda c, png: _png(c, "cut.png", png[:40]), 422, "'cut.png'"),
    "empty file": (lambda c, png: _png(c, "empty.png", b""), 422, "is empty"),
    "text for an image pipeline": (lambda c, png: c.post("/search", json={"text": "a seven"}),
                                   415, "searches image files"),
    "vector for an image pipeline": (lambda c, png: c.post("/search", json={"vector": [1.0]}),
                                     415, "searches image files"),
    "no file field": (lambda c, png: c.post("/search", files={"other": ("a.png", png)}),
                      400, "field 'file'"),
    "two files": (lambda c, png: c.post("/search", files=[("file", ("a.png", png)),
                                                          ("file", ("b.png", png))]),
                  400, "Too many files. Maximum number of files is 1"),
    "unsupported content type": (lambda c, png: c.post(
        "/search", content=b"x", headers={"content-type": "text/plain"}),
        415, "unsupported content type"),
    "invalid json": (lambda c, png: c.post(
        "/search", content=b"{nope", headers={"content-type": "application/json"}),
        400, "not valid JSON"),
    "unknown id": (lambda c, png: c.get("/items/120"), 404, "holds 120 items"),
    "negative id": (lambda c, png: c.get("/items/-1"), 404, "not an item id"),
    "k zero": (lambda c, png: c.post("/search?k=0", files={"file": ("q.png", png)}),
               422, "k must be between 1 and 120"),
    "k above the collection": (lambda c, png: c.post("/search?k=121", files={"file": ("q.png", png)}),
                               422, "k must be between 1 and 120"),
    "k not a number": (lambda c, png: c.post("/search?k=ten", files={"file": ("q.png", png)}),
                       422, "k: "),
    "adding without a server token": (lambda c, png: c.post("/items", files={"file": ("a.png", png)}),
                                      403, "adding items is disabled"),
    "traversal, encoded slashes": (lambda c, png: c.get("/items/..%2F..%2Fetc%2Fpasswd"),
                                   404, "not an item id"),
    "traversal, dot segments": (lambda c, png: c.get("/items/%2e%2e/%2e%2e/etc/passwd"), 404, ""),
    "traversal, absolute path": (lambda c, png: c.get("/items//etc/passwd"), 404, "not an item id"),
    "traversal, after an id": (lambda c, png: c.get("/items/3/../../../etc/passwd"), 404, ""),
    "unknown route": (lambda c, png: c.get("/nowhere"), 404, "Not Found"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_every_bad_request_is_a_logged_4xx_and_the_server_keeps_serving(
        case, client, collection, caplog):
    send, status, message = BAD_REQUESTS[case]
    with caplog.at_level(logging.WARNING, logger="skfindkit.serve"):
        response = send(client, open(collection[1][0], "rb").read())
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and message in detail
    assert "root:" not in response.text  # never a file's content (/etc/passwd)
    assert any(f"-> {status}:" in r.getMessage() for r in caplog.records), "4xx not logged"
    good = client.post("/search?k=3", files=_upload(collection[1][5]))
    assert good.status_code == 200 and good.json()["results"][0]["id"] == 5


@pytest.mark.slow
def test_audio_pipeline_serves_sounds_and_refuses_texts(tmp_path, caplog):
    pytest.importorskip("librosa", reason="the audio extra (librosa) is not installed")
    from sklearn.pipeline import Pipeline

    from skfindkit import STFTVectorLoader

    from .._audio_fixtures import write_dataset

    paths, _ = write_dataset(tmp_path, n_per_family=2)
    pipeline = attach_keys(Pipeline([
        ("loader", STFTVectorLoader(representation="mfcc")),
        ("index", ExactIndex(n_neighbors=3)),
    ]).fit(paths), [os.path.basename(p) for p in paths])
    wav = open(paths[2], "rb").read()
    with TestClient(create_app(pipeline, items_dir=tmp_path)) as client:
        assert client.get("/health").json()["kind"] == "audio"
        with caplog.at_level(logging.WARNING, logger="skfindkit.serve"):
            text = client.post("/search", json={"text": "a chirp"})
        assert text.status_code == 415 and "searches audio files" in text.json()["detail"]
        assert any("-> 415:" in r.getMessage() for r in caplog.records)
        hits = client.post("/search", files={"file": ("q.wav", wav, "audio/wav")}).json()
        assert hits["results"][0]["id"] == 2 and hits["results"][0]["distance"] == 0.0
        item = client.get("/items/2")
        assert item.status_code == 200 and item.content == wav
        assert item.headers["content-type"] in ("audio/x-wav", "audio/wav")
        fake = client.post("/search", files={"file": ("fake.wav", b"RIFF but not audio" * 9)})
        assert fake.status_code == 422 and "'fake.wav'" in fake.json()["detail"]


def test_text_pipeline_takes_texts_and_text_files(tmp_path):
    pytest.importorskip("gensim", reason="the text extra (gensim) is not installed")
    pipeline = text_file_pipeline(tmp_path)
    with TestClient(create_app(pipeline, items_dir=tmp_path)) as client:
        assert client.get("/health").json()["query"] == "text"
        query = tmp_path / "query.txt"
        query.write_text("a happy cat purrs")
        expected = search(pipeline, [str(query)], n_neighbors=3)
        by_text = client.post("/search?k=3", json={"text": "a happy cat purrs"}).json()
        by_file = client.post("/search?k=3", files={"file": ("q.txt", b"a happy cat purrs")}).json()
        for body in (by_text, by_file):
            assert [h["id"] for h in body["results"]] == expected.indices[0].tolist()
        item = client.get(f"/items/{expected.indices[0, 0]}")
        assert item.headers["content-type"].startswith("text/plain")
        assert item.text == DOCS[expected.indices[0, 0]]
        blank = client.post("/search", json={"text": "   "})
        assert blank.status_code == 422 and "non-empty text" in blank.json()["detail"]
        latin1 = client.post("/search", files={"file": ("q.txt", "café".encode("latin-1"))})
        assert latin1.status_code == 422 and "'q.txt'" in latin1.json()["detail"]


def test_keys_that_leave_the_items_folder_name_no_file(collection, tmp_path):
    folder, paths, _ = collection
    outside = tmp_path / "secret.png"
    outside.write_bytes(open(paths[0], "rb").read())
    pipeline = digit_image_pipeline(paths[:3])
    attach_keys(pipeline, ["digit_0000.png", f"../{tmp_path.name}/secret.png", "missing.png"])
    with TestClient(create_app(pipeline, items_dir=folder)) as client:
        assert client.get("/items/0").status_code == 200
        for item in (1, 2):
            response = client.get(f"/items/{item}")
            assert response.status_code == 404 and "has no file to show" in response.json()["detail"]
        hits = client.post("/search", files=_upload(paths[1])).json()["results"]
        assert {h["id"]: h["url"] for h in hits} == {0: "/items/0", 1: None, 2: None}


def test_vector_pipeline_search_and_errors(vectors):
    index = ExactIndex(n_neighbors=4).fit(vectors)
    with TestClient(create_app(index)) as client:
        health = client.get("/health").json()
        assert health["query"] == "vector" and health["n_features"] == 64
        body = client.post("/search?k=4", json={"vector": vectors[11].tolist()}).json()
        dist, ind = index.kneighbors(vectors[11:12], n_neighbors=4)
        assert [h["id"] for h in body["results"]] == ind[0].tolist()
        assert [h["key"] for h in body["results"]] == ind[0].tolist()  # no keys: the ids
        np.testing.assert_allclose([h["distance"] for h in body["results"]], dist[0])
        for bad, message in [({"vector": [1.0, 2.0]}, "must have 64 numbers"),
                             ({"vector": [1.0] * 63 + ["a"]}, "list of numbers"),
                             ({"vector": [1.0] * 63 + [True]}, "list of numbers"),
                             ({"text": "hello"}, "feature vectors of length 64"),
                             ({"vector": [1.0] * 64, "extra": 1}, "unknown field")]:
            response = client.post("/search", json=bad)
            assert response.status_code in (415, 422, 400) and message in response.json()["detail"]
        nan = client.post("/search", content=b'{"vector": [NaN' + b", 1" * 63 + b"]}",
                          headers={"content-type": "application/json"})
        assert nan.status_code == 422 and "finite" in nan.json()["detail"]
        upload = client.post("/search", files={"file": ("a.png", b"x")})
        assert upload.status_code == 415 and "feature vectors" in upload.json()["detail"]
        item = client.get("/items/3")
        assert item.status_code == 404 and "no file to show" in item.json()["detail"]


def test_adding_items_needs_the_token_and_is_saved(collection, tmp_path):
    folder, paths, _ = collection
    pipeline = digit_image_pipeline(paths[:100])
    saved = tmp_path / "pipeline.skfk"
    app = create_app(pipeline, items_dir=folder, token=TOKEN, save_path=saved,
                     added_dir=tmp_path / "added")
    with TestClient(app) as client:
        missing = client.post("/items", files=_upload(paths[110]))
        assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["detail"]
        wrong = client.post("/items", files=_upload(paths[110]),
                            headers={"Authorization": "Bearer not-it"})
        assert wrong.status_code == 403 and wrong.json()["detail"] == "wrong token"
        assert client.get("/health").json()["items"] == 100  # nothing added
        auth = {"Authorization": f"Bearer {TOKEN}"}
        added = client.post("/items", headers=auth, files=[
            ("file", ("a.png", open(paths[110], "rb").read(), "image/png")),
            ("file", ("b.png", open(paths[111], "rb").read(), "image/png")),
        ])
        assert added.status_code == 201, added.text
        body = added.json()
        assert [a["id"] for a in body["added"]] == [100, 101] and body["items"] == 102
        assert body["saved"] is True
        hit = client.post("/search?k=1", files=_upload(paths[111])).json()["results"][0]
        assert hit["id"] == 101 and hit["distance"] == 0.0 and hit["url"] == "/items/101"
        assert client.get("/items/101").status_code == 200
        assert client.get("/items/5").status_code == 200  # old items keep their keys
        corrupt = client.post("/items", headers=auth, files={"file": ("c.png", b"garbage")})
        assert corrupt.status_code == 422 and client.get("/health").json()["items"] == 102
    reloaded = _load_pipeline(saved)
    assert reloaded[-1].n_samples_fit_ == 102
    assert reloaded[-1].item_keys_[5] == "digit_0005.png"
    assert reloaded[-1].item_keys_[101].startswith(str(tmp_path / "added"))


def test_adding_vectors_with_keys(vectors):
    index = ExactIndex(n_neighbors=3).fit(vectors[:50])
    with TestClient(create_app(index, token=TOKEN)) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        response = client.post("/items", headers=auth, json={
            "vectors": vectors[60:62].tolist(), "keys": ["sixty", "sixty-one"]})
        assert response.status_code == 201 and response.json()["items"] == 52
        hit = client.post("/search?k=1", json={"vector": vectors[61].tolist()}).json()["results"]
        assert hit[0]["id"] == 51 and hit[0]["key"] == "sixty-one"
        old = client.post("/search?k=1", json={"vector": vectors[3].tolist()}).json()["results"]
        assert old[0] == {"rank": 1, "id": 3, "key": 3, "distance": 0.0, "url": None}
        mismatch = client.post("/items", headers=auth, json={"vectors": vectors[:2].tolist(),
                                                             "keys": ["one"]})
        assert mismatch.status_code == 422 and "1 keys for 2 items" in mismatch.json()["detail"]


def _serve_in_thread(app):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{server.config.port}"


@pytest.mark.slow
def test_concurrent_queries_match_serial_even_while_adding(vectors):
    """16 client threads against 4 workers over real HTTP: the serial answers, exactly."""
    import httpx

    hnsw = HNSWIndex(n_neighbors=10, random_state=0).fit(vectors[:1500])
    queries = vectors[1500:1700]
    serial_dist, serial_ind = hnsw.kneighbors(queries, n_neighbors=10)
    server, thread, url = _serve_in_thread(create_app(hnsw, max_workers=4, token=TOKEN))
    far = np.full((1, 64), 1e4, dtype=np.float32)  # additions never enter the queries' top 10
    try:
        def ask(i):
            with httpx.Client(base_url=url, timeout=30) as http:
                if i % 50 == 0:
                    added = http.post("/items", json={"vector": (far + i).ravel().tolist()},
                                      headers={"Authorization": f"Bearer {TOKEN}"})
                    assert added.status_code == 201, added.text
                response = http.post("/search?k=10", json={"vector": queries[i].tolist()})
                assert response.status_code == 200, response.text
                return response.json()["results"]

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(len(queries))))
    finally:
        server.should_exit = True
        thread.join(10)
    for i, hits in enumerate(answers):
        assert [h["id"] for h in hits] == serial_ind[i].tolist()
        np.testing.assert_allclose([h["distance"] for h in hits], serial_dist[i])
    assert hnsw.n_samples_fit_ == 1504


@pytest.mark.parametrize("content, message, args", [
    (None, "no such pipeline file", []),
    (b"not a joblib file", "is not a skfindkit pipeline file", []),
    ({"a": 1}, "a pickle/joblib file, which can run any code when loaded", []),
    ({"a": 1}, "holds a dict, not a skfindkit pipeline", ["--trust-pickle"]),
    (ExactIndex(), "holds a ExactIndex, not a skfindkit pipeline", ["--trust-pickle"]),
])
def test_serve_refuses_to_start_on_a_non_pipeline(content, message, args, tmp_path, capsys):
    path = tmp_path / "thing.joblib"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        joblib.dump(content, path)
    assert cli_main(["serve", str(path), "--port", "1", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("skfindkit: error:")


def test_serve_reads_a_pickle_only_with_trust_pickle_and_saves_back_in_kind(collection,
                                                                              tmp_path):
    folder, paths, _ = collection
    pickled = tmp_path / "pipeline.joblib"
    joblib.dump(digit_image_pipeline(paths[:20]), pickled)
    with pytest.raises(ValueError, match="--trust-pickle"):
        _load_pipeline(pickled)
    pipeline = _load_pipeline(pickled, trust_pickle=True)
    app = create_app(pipeline, items_dir=folder, token=TOKEN, save_path=pickled,
                     save_format="pickle", added_dir=tmp_path / "added")
    with TestClient(app) as client:
        added = client.post("/items", files=_upload(paths[30]),
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert added.status_code == 201, added.text
    assert skio.file_kind(pickled) == "pickle"
    assert _load_pipeline(pickled, trust_pickle=True)[-1].n_samples_fit_ == 21


@pytest.mark.slow
def test_the_command_serves_a_saved_pipeline_and_adds_with_the_env_token(collection, tmp_path):
    import httpx

    folder, paths, _ = collection
    saved = tmp_path / "pipeline.skfk"
    skio.save(digit_image_pipeline(paths[:100]), saved)
    with ServeProcess(saved, "--items-dir", str(folder), "--workers", "2",
                      env={"SKFINDKIT_SERVE_TOKEN": TOKEN}) as served:
        health = httpx.get(served.url + "/health").json()
        assert health["items"] == 100 and health["adding"] is True
        with open(paths[7], "rb") as handle:
            hits = httpx.post(served.url + "/search?k=2", files={"file": ("q.png", handle.read())})
        assert [h["id"] for h in hits.json()["results"]][0] == 7
        assert httpx.get(served.url + "/items/7").headers["content-type"] == "image/png"
        with open(paths[105], "rb") as handle:
            added = httpx.post(served.url + "/items", files={"file": ("n.png", handle.read())},
                               headers={"Authorization": f"Bearer {TOKEN}"})
        assert added.status_code == 201 and added.json()["added"][0]["id"] == 100
    assert f"open {served.url}/" in served.output()
    assert skio.file_kind(saved) == "safe"  # saved back by the command, in the safe format
    assert _load_pipeline(saved)[-1].n_samples_fit_ == 101
    assert len(list((tmp_path / "pipeline_added").iterdir())) == 1


def test_a_loaded_index_is_served_with_its_query_time_settings(tmp_path):
    """A served index answers as the same file loaded in-process (ef_search applied)."""
    rng = np.random.RandomState(0)
    centers = rng.randn(40, 16) * 4
    X = (centers[rng.randint(40, size=4000)] + rng.randn(4000, 16)).astype(np.float32)
    queries = X[:150] + 0.05 * rng.randn(150, 16).astype(np.float32)
    path = tmp_path / "hnsw.skfk"
    skio.save(HNSWIndex(n_neighbors=10, M=4, ef_construction=20, ef_search=200,
                        random_state=0).fit(X), path)
    expected = skio.load(path).kneighbors(queries, return_distance=False)
    with TestClient(create_app(skio.load(path))) as client:  # a fresh copy, never queried
        served = [[hit["id"] for hit in client.post(
            "/search?k=10", json={"vector": q.tolist()}).json()["results"]] for q in queries]
    assert served == expected.tolist()


@pytest.mark.slow
@pytest.mark.parametrize("args, logged", [((), True), (("--no-access-log",), False)])
def test_the_access_log_is_on_unless_turned_off(tmp_path, args, logged):
    """A line per request by default; ``--no-access-log`` drops those, errors stay logged."""
    import httpx

    path = tmp_path / "pipeline.skfk"
    skio.save(ExactIndex(n_neighbors=1).fit(np.eye(4)), path)
    with ServeProcess(path, *args) as served:
        assert httpx.post(served.url + "/search", json={"vector": [1, 0, 0, 0]}).status_code == 200
        assert httpx.post(served.url + "/search", json={"vector": [1]}).status_code == 422
    output = served.output()
    assert ('"POST /search HTTP/1.1" 200' in output) == logged, output
    assert "POST /search -> 422: a vector must have 4 numbers" in output, output
