"""skfindkit.text.TextAnalyzer: the terms it makes, and the vectorizer contract
(clone, pickle, safe-format save/load, GridSearchCV over its parameters)."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError

from skfindkit import BM25Index, io
from skfindkit.text import TextAnalyzer, stemmer_languages
from skfindkit.utils._safe_tree import walk

from ._safe_file_cases import edited_tree_file

pytest.importorskip("Stemmer", reason="the text extra (PyStemmer) is not installed")

DOCS = ["The runner was running", "Cafés and CAFE owners", "a café runs",
        "search engines rank documents", "ranking searched documents"]


def test_defaults_match_sklearn_word_analyzer():
    ours = TextAnalyzer(fold_accents=False)
    theirs = CountVectorizer().build_analyzer()
    for doc in DOCS:
        assert ours(doc) == theirs(doc)


def test_lowercase_accents_stop_words_stem_in_that_order():
    analyze = TextAnalyzer(stop_words="english", stem=True)
    assert analyze("The cafés WERE Running") == ["cafe", "run"]
    assert TextAnalyzer(lowercase=False)("Café") == ["Cafe"]
    assert TextAnalyzer(fold_accents=False)("Café") == ["café"]
    assert TextAnalyzer(stop_words=["cafe"])("Café noir") == ["noir"]  # matched after folding
    assert TextAnalyzer(stop_words=["Café"])("cafe noir") == ["noir"]  # the list folded too
    assert TextAnalyzer(stop_words=["Café"], fold_accents=False)("café noir") == ["noir"]
    assert TextAnalyzer(stem=True, language="french")("chantaient") == ["chant"]


def test_word_ngrams_after_stemming():
    analyze = TextAnalyzer(stem=True, ngram_range=(1, 2))
    assert analyze("running dogs bark") == [
        "run", "dog", "bark", "run dog", "dog bark"]
    assert TextAnalyzer(ngram_range=(2, 3))("a bb cc dd") == ["bb cc", "cc dd", "bb cc dd"]


@pytest.mark.parametrize("params", [
    dict(stem=True, language="klingon"), dict(ngram_range=(2, 1)), dict(ngram_range=(0, 1)),
    dict(stop_words="french"), dict(stop_words=[1, 2]), dict(lowercase="yes"),
    dict(token_pattern=r"(a)(b)"),
])
def test_invalid_parameters_are_refused_on_first_use(params):
    analyzer = TextAnalyzer(**params)  # __init__ stores only
    with pytest.raises((ValueError, InvalidParameterError)):
        analyzer("some text")


def test_parameters_changed_after_a_call_take_effect():
    analyzer = TextAnalyzer()
    assert analyzer("running") == ["running"]
    analyzer.set_params(stem=True)
    assert analyzer("running") == ["run"]


def test_languages_listed():
    assert {"english", "french", "german", "porter"} <= set(stemmer_languages())


def _bm25(analyzer):
    return make_pipeline(CountVectorizer(analyzer=analyzer), BM25Index(n_neighbors=2))


def test_pickle_clone_and_safe_format(tmp_path):
    system = _bm25(TextAnalyzer(stop_words=["a"], stem=True, ngram_range=(1, 2))).fit(DOCS)
    query = system[0].transform(["runners ran"])
    expected = system[-1].kneighbors(query)
    for copy in (pickle.loads(pickle.dumps(system)), io.load(_saved(system, tmp_path))):
        analyzer = copy[0].analyzer
        assert isinstance(analyzer, TextAnalyzer) and analyzer.stem
        assert analyzer.stop_words == ["a"] and analyzer.ngram_range == (1, 2)
        np.testing.assert_array_equal(copy[-1].kneighbors(copy[0].transform(["runners ran"]))[1],
                                      expected[1])
    assert clone(system)[0].analyzer.get_params() == system[0].analyzer.get_params()


def _saved(system, tmp_path):
    path = tmp_path / "system.skf"
    io.save(system, path)
    return path


def _analyzer_state(tree):
    """The state node of the TextAnalyzer in a safe file's JSON tree."""
    found = []
    walk(tree, found)
    node, = [n for n in found if n.get("class") == "skfindkit.text.TextAnalyzer"]
    return dict(node["state"]["items"]), node["state"]["items"]


@pytest.mark.parametrize("key, value", [("fold_accents", 7), ("language", "klingon"),
                                        ("ngram_range", [1, 2])])
def test_safe_format_refuses_invalid_analyzer_parameters(tmp_path, key, value):
    src = _saved(_bm25(TextAnalyzer(stem=True)).fit(DOCS), tmp_path)

    def edit(tree):
        state, items = _analyzer_state(tree)
        assert key in state
        for item in items:
            if item[0] == key:
                item[1] = value

    edited_tree_file(src, tmp_path / "edited.skf", edit)
    with pytest.raises(io.CorruptFileError, match="TextAnalyzer"):
        io.load(tmp_path / "edited.skf")


def test_grid_search_tunes_the_analyzer_through_the_vectorizer():
    # queries that only stemming matches with their class's documents
    docs = ["word runs", "word running", "word runner", "word cats", "word catting",
            "word catted", "word run", "word cat"]
    labels = [0, 0, 0, 1, 1, 1, 0, 1]
    pipe = make_pipeline(CountVectorizer(analyzer=TextAnalyzer()), BM25Index(n_neighbors=2))
    assert "countvectorizer__analyzer__stem" in pipe.get_params()
    search = GridSearchCV(pipe, {"countvectorizer__analyzer__stem": [False, True]},
                          cv=[(np.arange(6), np.arange(6, 8))])
    search.fit(docs, labels)
    assert search.best_params_ == {"countvectorizer__analyzer__stem": True}
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], [0.5, 1.0])


@pytest.mark.parametrize("check_name", [
    "check_no_attributes_set_in_init", "check_parameters_default_constructible",
    "check_get_params_invariance", "check_set_params", "check_estimator_repr",
    "check_estimator_cloneable", "check_do_not_raise_errors_in_init_or_set_params",
])
def test_sklearn_api_checks(check_name):
    from sklearn.utils import estimator_checks

    for analyzer in (TextAnalyzer(), TextAnalyzer(stop_words=["x"], stem=True, ngram_range=(1, 3))):
        getattr(estimator_checks, check_name)("TextAnalyzer", clone(analyzer))
