"""``skfindkit evaluate`` on small BEIR-format folders."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.pipeline import make_pipeline

from skfindkit import BM25Index, io
from skfindkit.cli import main

from .._beir import write_beir

ROOT = Path(__file__).resolve().parents[2]
TOPICS = ["volcano lava eruption", "violin orchestra concert", "glacier ice melting",
          "comet orbit telescope", "bakery bread oven", "river delta sediment"]


@pytest.fixture
def beir(tmp_path):
    """Two documents per topic; each query names its topic's first document."""
    corpus = {f"d{2 * i + j}": (f"doc {2 * i + j}", f"{t} {'notes' if j else 'report'}")
              for i, t in enumerate(TOPICS) for j in range(2)}
    queries = {f"q{i}": t.split()[0] + " report" for i, t in enumerate(TOPICS)}
    qrels = {f"q{i}": {f"d{2 * i}": 2, f"d{2 * i + 1}": 1} for i in range(len(TOPICS))}
    write_beir(tmp_path / "set", corpus, queries, {"test": qrels, "train": {"q0": {"d0": 1}}})
    return tmp_path / "set"


def _json(capsys, *args):
    assert main(["evaluate", *map(str, args), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_default_text_features_rank_each_topic_first(beir, capsys):
    report = _json(capsys, beir)
    assert report["ndcg@10"] == pytest.approx(1.0)
    assert report["mrr@10"] == report["recall@100"] == 1.0
    assert report["queries"] == 6 and report["documents"] == 12 and report["split"] == "test"
    assert report["queries_per_s"] > 0
    assert _json(capsys, beir, "--split", "train", "--measures", "map,ndcg@1")["map"] == 1.0


def test_saved_pipeline_is_fitted_on_the_corpus(beir, tmp_path, capsys):
    path = tmp_path / "bm25.skfk"
    io.save(make_pipeline(CountVectorizer(), BM25Index()).fit(["unrelated words"]), path)
    report = _json(capsys, beir, "--pipeline", path)
    assert report["ndcg@10"] == pytest.approx(1.0) and report["documents"] == 12


@pytest.mark.slow
def test_table_output_as_a_user_runs_it(beir):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "skfindkit.cli", "evaluate", str(beir)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert lines["ndcg@10"].strip() == "1.0000" and "queries_per_s" in lines


@pytest.mark.parametrize("args, message", [
    (("nowhere",), "not found"), (("BEIR", "--measures", "p@5"), "unknown measure"),
    (("BEIR", "--split", "dev"), "dev.tsv")])
def test_errors_are_one_line(beir, tmp_path, capsys, args, message):
    args = [str(beir) if a == "BEIR" else str(tmp_path / a) if a == "nowhere" else a
            for a in args]
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skfindkit: error:") and message in err and len(err.splitlines()) == 1
