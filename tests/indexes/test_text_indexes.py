"""Sparse ExactIndex (TF-IDF) and BM25Index, against scikit-learn and a BM25 written out here."""

import math
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsTransformer
from sklearn.pipeline import Pipeline

from skfindkit import BM25Index, ExactIndex

from ..common.estimator_instances import index_instances

TOPICS = {
    "space": "rocket orbit launch moon astronaut satellite mars planet crew station",
    "food": "bread cheese recipe oven flour butter sugar bake dinner salad",
    "sport": "match goal team player score coach league season ball win",
}


def _topic_docs(n_per_topic=30, seed=0):
    """Short documents drawn from three topic vocabularies plus shared filler words."""
    rng = np.random.RandomState(seed)
    filler = "the a of and to in with on for today".split()
    docs, labels = [], []
    for label, words in TOPICS.items():
        words = words.split()
        for _ in range(n_per_topic):
            n = rng.randint(4, 12)
            doc = list(rng.choice(words, n)) + list(rng.choice(filler, rng.randint(1, 6)))
            rng.shuffle(doc)
            docs.append(" ".join(doc))
            labels.append(label)
    return docs, np.array(labels)


def _random_sparse(n=120, d=300, nnz_per_row=24, seed=0):
    """Continuous sparse rows: no tied distances, every row non-empty."""
    rng = np.random.RandomState(seed)
    cols = rng.randint(0, d, size=(n, nnz_per_row))
    cols[:, 0] = np.arange(n) % d  # a distinct column per row
    X = sp.csr_matrix((rng.uniform(0.1, 1.0, n * nnz_per_row), cols.ravel(),
                       np.arange(0, n * nnz_per_row + 1, nnz_per_row)), shape=(n, d))
    X.sum_duplicates()
    return X


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_sparse_exact_index_matches_kneighbors_transformer(metric, mode):
    X = _random_sparse()
    est = ExactIndex(n_neighbors=6, metric=metric, mode=mode, batch_size=17)
    ref = KNeighborsTransformer(n_neighbors=6, metric=metric, mode=mode)
    G, R = est.fit_transform(X), ref.fit_transform(X)
    np.testing.assert_array_equal(G.indices, R.indices)
    np.testing.assert_allclose(G.data, R.data, rtol=1e-10, atol=1e-10)
    d1, i1 = est.kneighbors()
    d2, i2 = ref.kneighbors()
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(d1, d2, rtol=1e-10, atol=1e-10)
    # dense queries of a sparse index: converted, same answer
    d3, i3 = est.kneighbors(X[:10].toarray())
    np.testing.assert_array_equal(i3, ref.kneighbors(X[:10])[1])


def test_sparse_inner_product_is_one_minus_dot():
    X = _random_sparse()
    est = ExactIndex(n_neighbors=5, metric="inner_product").fit(X)
    dist, ind = est.kneighbors(X[:20])
    D = 1.0 - (X[:20] @ X.T).toarray()
    expected = np.argsort(D, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(ind, expected)
    np.testing.assert_allclose(dist, np.take_along_axis(D, expected, axis=1), atol=1e-12)


def test_sparse_collection_is_never_densified():
    """2 million columns: a dense copy of the 300 rows would need 4.8 GB."""
    X = _random_sparse(n=300, d=2_000_000, nnz_per_row=40)
    est = ExactIndex(n_neighbors=3, metric="cosine").fit(X)
    assert sp.issparse(est._fit_X)
    dist, ind = est.kneighbors(X[:5])
    np.testing.assert_array_equal(ind[:, 0], np.arange(5))
    assert (dist[:, 0] == 0.0).all()


def test_sparse_partial_fit_and_pickle():
    X = _random_sparse()
    est = ExactIndex(n_neighbors=4, metric="cosine").fit(X[:80])
    est.partial_fit(X[80:])
    full = ExactIndex(n_neighbors=4, metric="cosine").fit(X)
    np.testing.assert_array_equal(est.kneighbors(X[:30])[1], full.kneighbors(X[:30])[1])
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.kneighbors(X[:30])[1], est.kneighbors(X[:30])[1])


def test_sparse_cosine_empty_rows_as_scikit_learn():
    X = _random_sparse().tolil()
    X[7, :] = 0
    X = X.tocsr()
    X.eliminate_zeros()
    est = ExactIndex(n_neighbors=3, metric="cosine").fit(X)
    dist, ind = est.kneighbors(sp.csr_matrix((1, X.shape[1])))
    np.testing.assert_allclose(dist, 1.0)
    ref = KNeighborsTransformer(n_neighbors=3, metric="cosine").fit(X)
    np.testing.assert_allclose(est.kneighbors(X[:20])[0], ref.kneighbors(X[:20])[0], atol=1e-12)


def test_tfidf_pipeline_fits_pickles_and_is_tuned_by_grid_search():
    docs, labels = _topic_docs()
    pipe = Pipeline([("tfidf", TfidfVectorizer()), ("index", ExactIndex(metric="cosine"))])
    pipe.fit(docs, labels)
    ref = Pipeline([("tfidf", TfidfVectorizer()),
                    ("knn", KNeighborsTransformer(metric="cosine"))]).fit(docs)
    Q = pipe[0].transform(docs[:15])
    dist, _ = pipe[-1].kneighbors(Q)
    np.testing.assert_allclose(dist, ref[-1].kneighbors(Q)[0], atol=1e-12)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored[-1].kneighbors(Q)[1], pipe[-1].kneighbors(Q)[1])
    search = GridSearchCV(
        pipe, {"tfidf__sublinear_tf": [False, True], "index__n_neighbors": [1, 5]},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(docs, labels)
    assert search.best_score_ > 0.8  # three well separated topics
    assert set(search.best_params_) == {"tfidf__sublinear_tf", "index__n_neighbors"}


def test_sparse_nan_and_vocabulary_mismatch_are_refused():
    X = _random_sparse()
    bad = X.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        ExactIndex().fit(bad)
    est = ExactIndex().fit(X)
    with pytest.raises(ValueError, match="X contains NaN"):
        est.kneighbors(bad[:5])
    with pytest.raises(ValueError, match="299 features, but ExactIndex is expecting 300"):
        est.kneighbors(X[:5, :-1])


@pytest.mark.parametrize(
    "index", [i for i in index_instances() if not i._accepts_sparse][:: 3],
    ids=lambda i: type(i).__name__,
)
def test_approximate_indexes_refuse_sparse_and_name_the_alternatives(index):
    X = _random_sparse()
    with pytest.raises(TypeError, match="does not accept sparse input X.*ExactIndex.*BM25Index"):
        clone(index).fit(X)


# ------------------------------------------------------------------- BM25
def _reference_bm25(doc_tokens, query_tokens, k1, b):
    """BM25 as documented in BM25Index, written out over token lists."""
    N = len(doc_tokens)
    avgdl = sum(len(d) for d in doc_tokens) / N
    scores = []
    for doc in doc_tokens:
        s = 0.0
        for term in query_tokens:
            df = sum(term in d for d in doc_tokens)
            f = doc.count(term)
            if f == 0:  # an absent term adds nothing (0/0 when k1 = 0)
                continue
            idf = math.log(1 + (N - df + 0.5) / (df + 0.5))
            s += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(s)
    return np.array(scores)


def _bm25_scores(index, Q):
    """All documents' BM25 scores for each query, from the index's distances."""
    dist, ind = index.kneighbors(Q, n_neighbors=index.n_samples_fit_)
    scores = np.empty_like(dist)
    np.put_along_axis(scores, ind, 1.0 / dist - 1.0, axis=1)
    return scores


@pytest.mark.parametrize("k1,b", [(1.5, 0.75), (0.0, 0.5), (2.0, 0.0), (1.2, 1.0)])
def test_bm25_scores_equal_the_written_out_formula(k1, b):
    docs, _ = _topic_docs(n_per_topic=10)
    vec = CountVectorizer(token_pattern=r"\S+").fit(docs)
    tokens = [d.split() for d in docs]
    queries = ["rocket moon the", "cheese cheese bake", "goal team win today", "mars"]
    index = BM25Index(k1=k1, b=b).fit(vec.transform(docs))
    scores = _bm25_scores(index, vec.transform(queries))
    for row, q in zip(scores, queries):
        np.testing.assert_allclose(row, _reference_bm25(tokens, q.split(), k1, b), rtol=1e-12)


def test_bm25_scores_equal_rank_bm25_with_the_documented_idf():
    rank_bm25 = pytest.importorskip("rank_bm25")

    class LuceneIDF(rank_bm25.BM25Okapi):  # the documented IDF; no epsilon flooring
        def _calc_idf(self, nd):
            self.idf = {t: math.log(1 + (self.corpus_size - n + 0.5) / (n + 0.5))
                        for t, n in nd.items()}

    docs, _ = _topic_docs(n_per_topic=10, seed=3)
    tokens = [d.split() for d in docs]
    vec = CountVectorizer(token_pattern=r"\S+").fit(docs)
    index = BM25Index(k1=1.2, b=0.6).fit(vec.transform(docs))
    ref = LuceneIDF(tokens, k1=1.2, b=0.6)
    queries = ["orbit crew of", "flour flour sugar", "coach season"]
    scores = _bm25_scores(index, vec.transform(queries))
    for row, q in zip(scores, queries):
        np.testing.assert_allclose(row, ref.get_scores(q.split()), rtol=1e-12)


def test_bm25_ranking_order_ties_and_graph():
    docs, _ = _topic_docs(n_per_topic=10)
    X = CountVectorizer().fit_transform(docs)
    index = BM25Index(n_neighbors=4).fit(X)
    dist, ind = index.kneighbors(X[:8])
    assert ((dist > 0) & (dist <= 1)).all() and (np.diff(dist, axis=1) >= 0).all()
    G = index.transform(X[:8])
    assert G.shape == (8, X.shape[0]) and (G.data > 0).all()
    assert index.kneighbors()[1].shape == (30, 4)
    # dense counts give the same answer as sparse ones
    np.testing.assert_array_equal(BM25Index(n_neighbors=4).fit(X.toarray()).kneighbors(X[:8])[1],
                                  ind)


def test_bm25_partial_fit_equals_fit_and_pickles():
    docs, labels = _topic_docs(n_per_topic=10)
    X = CountVectorizer().fit_transform(docs)
    grown = BM25Index(n_neighbors=5).fit(X[:12], labels[:12]).partial_fit(X[12:], labels[12:])
    full = BM25Index(n_neighbors=5).fit(X, labels)
    np.testing.assert_allclose(grown.kneighbors(X)[0], full.kneighbors(X)[0], rtol=1e-12)
    restored = pickle.loads(pickle.dumps(grown))
    np.testing.assert_array_equal(restored.kneighbors(X)[1], grown.kneighbors(X)[1])
    assert restored.score(X, labels) == full.score(X, labels) > 0.8


def test_bm25_bad_input_is_refused_clearly():
    docs, _ = _topic_docs(n_per_topic=5)
    vec = CountVectorizer().fit(docs)
    X = vec.transform(docs)
    with pytest.raises(ValueError, match="non-negative"):
        BM25Index().fit(-X)
    bad = X.astype(float)
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        BM25Index().fit(bad)
    index = BM25Index().fit(X)
    with pytest.raises(ValueError, match="contain no term of the fitted vocabulary"):
        index.kneighbors(vec.transform(["zebra unicorn", "rocket"]))
    other = CountVectorizer().fit(["a different vocabulary entirely"])
    with pytest.raises(ValueError, match="fitted vocabulary.*CountVectorizer"):
        index.kneighbors(other.transform(["different vocabulary"]))
    with pytest.raises(ValueError, match="k1"):
        BM25Index(k1=-1).fit(X)
    with pytest.raises(ValueError, match="'b' parameter"):
        BM25Index(b=2).fit(X)


def test_sparse_indexes_round_trip_through_the_safe_format(tmp_path):
    from skfindkit import io

    docs, labels = _topic_docs(n_per_topic=8)
    pipes = [
        Pipeline([("vec", TfidfVectorizer()), ("index", ExactIndex(metric="cosine"))]),
        Pipeline([("vec", CountVectorizer()), ("index", BM25Index())]),
    ]
    for i, pipe in enumerate(pipes):
        pipe.fit(docs, labels)
        io.save(pipe, tmp_path / f"{i}.skf")
        restored = io.load(tmp_path / f"{i}.skf")
        Q = pipe[0].transform(docs[:6])
        assert sp.issparse(restored[-1]._fit_X)
        np.testing.assert_array_equal(restored[-1].kneighbors(Q)[1], pipe[-1].kneighbors(Q)[1])
        np.testing.assert_array_equal(restored[-1].kneighbors(Q)[0], pipe[-1].kneighbors(Q)[0])


def test_inconsistent_sparse_node_is_refused_before_use():
    from skfindkit.utils._persist import CorruptFileError
    from skfindkit.utils._safe_tree import Decoder

    node = {"$": "sparse", "format": "csr", "shape": [2, 3],
            "data": [1.0, 2.0], "indices": [0, 7], "indptr": [0, 1, 2]}  # column 7 of 3
    decoder = Decoder({}, {})
    decoder.decode = _plain_lists(decoder.decode)
    with pytest.raises(CorruptFileError, match="sparse matrix is inconsistent"):
        decoder.decode(node)


def _plain_lists(decode):
    """The decoder, with the test's plain lists standing in for stored arrays."""
    def wrapped(node):
        if isinstance(node, list):
            return np.asarray(node)
        return decode(node)
    return wrapped
