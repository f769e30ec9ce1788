"""What one upload may cost the search service: pixels, seconds of audio, decodes at once."""

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("python_multipart", reason="the serve extra (python-multipart) is not installed")
pytest.importorskip("PIL", reason="Pillow (image extra) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from skfindkit import ExactIndex, attach_keys  # noqa: E402
from skfindkit import io as skio  # noqa: E402
from skfindkit.serve import _limits, create_app  # noqa: E402

from .._serve_fixtures import digit_image_pipeline, write_digit_pngs  # noqa: E402

TOKEN = "write-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def png_declaring(width, height, bit_depth=16):
    """A valid grayscale PNG of ``width`` x ``height`` zero pixels, written chunk by chunk
    (13000 x 13000 at 16 bits: about 330 KB that decode to 338 MB)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\0" * (1 + width * bit_depth // 8)  # filter byte + samples
    packer = zlib.compressobj(9)
    stream = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream)
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    paths, _ = write_digit_pngs(folder, n=40)
    return folder, paths


def _png(path, name="q.png"):
    with open(path, "rb") as handle:
        return {"file": (name, handle.read(), "image/png")}


CHILD = r"""
import json, resource, sys
from fastapi.testclient import TestClient
from skfindkit import io as skio
from skfindkit.serve import create_app

pipeline, items, bomb, query, token = sys.argv[1:]
app = create_app(skio.load(pipeline), items_dir=items, token=token, max_upload_bytes=2**22)
bomb, query = open(bomb, "rb").read(), open(query, "rb").read()
auth = {"Authorization": "Bearer " + token}
out = {}
with TestClient(app, raise_server_exceptions=False) as client:
    client.post("/search", files={"file": ("q.png", query)})  # imports and threads: warm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # a decode that goes through fails fast here instead of taking gigabytes
    size = [int(line.split()[1]) for line in open("/proc/self/status")
            if line.startswith("VmSize:")][0] * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size + 3 * 2**29, resource.RLIM_INFINITY))
    for path, headers in (("/search", {}), ("/items", auth)):
        response = client.post(path, files={"file": ("bomb.png", bomb)}, headers=headers)
        out[path] = [response.status_code, response.json()["detail"]]
    good = client.post("/search?k=1", files={"file": ("q.png", query)})
    out["after"] = [good.status_code, good.json()["results"][0]["id"]]
    out["items"] = client.get("/health").json()["items"]
    out["grown_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_small_png_declaring_169_megapixels_is_refused_before_it_is_decoded(digits, tmp_path):
    folder, paths = digits
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(13000, 13000))
    assert bomb.stat().st_size < 400_000
    skio.save(digit_image_pipeline(paths[:30]), tmp_path / "pipeline.skfk")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MALLOC_ARENA_MAX": "2"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "pipeline.skfk"),
                           str(folder), str(bomb), paths[7], TOKEN],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout + done.stderr
    out = json.loads(lines[0][len("RESULT "):])
    for path in ("/search", "/items"):
        status, detail = out[path]
        assert status == 413, (path, detail)
        assert "'bomb.png' is 13000 x 13000 pixels" in detail and "max_pixels=40,000,000" in detail
    assert out["after"] == [200, 7] and out["items"] == 30
    assert out["grown_mb"] < 200, out


def test_max_pixels_bounds_queries_added_items_and_thumbnails(digits, tmp_path):
    folder, paths = digits
    pipeline = digit_image_pipeline(paths[:30])
    small = create_app(pipeline, items_dir=folder, token=TOKEN, max_pixels=63,
                       added_dir=tmp_path / "added")
    with TestClient(small) as client:
        assert client.get("/health").json()["max_pixels"] == 63
        query = client.post("/search", files=_png(paths[3]))
        assert query.status_code == 413
        assert query.json()["detail"] == ("'q.png' is 8 x 8 pixels (64), more than the server's "
                                          "limit of max_pixels=63 (--max-pixels)")
        added = client.post("/items", files=_png(paths[35], "new.png"), headers=AUTH)
        assert added.status_code == 413 and "'new.png'" in added.json()["detail"]
        thumb = client.get("/items/3")
        assert thumb.status_code == 422 and "max_pixels=63" in thumb.json()["detail"]
        assert client.get("/health").json()["items"] == 30
        assert not (tmp_path / "added").exists() or not os.listdir(tmp_path / "added")
    exact = create_app(pipeline, items_dir=folder, max_pixels=64)
    with TestClient(exact) as client:
        assert client.post("/search?k=1", files=_png(paths[3])).json()["results"][0]["id"] == 3
        assert client.get("/items/3").status_code == 200


@pytest.fixture
def audio_pipeline(tmp_path):
    pytest.importorskip("librosa", reason="the audio extra (librosa) is not installed")
    from sklearn.pipeline import Pipeline

    from skfindkit import STFTVectorLoader

    from .._audio_fixtures import write_dataset

    paths, _ = write_dataset(tmp_path, n_per_family=1)  # 0.75 s clips
    pipeline = attach_keys(Pipeline([
        ("loader", STFTVectorLoader(representation="mfcc")),
        ("index", ExactIndex(n_neighbors=2)),
    ]).fit(paths), [os.path.basename(p) for p in paths])
    return pipeline, paths


def test_max_seconds_bounds_sounds_from_their_header(audio_pipeline, tmp_path):
    pipeline, paths = audio_pipeline
    wav = open(paths[1], "rb").read()
    app = create_app(pipeline, items_dir=tmp_path, token=TOKEN, max_seconds=0.5)
    with TestClient(app) as client:
        assert client.get("/health").json()["max_seconds"] == 0.5
        for path, headers in (("/search", {}), ("/items", AUTH)):
            response = client.post(path, files={"file": ("q.wav", wav)}, headers=headers)
            assert response.status_code == 413, response.text
            assert response.json()["detail"] == (
                "'q.wav' holds 0.75 s of audio (1 channel(s) at 22050 Hz), more than the "
                "server's limit of max_seconds=0.5 (--max-seconds)")
        fake = client.post("/search", files={"file": ("fake.wav", b"RIFF but not audio" * 9)})
        assert fake.status_code == 422 and "'fake.wav'" in fake.json()["detail"]
    with TestClient(create_app(pipeline, items_dir=tmp_path, max_seconds=1)) as client:
        hits = client.post("/search", files={"file": ("q.wav", wav)}).json()["results"]
        assert hits[0]["id"] == 1


def test_an_hour_of_audio_in_a_few_megabytes_is_refused_by_default(audio_pipeline, tmp_path):
    import soundfile

    pipeline, _ = audio_pipeline
    path = tmp_path / "hour.flac"
    with soundfile.SoundFile(path, "w", samplerate=8000, channels=1, format="FLAC",
                             subtype="PCM_16") as sound:
        block = np.zeros(800_000, np.int16)
        block[::4000] = 1000  # clicks: not silent
        for _ in range(36):
            sound.write(block)
    assert path.stat().st_size < 20 * 2**20
    with TestClient(create_app(pipeline, items_dir=tmp_path)) as client:
        response = client.post("/search", files={"file": ("hour.flac", path.read_bytes())})
        assert response.status_code == 413
        assert "3600.00 s of audio" in response.json()["detail"]
        assert "max_seconds=300" in response.json()["detail"]


def test_uploads_wait_for_a_decode_slot_and_get_503_when_none_frees(digits, monkeypatch):
    folder, paths = digits
    monkeypatch.setattr(_limits, "DECODE_WAIT_S", 0.05)
    app = create_app(digit_image_pipeline(paths[:30]), items_dir=folder, max_decodes=1)
    with TestClient(app) as client:
        with app.state.service.decodes.hold():  # another request is decoding
            busy = client.post("/search", files=_png(paths[4]))
            assert busy.status_code == 503 and "busy decoding" in busy.json()["detail"]
            assert client.get("/items/4").status_code == 503  # thumbnails decode too
        assert client.post("/search?k=1", files=_png(paths[4])).json()["results"][0]["id"] == 4


@pytest.mark.parametrize("params, message", [
    ({"max_pixels": 0}, "max_pixels must be a positive integer"),
    ({"max_pixels": 1.5}, "max_pixels must be a positive integer"),
    ({"max_decodes": 0}, "max_decodes must be a positive integer"),
    ({"max_seconds": 0}, "max_seconds must be a positive number"),
    ({"max_seconds": float("nan")}, "max_seconds must be a positive number"),
    ({"max_seconds": float("inf")}, "max_seconds must be a positive number"),
    ({"read_token": ""}, "read_token must be a non-empty string"),
    ({"token": b"bytes"}, "token must be a non-empty string"),
])
def test_limits_and_tokens_are_checked_when_the_app_is_made(params, message):
    index = ExactIndex(n_neighbors=1).fit(np.eye(3))
    with pytest.raises(ValueError, match=message):
        create_app(index, **params)


@pytest.mark.parametrize("fmt", ["EPS", "PCX", "ICO", "TGA", "PPM"])
def test_images_of_formats_outside_the_accepted_endings_are_not_decoded(fmt, digits):
    """The name says .png, the bytes say another format: Pillow would pick that decoder
    (EPS runs Ghostscript where it is installed)."""
    from io import BytesIO

    from PIL import Image

    folder, paths = digits
    buffer = BytesIO()
    Image.open(paths[2]).convert("L").save(buffer, fmt)
    with TestClient(create_app(digit_image_pipeline(paths[:30]), items_dir=folder)) as client:
        response = client.post("/search", files={"file": ("q.png", buffer.getvalue())})
        assert response.status_code == 415, response.text
        assert response.json()["detail"].startswith(f"'q.png' is a {fmt} image")
        jpeg = BytesIO()
        Image.open(paths[2]).convert("L").save(jpeg, "JPEG", quality=100)
        named_png = client.post("/search?k=1", files={"file": ("q.png", jpeg.getvalue())})
        assert named_png.status_code == 200 and named_png.json()["results"][0]["id"] == 2
