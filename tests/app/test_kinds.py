"""One kind for every pipeline the CLI builds: the command line and the service agree."""

import os

import numpy as np
import pytest

from skfindkit.features import FEATURE_SETS

from ._folders import WRITERS

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("PIL", reason="Pillow (image extra) is not installed")

QUERY = {"image": "file", "audio": "file", "text": "text"}
NEEDS = {"audio": "librosa", "doc2vec": "gensim"}


def _cases():
    for kind in sorted(FEATURE_SETS):
        for name in FEATURE_SETS[kind]:
            marks = [pytest.mark.slow] if kind == "audio" or name == "doc2vec" else []
            yield pytest.param(kind, name, marks=marks, id=f"{kind}-{name}")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {}, tmp_path_factory.mktemp("folders")


@pytest.mark.parametrize("kind, features", list(_cases()))
def test_the_service_and_the_cli_agree_on_every_cli_pipeline(kind, features, folders, tmp_path):
    """``skfindkit index --kind K --features F`` then the service: same kind, queried so."""
    from fastapi.testclient import TestClient

    import joblib

    from skfindkit import io as skio
    from skfindkit.cli import main
    from skfindkit.serve import create_app

    if features == "keras":
        pytest.skip("the keras feature set needs a MobileNetV2 weights file (--weights)")
    for module in (NEEDS.get(kind), NEEDS.get(features)):
        if module:
            pytest.importorskip(module)
    made, root = folders
    if kind not in made:
        made[kind] = WRITERS[kind](root / kind)
    out = tmp_path / ("pipeline.joblib" if features == "doc2vec" else "pipeline.skfk")
    assert main(["index", str(root / kind), "--kind", kind, "--features", features,
                 "--out", str(out), "--quiet"]) == 0
    pipeline = joblib.load(out) if out.suffix == ".joblib" else skio.load(out)
    client = TestClient(create_app(pipeline, items_dir=root / kind))
    info = client.get("/info").json()
    assert (info["kind"], info["query"]) == (kind, QUERY[kind])
    if kind == "text":  # a text query is answered, whatever the text model
        response = client.post("/search", json={"text": "a kitten purrs"})
    else:
        first = made[kind][0]
        with open(first, "rb") as handle:
            response = client.post("/search", files={"file": (first.name, handle.read())})
    assert response.status_code == 200, response.text
    hits = response.json()["results"]
    assert hits and all(hit["url"] is not None for hit in hits)  # every item has a file


def test_a_pipeline_without_a_loader_takes_vectors_of_the_index_length():
    from skfindkit import ExactIndex
    from skfindkit._app.kinds import describe_pipeline

    spec = describe_pipeline(ExactIndex().fit(np.eye(5)))
    assert (spec.kind, spec.query, spec.n_features) == ("vector", "vector", 5)


@pytest.mark.parametrize("name, kind", [("face.pgm", "image"), ("scan.TIF", "image"),
                                        ("photo.webp", "image"), ("clip.flac", "audio"),
                                        ("take.AIFF", "audio"), ("notes.md", "text"),
                                        ("table.csv", "file"), ("README", "file")])
def test_file_kinds_come_from_the_decoders_registries(name, kind):
    from skfindkit._app.kinds import kind_of_file

    pytest.importorskip("soundfile")
    assert kind_of_file(os.path.join("some", "folder", name)) == kind


def test_image_endings_are_the_formats_pillow_opens():
    from PIL import Image

    from skfindkit._app.kinds import file_endings

    Image.init()
    endings = file_endings("image")
    assert {".pgm", ".ppm", ".png", ".tif"} <= set(endings)
    assert set(endings) <= set(Image.registered_extensions())
    assert ".h5" not in endings  # Pillow's stub formats (identify only) are not images here
