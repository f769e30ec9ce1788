"""ExactIndex against scikit-learn's brute force, and its own mechanics."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_info

from skfindkit import ExactIndex
from skfindkit.indexes._brute import _top_candidates


def _clustered(n, d, seed=0, centers=20):
    rng = np.random.default_rng(seed)
    c = rng.normal(scale=3.0, size=(centers, d))
    return (c[rng.integers(0, centers, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("batch_size", [None, 1, 33])
def test_same_neighbours_as_sklearn_brute(metric, batch_size):
    X = _clustered(5000, 24)  # wide enough rows for the grouped prefilter
    Q = _clustered(120, 24, seed=1)
    ours = ExactIndex(n_neighbors=10, metric=metric, batch_size=batch_size).fit(X)
    ref = NearestNeighbors(n_neighbors=10, metric=metric, algorithm="brute").fit(X)
    d, i = ours.kneighbors(Q)
    d2, i2 = ref.kneighbors(Q)
    np.testing.assert_array_equal(i, i2)
    np.testing.assert_allclose(d, d2, rtol=1e-5, atol=1e-5)


def test_digits_float64_and_int_input():
    X, _ = load_digits(return_X_y=True)
    for data in (X, X.astype(np.int64)):
        ours = ExactIndex(n_neighbors=5).fit(data)
        ref = NearestNeighbors(n_neighbors=6, algorithm="brute").fit(X)
        d, i = ours.kneighbors()
        d2, i2 = ref.kneighbors()
        # digits has many exact ties: compare distances, and ids where no
        # tie (the 6th neighbour included) makes the order arbitrary
        np.testing.assert_allclose(d, d2[:, :5], rtol=1e-6, atol=1e-6)
        untied = np.all(np.diff(d2, axis=1) > 1e-9, axis=1)
        assert untied.mean() > 0.5
        np.testing.assert_array_equal(i[untied], i2[untied, :5])


def test_inner_product_is_one_minus_dot():
    X = _clustered(500, 6)
    Q = _clustered(20, 6, seed=3)
    d, i = ExactIndex(n_neighbors=4, metric="inner_product").fit(X).kneighbors(Q)
    sims = Q.astype(np.float64) @ X.astype(np.float64).T
    best = np.argsort(-sims, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(i, best)
    np.testing.assert_allclose(d, 1 - np.take_along_axis(sims, best, axis=1), rtol=1e-5)


def test_cosine_zero_vector_distance_is_one_as_sklearn():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    d, _ = ExactIndex(n_neighbors=3, metric="cosine").fit(X).kneighbors([[0.0, 0.0]])
    np.testing.assert_allclose(d, [[1.0, 1.0, 1.0]])


def test_duplicates_self_exclusion_follows_sklearn():
    X = np.repeat(np.arange(10, dtype=float)[:, None], 3, axis=0)  # each point 3 times
    ours = ExactIndex(n_neighbors=2).fit(X)
    d, i = ours.kneighbors()
    assert (d == 0).all()
    assert not (i == np.arange(30)[:, None]).any()  # never itself


@pytest.mark.parametrize("n", [10_000, 100_003])  # 2 and 3 levels of groups, leftovers
def test_grouped_prefilter_is_exact(n):
    rng = np.random.default_rng(0)
    S = rng.normal(size=(20, n)).astype(np.float32)
    for m in (1, 5, 20, 40):
        got = np.sort(_top_candidates(S, m), axis=1)
        want = np.sort(np.argsort(-S, axis=1)[:, :m], axis=1)
        np.testing.assert_array_equal(got, want)


def test_grouped_prefilter_with_ties_keeps_the_best_values():
    rng = np.random.default_rng(1)
    S = rng.integers(0, 50, size=(20, 30_011)).astype(np.float32)  # many ties
    for m in (3, 20):
        cols = _top_candidates(S, m)
        assert (np.sort(cols, axis=1)[:, 1:] > np.sort(cols, axis=1)[:, :-1]).all()  # distinct
        got = np.sort(np.take_along_axis(S, cols, axis=1), axis=1)
        np.testing.assert_array_equal(got, np.sort(S, axis=1)[:, -m:])


def test_n_jobs_restores_blas_threads():
    before = [i["num_threads"] for i in threadpool_info()]
    X = _clustered(300, 8)
    ExactIndex(n_jobs=1).fit(X).kneighbors(X)
    assert [i["num_threads"] for i in threadpool_info()] == before


def test_float32_and_float64_agree():
    X = _clustered(400, 8).astype(np.float64)
    a = ExactIndex().fit(X).kneighbors(X[:20])
    b = ExactIndex().fit(X.astype(np.float32)).kneighbors(X[:20].astype(np.float32))
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6)


def _exact_reference(X, Q, k):
    """k nearest by float64 distances from differences, ties by id (scikit-learn's
    own float64 |x|^2 - 2 x.y + |y|^2 errs by ~1e-5 at 1e5 from the origin)."""
    X, Q = X.astype(np.float64), Q.astype(np.float64)
    D = np.sqrt(((Q[:, None, :] - X[None, :, :]) ** 2).sum(axis=2))
    ind = np.lexsort((np.broadcast_to(np.arange(X.shape[0]), D.shape), D), axis=1)[:, :k]
    return np.take_along_axis(D, ind, axis=1), ind


@pytest.mark.parametrize("offset", [1e3, 1e5])
def test_data_far_from_the_origin_gives_the_exact_neighbours(offset):
    # float32 scores <q, y> - |y|^2 / 2 lose everything to cancellation when
    # |y|^2 dwarfs the distances (here |y|^2 ~ 16 offset^2 against distances ~1):
    # the euclidean search must not depend on where the data sit
    rng = np.random.RandomState(0)
    X, Q = offset + rng.rand(5000, 16), offset + rng.rand(200, 16)
    ref_dist, ref_ind = _exact_reference(X.astype(np.float32), Q.astype(np.float32), 10)
    dist, ind = ExactIndex(n_neighbors=10).fit(X).kneighbors(Q)
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-9, atol=1e-12)
    if offset <= 1e3:  # where scikit-learn's own float64 arithmetic is still exact enough
        sk_ind = NearestNeighbors(n_neighbors=10, algorithm="brute").fit(
            X.astype(np.float32).astype(np.float64)).kneighbors(
            Q.astype(np.float32).astype(np.float64), return_distance=False)
        np.testing.assert_array_equal(ind, sk_ind)


@pytest.mark.parametrize("offset", [1e3, 1e5])
def test_exact_reranking_of_candidates_far_from_the_origin(offset):
    # refine's numpy scoring of gathered candidates (the path of every backend
    # without a native by-id kernel) has the same cancellation to avoid
    from skfindkit.indexes._brute import rerank_exact

    rng = np.random.RandomState(1)
    X = (offset + rng.rand(3000, 16)).astype(np.float32)
    Q = (offset + rng.rand(50, 16)).astype(np.float32)
    cand = np.tile(np.arange(3000), (50, 1))  # every item a candidate: c >> 2k
    dist, ind = rerank_exact(Q, X, cand, 10, "euclidean")
    ref_dist, ref_ind = _exact_reference(X, Q, 10)
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-9, atol=1e-12)
