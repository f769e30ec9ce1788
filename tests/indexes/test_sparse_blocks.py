"""Sparse ExactIndex's mechanics: the frequent/rare split of the float32 prefilter,
the item-major grouped top-k, block boundaries, ties, tiny collections."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import KNeighborsTransformer

from skfindkit import ExactIndex
from skfindkit.indexes import _sparse


def _zipf_sparse(n, d=2000, mean_terms=30, seed=0):
    """Rows whose terms follow a Zipf law: a few terms in most rows, a long rare tail."""
    rng = np.random.RandomState(seed)
    p = 1.0 / np.arange(1, d + 1) ** 1.1
    p /= p.sum()
    lengths = rng.poisson(mean_terms, n) + 1
    cols = rng.choice(d, size=lengths.sum(), p=p)
    rows = np.repeat(np.arange(n), lengths)
    X = sp.csr_matrix((rng.uniform(0.1, 2.0, len(cols)), (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    return X


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_grouped_item_major_prefilter_matches_scikit_learn(metric):
    X, Q = _zipf_sparse(3001), _zipf_sparse(70, seed=1)  # 3001: leftover rows after the groups
    est = ExactIndex(n_neighbors=10, metric=metric, batch_size=32).fit(X)  # 70 = 32 + 32 + 6
    split = est._index.frequent
    assert 0 < split.sum() < split.size  # both products are used
    ref = KNeighborsTransformer(n_neighbors=10, metric=metric).fit(X)
    d, i = est.kneighbors(Q)
    d2, i2 = ref.kneighbors(Q)
    np.testing.assert_array_equal(i, i2)
    np.testing.assert_allclose(d, d2, rtol=1e-12, atol=1e-12)


def test_inner_product_with_negative_values():
    X = _zipf_sparse(1500)
    X.data -= 1.0  # signs mixed: no bound may assume non-negative scores
    Q = _zipf_sparse(20, seed=2)
    dist, ind = ExactIndex(n_neighbors=7, metric="inner_product").fit(X).kneighbors(Q)
    D = 1.0 - (Q @ X.T).toarray()
    want = np.argsort(D, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(ind, want)
    np.testing.assert_allclose(dist, np.take_along_axis(D, want, axis=1), atol=1e-12)


@pytest.mark.parametrize("frequent", [0.0, 2.0])  # every term frequent / every term rare
def test_all_frequent_or_all_rare_terms(monkeypatch, frequent):
    monkeypatch.setattr(_sparse, "_FREQUENT_TERM", frequent)
    X, Q = _zipf_sparse(800), _zipf_sparse(15, seed=3)
    est = ExactIndex(n_neighbors=5, metric="euclidean").fit(X)
    assert est._index.frequent.all() == (frequent == 0.0)
    ref = KNeighborsTransformer(n_neighbors=5).fit(X)
    d, i = est.kneighbors(Q)
    np.testing.assert_array_equal(i, ref.kneighbors(Q)[1])
    np.testing.assert_allclose(d, ref.kneighbors(Q)[0], rtol=1e-12, atol=1e-12)


def test_public_product_fallback_gives_the_same_scores(monkeypatch):
    X, Q = _zipf_sparse(500), _zipf_sparse(9, seed=4)
    matrix = _sparse.SparseBruteForce(_sparse.prepare_sparse(X, "euclidean"), "euclidean")
    Qp = _sparse.prepare_sparse(Q, "euclidean")
    fast = matrix.scores_t(Qp, np.empty((500, 9), dtype=np.float32)).copy()
    monkeypatch.setattr(_sparse, "_csr_matvecs", None)
    public = matrix.scores_t(Qp, np.empty((500, 9), dtype=np.float32))
    exact = (Qp @ X.T).toarray() - 0.5 * np.asarray(X.multiply(X).sum(axis=1)).ravel()
    tol = 1e-5 * np.abs(exact).max()  # float32 sums: the order differs between kernels
    np.testing.assert_allclose(fast.T, exact, rtol=0, atol=tol)
    np.testing.assert_allclose(public.T, exact, rtol=0, atol=tol)


def test_duplicate_documents_tie_at_zero_by_id():
    X = _zipf_sparse(600)
    X = sp.vstack([X, X[:40]], format="csr")  # rows 600.. repeat rows 0..39
    est = ExactIndex(n_neighbors=3, metric="cosine").fit(X)
    dist, ind = est.kneighbors(X[:40])
    np.testing.assert_array_equal(ind[:, :2], np.c_[np.arange(40), 600 + np.arange(40)])
    assert (dist[:, :2] == 0.0).all()


def test_empty_rows_and_empty_queries_with_cosine():
    X = _zipf_sparse(900).tolil()
    X[[5, 450], :] = 0
    X = X.tocsr()
    X.eliminate_zeros()
    Q = sp.vstack([sp.csr_matrix((1, X.shape[1])), X[:10]], format="csr")
    ref = KNeighborsTransformer(n_neighbors=4, metric="cosine").fit(X)
    d, _ = ExactIndex(n_neighbors=4, metric="cosine").fit(X).kneighbors(Q)
    np.testing.assert_allclose(d, ref.kneighbors(Q)[0], atol=1e-12)
    np.testing.assert_allclose(d[0], 1.0)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_tiny_collections(n):
    X = _zipf_sparse(n, d=50)
    for metric in ("euclidean", "cosine", "inner_product"):
        d, i = ExactIndex(n_neighbors=n, metric=metric).fit(X).kneighbors(X)
        assert sorted(i[0]) == list(range(n))
        assert np.all(np.diff(d, axis=1) >= 0)
