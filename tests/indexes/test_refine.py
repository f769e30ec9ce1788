"""``refine``: approximate candidates re-ranked by exact distance over the stored data."""

import numpy as np
import pytest
from sklearn.base import clone

from skfindkit.metrics import recall_at_k

from ..common.estimator_instances import index_instances

# weak settings, so that re-ranking has something to repair
_WEAK = {
    "AnnoyIndex": {"n_trees": 2},  # search_k = n_trees * k: grows with refine
    "NMSLibIndex": {"ef_search": 2},
    "HNSWIndex": {"M": 4, "ef_search": 2},
    "FaissIndex": {"factory": "IVF8,PQ4x4", "nprobe": 1, "ef_search": None},
}
# the backends with a ``refine`` parameter (a ShardedIndex refines in its shards:
# ShardedIndex(HNSWIndex(refine=...)))
APPROXIMATE = [i for i in index_instances()
               if "refine" in i.get_params(deep=False) and i.metric == "euclidean"]
APPROXIMATE = list({type(i).__name__: i for i in APPROXIMATE}.values())  # one per backend


def _data(n=600, d=16, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.randn(12, d) * 4
    X = centers[rng.randint(12, size=n + 50)] + rng.randn(n + 50, d)
    return X[:n], X[n:]


@pytest.mark.parametrize("index", APPROXIMATE, ids=lambda i: type(i).__name__)
def test_refine_reranks_by_exact_distance(index):
    X, Q = _data()
    weak = clone(index).set_params(n_neighbors=10, **_WEAK[type(index).__name__]).fit(X)
    true = weak.exact_kneighbors(Q, return_distance=False)
    plain = weak.kneighbors(Q, return_distance=False)
    dist, ind = weak.set_params(refine=8).kneighbors(Q)
    assert recall_at_k(true, plain) < 0.95  # the weak settings leave room
    if type(index).__name__ == "NMSLibIndex":
        # measured: nmslib's walk finds the same neighbourhood whatever k at a
        # given ef_search, so its extra candidates are never nearer ones
        assert recall_at_k(true, ind) >= recall_at_k(true, plain)
    else:
        assert recall_at_k(true, ind) > recall_at_k(true, plain) + 0.02
    # the distances are the exact ones of the returned ids, ascending
    exact = np.linalg.norm(X[ind] - Q[:, None, :], axis=2)
    np.testing.assert_allclose(dist, exact, rtol=1e-5, atol=1e-5)
    assert (np.diff(dist, axis=1) >= 0).all()


@pytest.mark.parametrize("index", APPROXIMATE, ids=lambda i: type(i).__name__)
def test_refine_is_validated(index):
    X, _ = _data(n=100)
    with pytest.raises(ValueError, match="'refine' parameter"):
        clone(index).set_params(refine=0).fit(X)


def test_exact_indexes_have_no_refine():
    from skfindkit import BM25Index, ExactIndex

    for est in (ExactIndex(), BM25Index()):
        with pytest.raises(ValueError, match="Invalid parameter 'refine'"):
            est.set_params(refine=2)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "inner_product"])
def test_faiss_refine_kernel_matches_numpy_reranking(metric):
    # FaissIndex scores refine's candidates with faiss's by-id kernels and,
    # for squared distances, re-ranks exactly only those within the kernel's
    # error of the k-th; the answer must be the one of the numpy path
    # (2k exact re-ranks), -1 candidates and tied duplicates included
    pytest.importorskip("faiss")
    from skfindkit import FaissIndex
    from skfindkit.indexes._brute import rerank_exact

    X, Q = _data(n=2000, d=16)
    X[1000:1300] = X[:300]  # exact duplicates: ties broken by id on both paths
    Q[:20] = X[:20] + 1e-6  # near-ties around duplicated rows
    index = FaissIndex(n_neighbors=5, factory="IVF8,PQ4x4", nprobe=2, metric=metric,
                       refine=6, random_state=0).fit(X)
    scores, error = index._candidate_scorer()
    assert (error is None) == (metric == "inner_product")
    Qp = index._prepare(np.asarray(Q, dtype=np.float32))
    cand = np.random.RandomState(0).randint(0, 300, size=(len(Q), 30))
    cand[:, :10] = np.arange(10) + np.array([0, 1000])[np.arange(10) % 2]
    cand[::7, -4:] = -1  # rows a backend left short
    native = rerank_exact(Qp, index._fit_X, cand, 5, metric, scores=scores, scores_error=error)
    numpy_ = rerank_exact(Qp, index._fit_X, cand, 5, metric)
    np.testing.assert_array_equal(native[1], numpy_[1])
    np.testing.assert_array_equal(native[0], numpy_[0])
    # and kneighbors with refine uses it: the same as re-ranking its candidates with numpy
    _, cand = index._search(Qp, 30)
    expected = rerank_exact(Qp, index._fit_X, np.asarray(cand, dtype=np.intp), 5, metric)
    got = index.kneighbors(Q)
    np.testing.assert_array_equal(got[1], expected[1])


def test_rerank_keeps_every_candidate_its_scores_error_allows():
    from skfindkit.indexes._brute import rerank_exact

    # a kernel whose scores err (relative 1e-3) against the truth: the 2 nearest
    # by exact distance are ranked 3rd and 4th by the kernel, within its error
    data = np.array([[0.0], [1.0], [1.0005], [1.001], [7.0]], dtype=np.float32)
    Q = np.zeros((1, 1), dtype=np.float32)
    cand = np.array([[4, 3, 2, 1, 0]])
    true = -(data[cand[0], 0] ** 2)
    skewed = true * np.array([1.0, 1.0, 1.0 - 9e-4, 1.0 - 9e-4, 1.0])

    def scores(Qb, cb):
        return np.tile(skewed.astype(np.float32), (Qb.shape[0], 1))

    dist, ind = rerank_exact(Q, data, cand, 3, "euclidean", scores=scores, scores_error=1e-3)
    np.testing.assert_array_equal(ind, [[0, 1, 2]])
    # fewer than k valid candidates (-1 ids): those found, then inf / -1
    dist, ind = rerank_exact(Q, data, np.array([[1, -1, -1]]), 2, "euclidean")
    np.testing.assert_array_equal(ind, [[1, -1]])
    assert dist[0, 1] == np.inf


def test_row_lookup_compares_rows_where_hashes_agree():
    # the item-itself rule finds a query's identical indexed row by hash; a hash
    # shared by a different row must not count (rows compared on every hit)
    from skfindkit.indexes._self import RowLookup, row_keys

    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    Q = np.array([[0, 1, 2], [100, 101, 102], [9, 10, 11]], dtype=np.float32)
    keys = row_keys(data)
    keys[1] = row_keys(Q[1:2])[0]  # row 1 claims the hash of an absent query
    np.testing.assert_array_equal(RowLookup(data, keys).find(Q), [0, -1, 3])


def test_row_keys_are_the_documented_hash():
    # the keys are saved with indexes that drop their vectors: the hash must not change
    from skfindkit.indexes._self import row_keys

    X = np.random.RandomState(0).randn(5000, 7).astype(np.float32)
    X[0, 0], X[1, 0] = -0.0, 0.0
    rng = np.random.RandomState(0)
    mult = rng.randint(1, 2**62, 7, dtype=np.uint64) | 1
    bits = np.where(X == 0, np.float32(0), X).view(np.uint32).astype(np.uint64)
    expected = (bits * mult).sum(axis=1, dtype=np.uint64)
    np.testing.assert_array_equal(row_keys(X), expected)
