"""``skfindkit serve --processes N``: N processes forked from one mapped pipeline."""

import os
import sys
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from skfindkit import io as skio  # noqa: E402
from skfindkit.cli import main as cli_main  # noqa: E402

from .._serve_fixtures import ServeProcess, digit_image_pipeline, write_digit_pngs  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="forks, and reads /proc")


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def _maps(pid, path):
    with open(f"/proc/{pid}/maps") as fh:
        return any(line.rstrip().endswith(os.fspath(path)) for line in fh)


@pytest.fixture
def pipeline_file(tmp_path):
    paths, _ = write_digit_pngs(tmp_path, n=60)
    path = tmp_path / "pipeline.skfk"
    skio.save(digit_image_pipeline(paths, n_neighbors=3), path)
    return path, paths


@pytest.mark.slow
def test_processes_share_the_mapped_file_and_all_answer(pipeline_file):
    path, paths = pipeline_file
    with ServeProcess(path, "--processes", "2") as served:
        children = _children(served.process.pid)
        assert len(children) == 2 and all(_maps(pid, path.resolve()) for pid in children)
        with open(paths[7], "rb") as handle:
            image = handle.read()
        for _ in range(6):  # new connections each: the kernel spreads them
            response = httpx.post(served.url + "/search?k=2",
                                  files={"file": ("q.png", image, "image/png")})
            assert response.status_code == 200, response.text
            assert response.json()["results"][0]["key"] == os.path.basename(paths[7])
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in children) and (
            time.monotonic() < deadline):
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in children), served.output()


def test_processes_refuse_additions(pipeline_file, capsys):
    path, _ = pipeline_file
    assert cli_main(["serve", str(path), "--port", "1", "--processes", "2",
                     "--token", "secret"]) == 2
    assert "--processes" in capsys.readouterr().err


@pytest.mark.slow
def test_one_mapped_process_serves_with_mmap(pipeline_file):
    path, paths = pipeline_file
    with ServeProcess(path, "--mmap") as served:
        assert _maps(served.process.pid, path.resolve())
        with open(paths[2], "rb") as handle:
            response = httpx.post(served.url + "/search?k=1",
                                  files={"file": ("q.png", handle.read(), "image/png")})
        assert response.json()["results"][0]["key"] == os.path.basename(paths[2])
