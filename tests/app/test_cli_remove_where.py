"""``skfindkit remove PIPELINE KEY...`` and ``skfindkit query ... --where``."""

import json

import numpy as np
import pytest

from skfindkit import attach_metadata, io
from skfindkit.cli import main

from .._serve_fixtures import digit_image_pipeline, write_digit_pngs

pytest.importorskip("PIL")


@pytest.fixture
def saved(tmp_path):
    paths, labels = write_digit_pngs(tmp_path, n=40)
    pipeline = digit_image_pipeline(paths, n_neighbors=5)
    attach_metadata(pipeline, {"label": labels})
    path = tmp_path / "p.skfk"
    io.save(pipeline, path)
    return path, paths, labels


def _query(capsys, path, query, *args):
    assert main(["query", str(path), query, "-k", "5", "--format", "json", *args]) == 0
    return [r["file"] for r in json.loads(capsys.readouterr().out)[0]["results"]]


def test_query_where_keeps_only_matching_items(saved, capsys):
    path, paths, labels = saved
    files = _query(capsys, path, paths[0], "--where", "label == 3")
    expected = {f"digit_{i:04d}.png" for i in np.flatnonzero(labels == 3)}
    assert files and set(files) <= expected
    assert len(files) == min(5, len(expected))


def test_query_with_a_bad_condition_is_one_line(saved, capsys):
    path, paths, _ = saved
    assert main(["query", str(path), paths[0], "--where", "colour == 'red'"]) == 2
    err = capsys.readouterr().err
    assert "unknown column 'colour'" in err and err.count("\n") == 1


def test_remove_by_key_saves_the_pipeline_without_the_items(saved, capsys):
    path, paths, _ = saved
    assert _query(capsys, path, paths[3])[0] == "digit_0003.png"
    assert main(["remove", str(path), "digit_0003.png", "digit_0004.png"]) == 0
    assert "removed 2 items; the index holds 38 items" in capsys.readouterr().err
    files = _query(capsys, path, paths[3])
    assert "digit_0003.png" not in files and "digit_0004.png" not in files
    assert main(["remove", str(path), "digit_0003.png"]) == 2
    assert "digit_0003.png" in capsys.readouterr().err
    assert io.load(path)[-1].n_items_ == 38
