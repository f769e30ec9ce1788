"""``skfindkit index`` / ``skfindkit query`` over folders of audio, image and text files."""

import numpy as np
import pytest

from skfindkit.cli import main

from .._audio_fixtures import write_dataset


def _make_folder(kind, root):
    if kind == "audio":
        pytest.importorskip("librosa")
        paths, _ = write_dataset(root, n_per_family=2)
        return paths
    if kind == "image":
        pytest.importorskip("PIL")
        from PIL import Image
        from skimage import data

        paths = []
        for name in ("camera", "moon", "coins", "astronaut"):
            path = root / "sub" / f"{name}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(getattr(data, name)()).save(path)
            paths.append(str(path))
        return paths
    pytest.importorskip("gensim")
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="latin-1") as handle:
        docs = [line for line in handle if line.strip()][:12]
    paths = []
    for i, doc in enumerate(docs):
        path = root / f"doc{i:02d}.txt"
        path.write_text(doc, encoding="utf-8")
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("kind", ["audio", "image", "text"])
def test_index_then_query_ranks_the_query_file_first(kind, tmp_path, capsys):
    folder = tmp_path / "collection"
    folder.mkdir()
    paths = _make_folder(kind, folder)
    (folder / "notes.unrelated").write_text("ignored: wrong extension")
    out = tmp_path / "p.skfk"
    assert main(["index", str(folder), "--kind", kind, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["query", str(out), paths[1], paths[2], "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"# {paths[1]}" and len(lines) == 8
    rank, distance, key = lines[1].split("\t")
    assert rank == "1" and abs(float(distance)) < 1e-3
    assert (folder / key).samefile(paths[1])
    keys = [line.split("\t")[2] for line in lines[5:8]]
    assert (folder / keys[0]).samefile(paths[2])
    assert np.all(np.diff([float(line.split("\t")[1]) for line in lines[5:8]]) >= 0)


def test_errors_give_exit_status_and_message(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["index", str(empty), "--kind", "image", "--out", str(tmp_path / "x")]) == 2
    assert "no image files" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    assert main(["index", str(bad), "--kind", "image", "--out", str(tmp_path / "x")]) == 1
    assert "broken.png" in capsys.readouterr().err
    assert main(["query", str(tmp_path / "missing.skfk"), "q.png"]) == 2
    with pytest.raises(SystemExit):
        main(["index", str(bad), "--kind", "video"])


def test_query_refuses_files_that_are_not_pipelines(tmp_path, capsys):
    import joblib

    garbage = tmp_path / "garbage.skfk"
    garbage.write_bytes(b"garbage, not a pickle")
    assert main(["query", str(garbage), "q.png"]) == 2
    assert "is not a skfindkit pipeline file" in capsys.readouterr().err
    other = tmp_path / "list.joblib"
    joblib.dump([1, 2, 3], other)
    assert main(["query", str(other), "q.png"]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert main(["query", str(other), "q.png", "--trust-pickle"]) == 2
    assert "not a fitted pipeline" in capsys.readouterr().err


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what a crafted pickle runs when it is loaded
        import os

        return os.mkdir, (self.marker,)


def test_a_crafted_pickle_runs_nothing_without_trust_pickle(tmp_path, capsys):
    import pickle

    marker = tmp_path / "payload-ran"
    crafted = tmp_path / "pipeline.joblib"
    crafted.write_bytes(pickle.dumps(_Payload(str(marker))))
    for command in (["query", str(crafted), "q.png"], ["info", str(crafted)],
                    ["add", str(crafted), str(tmp_path)], ["serve", str(crafted)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "pickle/joblib file" in err and "--trust-pickle" in err
        assert not marker.exists()
