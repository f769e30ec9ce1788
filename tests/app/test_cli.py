import contextlib
import io

import pytest

from skfindkit import io as skio
from skfindkit.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``skfindkit demo`` run once into a temporary folder: (folder, what it printed)."""
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--out", str(out), "-k", "5", "--queries", "2"]) == 0
    return out, printed.getvalue()


@pytest.mark.slow  # the demo end to end
def test_demo_prints_table_saves_pipeline_and_gallery(demo):
    out_dir, out = demo
    assert "P@5" in out and "configuration" in out and "gallery written to" in out
    assert out.count("query digit #") == 2
    assert f"skfindkit serve {out_dir / 'digits_retrieval.skfk'}" in out
    assert (out_dir / "digits_gallery.png").stat().st_size > 10_000
    model = out_dir / "digits_retrieval.skfk"
    assert skio.file_kind(model) == "safe"
    system = skio.load(model)  # the safe format: loads without running code
    index = system[-1]
    assert index.n_neighbors == 5 and len(index.item_keys_) == index.n_samples_fit_
    # every indexed digit is a PNG keyed by its path relative to the output folder
    assert all((out_dir / key).is_file() for key in index.item_keys_)
    assert index.item_keys_[0].startswith("digits/digit_")
    assert len(list((out_dir / "digits").glob("*.png"))) == index.n_samples_fit_
    queries = sorted((out_dir / "queries").glob("digit_*.png"))
    assert len(queries) == 2
    assert not {q.name for q in queries} & {key.split("/")[1] for key in index.item_keys_}
    # a saved file answers like the array it was made from: itself at distance ~0
    from skfindkit import search

    hit = search(system, [str(out_dir / index.item_keys_[3])], n_neighbors=1)
    assert hit.keys[0, 0] == index.item_keys_[3] and hit.distances[0, 0] < 1e-4


@pytest.mark.slow  # the demo's output served by a subprocess
def test_serve_the_demo_output_and_search_with_a_saved_query(demo):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    import httpx

    from .._serve_fixtures import ServeProcess

    out_dir, _ = demo
    query = sorted((out_dir / "queries").glob("*.png"))[0]
    with ServeProcess(out_dir / "digits_retrieval.skfk") as served:
        with open(query, "rb") as handle:
            response = httpx.post(served.url + "/search?k=3",
                                  files={"file": (query.name, handle.read(), "image/png")})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == 3 and results[0]["key"].startswith("digits/digit_")
        assert results[0]["url"] == f"/items/{results[0]['id']}"
        item = httpx.get(served.url + results[0]["url"])
        assert item.status_code == 200 and item.headers["content-type"] == "image/png"
        assert item.content.startswith(b"\x89PNG")


def test_cli_usage_errors(capsys):
    with pytest.raises(SystemExit):
        main([])
    with pytest.raises(SystemExit):
        main(["no-such-command"])
