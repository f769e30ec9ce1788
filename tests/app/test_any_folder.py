"""Any folder, served with pictures: every format the decoders open, keys relative to it."""

import numpy as np
import pytest

from skfindkit import io as skio
from skfindkit.cli import main

from ._folders import write_faces, write_texts

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("PIL", reason="Pillow (image extra) is not installed")
pytest.importorskip("skimage", reason="scikit-image (image extra) is not installed")


@pytest.fixture
def faces(tmp_path):
    root = tmp_path / "faces"
    paths = write_faces(root)
    (root / "README").write_text("faces, 3 people\n")
    (root / "s1" / "notes.csv").write_text("a,b\n")
    (root / ".hidden.pgm").write_bytes(b"")
    return root, paths


def _client(pipeline_path):
    from fastapi.testclient import TestClient

    from skfindkit.serve import create_app
    from skfindkit.serve._cli import default_items_dir

    pipeline = skio.load(pipeline_path)
    return TestClient(create_app(pipeline, items_dir=default_items_dir(pipeline, pipeline_path)))


def test_a_folder_of_pgm_faces_is_indexed_and_skipped_files_are_counted(faces, tmp_path, capsys):
    root, paths = faces
    out = tmp_path / "elsewhere" / "faces.skfk"
    out.parent.mkdir()
    assert main(["index", str(root), "--kind", "image", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "indexed 9 of 9 image files" in err
    assert "skipped 3 files" in err and ".csv (not image)" in err and "hidden" in err
    index = skio.load(out)[-1]
    assert index.item_keys_.tolist() == [f"s{p}/{s}.pgm" for p in (1, 2, 3) for s in (1, 2, 3)]
    assert index.items_root_ == str(root)


def test_serve_shows_thumbnails_and_previews_for_a_cli_built_image_folder(faces, tmp_path):
    root, paths = faces
    out = tmp_path / "faces.skfk"  # not beside the faces: the recorded folder is used
    assert main(["index", str(root), "--kind", "image", "--out", str(out), "--quiet"]) == 0
    client = _client(out)
    assert client.get("/info").json()["kind"] == "image"
    query = paths[4].read_bytes()
    hits = client.post("/search?k=3", files={"file": ("query.pgm", query)}).json()["results"]
    assert hits[0]["key"] == "s2/2.pgm" and hits[0]["distance"] == pytest.approx(0, abs=1e-6)
    thumbnail = client.get(hits[0]["url"])
    assert thumbnail.headers["content-type"] == "image/png"
    assert thumbnail.content.startswith(b"\x89PNG")


def test_a_bad_upload_is_one_readable_sentence(faces, tmp_path):
    root, _ = faces
    out = tmp_path / "faces.skfk"
    assert main(["index", str(root), "--kind", "image", "--out", str(out), "--quiet"]) == 0
    response = _client(out).post("/search", files={"file": ("holiday.png", b"not a png")})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("could not read 'holiday.png' as an image: cannot identify")
    assert "could not load item" not in detail and "upload-" not in detail  # no temp path
    assert detail.count(". ") == 0 and detail.endswith(".")


def test_serve_shows_snippets_and_answers_text_for_the_default_text_pipeline(tmp_path):
    root = tmp_path / "notes"
    write_texts(root)
    out = tmp_path / "notes.skfk"
    assert main(["index", str(root), "--kind", "text", "--out", str(out), "--quiet"]) == 0
    client = _client(out)
    hits = client.post("/search?k=2", json={"text": "kitten whiskers"}).json()["results"]
    assert [hit["key"] for hit in hits] == ["cats_0.txt", "cats_1.txt"]
    snippet = client.get(hits[0]["url"])
    assert snippet.headers["content-type"].startswith("text/plain")
    assert snippet.text.startswith("A note about cats")


def test_files_named_one_by_one_are_taken_whatever_their_ending(tmp_path, capsys):
    from PIL import Image

    picture = tmp_path / "scan.data"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(picture, format="PNG")
    out = tmp_path / "one.skfk"
    assert main(["index", str(picture), "--kind", "image", "--features", "pixels",
                 "--out", str(out), "--quiet"]) == 0
    assert skio.load(out)[-1].item_keys_.tolist() == ["scan.data"]


@pytest.mark.slow
def test_serve_plays_the_items_of_a_cli_built_audio_folder(tmp_path):
    pytest.importorskip("librosa")
    from ._folders import write_sounds

    root = tmp_path / "sounds"
    paths = write_sounds(root)
    out = tmp_path / "sounds.skfk"
    assert main(["index", str(root), "--kind", "audio", "--out", str(out), "--quiet"]) == 0
    client = _client(out)
    with open(paths[0], "rb") as handle:
        hits = client.post("/search?k=1", files={"file": (paths[0].name, handle.read())})
    hit = hits.json()["results"][0]
    assert hit["key"] == paths[0].name
    item = client.get(hit["url"])
    assert item.headers["content-type"].startswith("audio/") and item.content.startswith(b"RIFF")
