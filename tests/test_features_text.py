"""The CLI's stemmed text feature sets (skfindkit.features): what they match, and
the options that do not apply to a set with its own index."""

import pytest

from skfindkit import BM25Index, search
from skfindkit.features import build_pipeline
from skfindkit.text import TextAnalyzer

pytest.importorskip("Stemmer", reason="the text extra (PyStemmer) is not installed")

TEXTS = ["the runners were running fast", "a quiet afternoon by the river",
         "stock markets fell sharply", "she runs every morning"]


@pytest.fixture
def files(tmp_path):
    paths = []
    for i, text in enumerate(TEXTS):
        path = tmp_path / f"t{i}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    query = tmp_path / "query.txt"
    query.write_text("Run!", encoding="utf-8")
    return paths, str(query)


@pytest.mark.parametrize("features", ["tfidf-stem", "bm25-stem"])
def test_stemmed_sets_match_inflected_forms(files, features):
    paths, query = files
    pipeline = build_pipeline("text", features, n_neighbors=2).fit(paths)
    vectorizer = pipeline[0].estimator_.steps[0][1]
    assert isinstance(vectorizer.analyzer, TextAnalyzer) and vectorizer.analyzer.stem
    assert sorted(search(pipeline, [query], n_neighbors=2).indices[0]) == [0, 3]
    # plain words match neither "runners" nor "runs"
    plain = build_pipeline("text", "tfidf", n_neighbors=2).fit(paths)
    assert "run" not in plain[0].estimator_.steps[0][1].vocabulary_


def test_bm25_set_has_its_own_index(files):
    pipeline = build_pipeline("text", "bm25-stem", n_neighbors=3)
    assert isinstance(pipeline[-1], BM25Index) and pipeline[-1].n_neighbors == 3
    for options in (dict(index="hnsw"), dict(metric="cosine")):
        with pytest.raises(ValueError, match="does not apply|do not apply"):
            build_pipeline("text", "bm25-stem", **options)


def test_cli_indexes_adds_and_queries_with_bm25_stem(files, tmp_path, capsys):
    from skfindkit.cli import main

    paths, query = files
    folder = tmp_path / "more"
    folder.mkdir()
    extra = folder / "t9.txt"
    extra.write_text("running late again", encoding="utf-8")
    out = tmp_path / "p.skfk"
    assert main(["index", *paths, "--kind", "text", "--features", "bm25-stem",
                 "--out", str(out), "--quiet"]) == 0
    assert main(["add", str(out), str(folder), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["query", str(out), query, "-k", "3", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert {row.rsplit(",", 1)[-1] for row in rows} == {paths[0], paths[3], str(extra)}
    # a set with its own index takes no --index
    assert main(["index", *paths, "--kind", "text", "--features", "bm25-stem",
                 "--index", "exact", "--metric", "cosine", "--out", str(tmp_path / "q.skfk"),
                 "--quiet"]) != 0
    assert "do not apply" in capsys.readouterr().err
