"""JudgedRetrieval: GridSearchCV splits the queries, fits the corpus once per candidate,
and picks the BM25 parameters that generated the judgments."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline

from skfindkit import BM25Index
from skfindkit.metrics import Qrels, evaluate_run
from skfindkit.model_selection import JudgedRetrieval, make_judged_scorer

WORDS = [f"w{i}" for i in range(40)]


def _corpus(seed=0, n_docs=150, n_queries=40):
    """Documents of very different lengths (so that b matters) and repeated terms
    (so that k1 matters), queries of 2 to 4 words."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, len(WORDS) + 1)
    p /= p.sum()
    docs = [" ".join(rng.choice(WORDS, size=rng.integers(3, 80), p=p)) for _ in range(n_docs)]
    queries = [" ".join(rng.choice(WORDS[5:], size=rng.integers(2, 5), replace=False))
               for _ in range(n_queries)]
    return docs, queries


def _judged_by_bm25(docs, queries, k1, b, depth=10):
    """Graded judgments: the top ``depth`` documents of BM25(k1, b), graded depth..1, so
    that nDCG@10 is 1 exactly for that ranking."""
    pipe = make_pipeline(CountVectorizer(), BM25Index(n_neighbors=depth, k1=k1, b=b)).fit(docs)
    ind = pipe[-1].kneighbors(pipe[0].transform(queries), return_distance=False)
    return [{str(d): depth - r for r, d in enumerate(row)} for row in ind]


def _model(docs, **params):
    return JudgedRetrieval(make_pipeline(CountVectorizer(), BM25Index()), docs, **params)


def test_grid_search_picks_the_known_best_k1_and_b():
    docs, queries = _corpus()
    judgments = _judged_by_bm25(docs, queries, k1=0.9, b=0.4)
    grid = {"pipeline__bm25index__k1": [0.3, 0.9, 2.0], "pipeline__bm25index__b": [0.0, 0.4, 1.0]}
    search = GridSearchCV(_model(docs), grid, cv=KFold(4, shuffle=True, random_state=0))
    search.fit(queries, judgments)
    assert search.best_params_ == {"pipeline__bm25index__k1": 0.9, "pipeline__bm25index__b": 0.4}
    # 1 but for tied scores, which the measures order by document id (trec_eval's rule)
    assert search.best_score_ > 0.999
    scores = np.sort(search.cv_results_["mean_test_score"])
    assert scores[-2] < scores[-1] - 0.01  # every other candidate ranks some queries otherwise
    assert search.best_estimator_.pipeline_[-1].k1 == 0.9


def test_score_is_the_measure_of_the_retrieved_run():
    docs, queries = _corpus(1, n_docs=60, n_queries=12)
    judgments = _judged_by_bm25(docs, queries, k1=2.0, b=1.0)
    model = _model(docs, scoring=["mrr@5", "ndcg@10"]).fit(queries)
    run = model.retrieve(queries)
    qrels = Qrels({str(i): j for i, j in enumerate(judgments)})
    expected = evaluate_run(qrels, run, ["mrr@5", "ndcg@10"])
    assert model.score(queries, judgments) == expected["mrr@5"]
    assert make_judged_scorer(["mrr@5", "ndcg@10"])(model, queries, judgments) == expected
    assert make_judged_scorer("ndcg@10")(model, queries, judgments) == expected["ndcg@10"]
    assert 0 < expected["ndcg@10"] < 1


def test_several_measures_from_one_scorer_with_refit_by_name():
    docs, queries = _corpus(2, n_docs=60, n_queries=12)
    judgments = _judged_by_bm25(docs, queries, k1=1.5, b=0.0)
    search = GridSearchCV(_model(docs), {"pipeline__bm25index__b": [0.0, 0.75]}, cv=3,
                          scoring=make_judged_scorer(["ndcg@10", "recall@100"]),
                          refit="ndcg@10").fit(queries, judgments)
    assert {"mean_test_ndcg@10", "mean_test_recall@100"} <= set(search.cv_results_)
    assert search.best_params_ == {"pipeline__bm25index__b": 0.0}


_FITS = []


class _CountFits(TransformerMixin, BaseEstimator):
    """Passes counts through and records each fit (on the corpus)."""

    def fit(self, X, y=None):
        _FITS.append(X.shape[0])
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return X


@pytest.mark.parametrize("reuse_fit, expected", [(True, 2 + 1), (False, 2 * 3 + 1)])
def test_corpus_is_fitted_once_per_candidate(reuse_fit, expected):
    docs, queries = _corpus(3, n_docs=40, n_queries=9)
    judgments = _judged_by_bm25(docs, queries, k1=1.5, b=0.75)
    model = JudgedRetrieval(make_pipeline(CountVectorizer(), _CountFits(), BM25Index()), docs,
                            reuse_fit=reuse_fit)
    _FITS.clear()
    # the best candidate (b=0.75) is the last: its refit reuses the last fit too
    GridSearchCV(model, {"pipeline__bm25index__b": [0.0, 0.75]}, cv=3).fit(queries, judgments)
    assert len(_FITS) == expected - (1 if reuse_fit else 0)
    assert set(_FITS) == {40}


def test_queries_without_any_known_word_score_zero():
    docs, queries = _corpus(4, n_docs=30, n_queries=4)
    model = _model(docs).fit(queries)
    run = model.retrieve(queries + ["unknown words only"], query_ids=list("abcde"))
    assert run["e"] == {} and all(run[q] for q in "abcd")
    assert model.score(["unknown words only"], [{"0": 1}]) == 0.0


def test_doc_ids_name_the_documents():
    docs = ["red apple", "green pear", "red cherry"]
    model = _model(docs, doc_ids=["A", "P", "C"], depth=2).fit()
    assert list(model.retrieve(["red apple"])["0"]) == ["A", "C"]
    assert model.score(["red apple"], [{"A": 1}]) == 1.0
    assert cross_val_score(model, ["red apple", "pear", "cherry"],
                           [{"A": 1}, {"P": 1}, {"C": 1}], cv=3).tolist() == [1.0, 1.0, 1.0]


def test_validation():
    docs = ["apple pear", "pear plum"]
    with pytest.raises(ValueError, match="doc_ids"):
        _model(docs, doc_ids=["x"]).fit()
    with pytest.raises(ValueError, match="unique"):
        _model(docs, doc_ids=["x", "x"]).fit()
    with pytest.raises(ValueError, match="unknown measure"):
        _model(docs, scoring="p@10").fit()
    model = _model(docs).fit()
    with pytest.raises(ValueError, match="2 queries but 1 judgments"):
        model.score(["apple", "plum"], [{"0": 1}])
    with pytest.raises(ValueError, match="judgments"):
        model.score(["apple"], None)


@pytest.mark.parametrize("check_name", [
    "check_no_attributes_set_in_init", "check_get_params_invariance", "check_set_params",
    "check_estimator_repr", "check_estimator_cloneable",
    "check_do_not_raise_errors_in_init_or_set_params"])
def test_sklearn_api_checks(check_name):
    from sklearn.base import clone
    from sklearn.utils import estimator_checks

    model = _model(["apple pear", "pear plum"], doc_ids=["a", "b"], scoring=["ndcg@5", "map"])
    getattr(estimator_checks, check_name)("JudgedRetrieval", clone(model))


def test_a_bare_index_on_dense_vectors_ranks_every_query():
    from skfindkit import ExactIndex

    X = np.eye(4)
    model = JudgedRetrieval(ExactIndex(metric="euclidean"), X, depth=2).fit()
    run = model.retrieve([[1.0, 0, 0, 0], [0, 0, 0, 0]])  # a zero vector is a point here
    assert list(run["0"])[0] == "0" and len(run["1"]) == 2
    assert model.score([[0, 0.9, 0, 0]], [{"1": 1}]) == 1.0
