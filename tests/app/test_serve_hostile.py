"""Hostile requests to every endpoint of the search service: a 4xx naming what is wrong, never
a 500, and the next good request answered as before."""

import base64
import os

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("python_multipart", reason="the serve extra (python-multipart) is not installed")
pytest.importorskip("PIL", reason="Pillow (image extra) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from skfindkit import ExactIndex  # noqa: E402
from skfindkit.serve import create_app  # noqa: E402

from .._serve_fixtures import digit_image_pipeline, write_digit_pngs  # noqa: E402

READ, WRITE = "read-token", "write-token"
N_FEATURES = 8


@pytest.fixture(scope="module")
def vectors():
    return np.random.RandomState(0).rand(30, N_FEATURES).astype(np.float32)


@pytest.fixture
def vector_client(vectors):
    app = create_app(ExactIndex(n_neighbors=3).fit(vectors[:20]), token=WRITE)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _json(client, path, raw, headers=None):
    return client.post(path, content=raw, headers={"content-type": "application/json",
                                                   **(headers or {})})


def _still_answers(client, vectors):
    response = client.post("/search?k=1", json={"vector": vectors[4].tolist()})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["id"] == 4


def _row(first):
    return b"[" + first + b", 1" * (N_FEATURES - 1) + b"]"


# name -> (raw JSON body for /search, status, words of the message)
BAD_NUMBERS = {
    "a 400-digit integer": (b'{"vector": ' + _row(b"9" * 400) + b"}", 422,
                            "vector[0] is beyond the float32 range"),
    "a negative 400-digit integer": (b'{"vector": ' + _row(b"-" + b"9" * 400) + b"}", 422,
                                     "vector[0] is beyond the float32 range"),
    "1e39 (float32 overflow)": (b'{"vector": ' + _row(b"1e39") + b"}", 422,
                                "vector[0] is beyond the float32 range"),
    "1e309 (float64 overflow, infinity)": (b'{"vector": ' + _row(b"1e309") + b"}", 422,
                                           "vector[0] must be a finite number"),
    "NaN": (b'{"vector": ' + _row(b"NaN") + b"}", 422, "vector[0] must be a finite number"),
    "Infinity": (b'{"vector": ' + _row(b"Infinity") + b"}", 422,
                 "vector[0] must be a finite number"),
    "-Infinity, later": (b'{"vector": [1, 2, -Infinity' + b", 1" * (N_FEATURES - 3) + b"]}", 422,
                         "vector[2] must be a finite number"),
    "100,000 nested lists": (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    "100,000 nested objects": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 400,
                               "nested too deeply"),
    "nested lists in the vector": (b'{"vector": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400,
                                   "nested too deeply"),
    "a 5000-digit integer": (b'{"vector": ' + _row(b"9" * 5000) + b"}", 400, "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_NUMBERS))
def test_hostile_json_numbers_and_nesting_are_a_4xx_naming_the_field(case, vector_client,
                                                                     vectors):
    raw, status, message = BAD_NUMBERS[case]
    response = _json(vector_client, "/search", raw)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    _still_answers(vector_client, vectors)


@pytest.mark.parametrize("case", ["a 400-digit integer", "1e39 (float32 overflow)", "NaN"])
def test_hostile_numbers_are_never_added(case, vector_client, vectors):
    raw = BAD_NUMBERS[case][0].replace(b'"vector": ', b'"vectors": [[1' + b", 1" * 7 + b"], ")
    raw = raw[:-1] + b"]}"
    response = _json(vector_client, "/items", raw, {"Authorization": f"Bearer {WRITE}"})
    assert response.status_code == 422, response.text
    assert "vectors[1][0]" in response.json()["detail"]
    assert vector_client.get("/health").json()["items"] == 20
    _still_answers(vector_client, vectors)


def _basic(token):
    return "Basic " + base64.b64encode(f"x:{token}".encode()).decode()


HEADERS = {
    "no token": {},
    "wrong bearer": {"Authorization": "Bearer wrong"},
    "wrong basic": {"Authorization": _basic("wrong")},
    "basic, not base64": {"Authorization": "Basic %%%"},
    "basic, no colon": {"Authorization": "Basic " + base64.b64encode(WRITE.encode()).decode()},
    "empty authorization": {"Authorization": ""},
    "unknown scheme": {"Authorization": f"Token {WRITE}"},
    "latin-1 token": {"Authorization": "Bearer caf\xe9".encode("latin-1")},
    "10 kB token": {"Authorization": "Bearer " + "x" * 10_000},
    "read token for writing": {"Authorization": f"Bearer {READ}"},
    "write token": {"Authorization": f"Bearer {WRITE}"},
}

BODIES = {
    "empty body": (b"", None),
    "empty JSON": (b"", "application/json"),
    "JSON null": (b"null", "application/json"),
    "JSON list": (b"[1, 2]", "application/json"),
    "JSON string": (b'"vector"', "application/json"),
    "10k-deep JSON": (b"[" * 10_000 + b"]" * 10_000, "application/json"),
    "huge integer": (b'{"vector": [' + b"9" * 400 + b"]}", "application/json"),
    "huge integer key": (b'{"vector": [1,1,1,1,1,1,1,1], "key": ' + b"9" * 400 + b"}",
                         "application/json"),
    "deep key": (b'{"vector": [1,1,1,1,1,1,1,1], "key": ' + b"[" * 500 + b"]" * 500 + b"}",
                 "application/json"),
    "null vector": (b'{"vector": null}', "application/json"),
    "vector of objects": (b'{"vector": [{}, {}, {}, {}, {}, {}, {}, {}]}', "application/json"),
    "vectors of ragged rows": (b'{"vectors": [[1], [1, 2]]}', "application/json"),
    "not UTF-8": (b'{"vector": "\xff\xfe"}', "application/json"),
    "UTF-16 declared": ('{"vector": [1]}'.encode("utf-16"), "application/json; charset=utf-16"),
    "form, no boundary": (b"--x\r\n", "multipart/form-data"),
    "form, garbage": (b"--x\r\nnonsense\r\n--x--", "multipart/form-data; boundary=x"),
    "urlencoded form": (b"vector=1", "application/x-www-form-urlencoded"),
    "text/plain": (b"hello", "text/plain"),
    "content type with NUL": (b"{}", "application/json\x00"),
    "XML": (b"<vector/>", "application/xml"),
}

PATHS = ["/search", "/search?k=" + "9" * 400, "/search?k=-1", "/search?k=1e3", "/search?k=",
         "/items", "/items/0", "/items/" + "9" * 400, "/items/-1", "/items/20", "/items/1.5",
         "/items/%00", "/items/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/health", "/info", "/",
         "/static/app.js", "/static/../_app.py", "/static/%2e%2e/_app.py", "/docs",
         "/openapi.json", "/nowhere"]


@pytest.mark.slow
def test_no_request_to_any_endpoint_is_a_500(vectors):
    """Every path x method x header x body: 4xx or a success, never a 500; JSON errors."""
    app = create_app(ExactIndex(n_neighbors=3).fit(vectors[:20]), token=WRITE, read_token=READ)
    read = {"Authorization": f"Bearer {READ}"}
    failures = []
    with TestClient(app, raise_server_exceptions=False) as client:
        cases = [(path, "GET", name, headers, b"", None) for path in PATHS
                 for name, headers in HEADERS.items()]
        cases += [(path, method, body_name, read, body, kind) for path in PATHS
                  for method in ("GET", "POST", "PUT", "DELETE")
                  for body_name, (body, kind) in BODIES.items()]
        cases += [(path, "POST", f"{body_name}, {name}", headers, body, kind)
                  for path in ("/items", "/search") for name, headers in HEADERS.items()
                  for body_name, (body, kind) in BODIES.items()]
        for path, method, name, headers, body, kind in cases:
            headers = dict(headers)
            if kind is not None:
                headers["content-type"] = kind.encode("latin-1")
            response = client.request(method, path, content=body, headers=headers)
            if response.status_code >= 500:
                failures.append((method, path, name, response.status_code, response.text[:200]))
            elif response.status_code >= 400 and path not in ("/static/app.js",):
                detail = response.json().get("detail")
                if not isinstance(detail, str) or not detail:
                    failures.append((method, path, name, response.status_code, response.text))
        assert not failures, f"{len(failures)} of {len(cases)} requests failed: {failures[:20]}"
        response = client.post("/search?k=1", json={"vector": vectors[4].tolist()}, headers=read)
        assert response.status_code == 200 and response.json()["results"][0]["id"] == 4
        assert client.get("/health", headers=read).json()["items"] == 20


def test_no_upload_to_an_image_pipeline_is_a_500(tmp_path):
    paths, _ = write_digit_pngs(tmp_path, n=20)
    png = open(paths[3], "rb").read()
    app = create_app(digit_image_pipeline(paths), items_dir=tmp_path, token=WRITE)
    uploads = {
        "PNG header only": png[:8], "IHDR only": png[:33], "zero-size PNG": _zero_png(),
        "GIF with a huge screen": b"GIF89a\xff\xff\xff\xff\x00\x00\x00;",
        "BMP with a negative height": (b"BM" + b"\0" * 16 + b"\x08\0\0\0\xf8\xff\xff\xff"
                                       + b"\0" * 30),
        "NUL file name": png, "path file name": png, "no extension": png,
    }
    names = {"NUL file name": "a\x00.png", "path file name": "../../etc/passwd.png",
             "no extension": "noext"}
    write = {"Authorization": f"Bearer {WRITE}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        for name, data in uploads.items():
            filename = names.get(name, "q.png")
            for path, headers in (("/search", {}), ("/items", write)):
                response = client.post(path, files={"file": (filename, data, "image/png")},
                                       headers=headers)
                assert 400 <= response.status_code < 500 or response.status_code in (200, 201), (
                    name, path, response.status_code, response.text)
        good = client.post("/search?k=1", files={"file": ("q.png", png)})
        assert good.status_code == 200 and good.json()["results"][0]["distance"] == 0.0


def _zero_png():
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 0, 0, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + header
            + struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF))


def test_hostile_upload_names_to_a_pipeline_of_any_file_are_no_500(tmp_path):
    """A loader of any file type keeps the upload's ending: odd or long endings are no 500."""
    from sklearn.pipeline import Pipeline

    from skfindkit import FunctionVectorLoader

    files = [tmp_path / "a.bin", tmp_path / "bb.bin"]
    for n, path in enumerate(files):
        path.write_bytes(b"x" * (n + 1))
    pipeline = Pipeline([("loader", FunctionVectorLoader(os.path.getsize)),
                         ("index", ExactIndex(n_neighbors=1))]).fit([str(p) for p in files])
    names = ["a." + "b" * 300, "a." + "b" * 5000, "a.b\x00c", "a.png\\..\\..\\x", "a./b",
             "a.\u00e9\u00e9", "a.%2e%2e", ".hidden", "a" * 300, "a.b c", "a.exe;rm -rf"]
    write = {"Authorization": f"Bearer {WRITE}"}
    with TestClient(create_app(pipeline, token=WRITE), raise_server_exceptions=False) as client:
        for name in names:
            for path, headers in (("/search", {}), ("/items", write)):
                response = client.post(path, files={"file": (name, b"xy")}, headers=headers)
                assert response.status_code < 500, (name, path, response.text)
                assert response.status_code in (200, 201) or response.json()["detail"]
        hits = client.post("/search?k=1", files={"file": ("q.bin", b"x")}).json()["results"]
        assert hits[0]["id"] == 0


def test_lone_surrogates_in_keys_and_texts_are_a_422(vector_client, vectors, tmp_path):
    """JSON can spell text that is not Unicode ("\\ud800"): refused, never stored or echoed."""
    raw = (b'{"vector": [' + b", ".join([b"1"] * N_FEATURES) + b'], "key": "a\\ud800"}')
    response = _json(vector_client, "/items", raw, {"Authorization": f"Bearer {WRITE}"})
    assert response.status_code == 422 and "'key'" in response.json()["detail"]
    assert vector_client.get("/health").json()["items"] == 20
    _still_answers(vector_client, vectors)
    pytest.importorskip("gensim", reason="the text extra (gensim) is not installed")
    from .._serve_fixtures import text_file_pipeline

    app = create_app(text_file_pipeline(tmp_path), items_dir=tmp_path, token=WRITE)
    with TestClient(app, raise_server_exceptions=False) as client:
        for path, raw in (("/search", b'{"text": "a cat \\ud800"}'),
                          ("/items", b'{"texts": ["a cat", "\\udfff"]}')):
            response = _json(client, path, raw, {"Authorization": f"Bearer {WRITE}"})
            assert response.status_code == 422, response.text
            assert "not valid Unicode" in response.json()["detail"]
        assert client.post("/search?k=1", json={"text": "the cat sat"}).status_code == 200
