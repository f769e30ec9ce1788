"""Property-based checks of every index instance (hypothesis, bounded for CI).

Small collections drawn with many duplicates, zero rows and mixed
magnitudes: every index's ``transform`` of its fitted data has the contract's
shape with each item in its own row at its exact self-distance, and every
exact backend returns ExactIndex's (and so scikit-learn's) distances.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.neighbors import NearestNeighbors

from skfindkit import ExactIndex

from ..common.estimator_instances import index_instances

INDEXES = index_instances()
BOUNDED = settings(
    max_examples=8, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def collections(draw, n_queries=0):
    """Indexed rows (and ``n_queries`` query rows) of one width and magnitude."""
    n = draw(st.integers(3, 24))
    d = draw(st.integers(1, 5))
    values = st.one_of(
        st.integers(-2, 2).map(float),  # duplicates and zero rows
        st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32),
    )
    X = draw(arrays(np.float64, (n + n_queries, d), elements=values))
    X *= draw(st.sampled_from([1.0, 1e-25, 1e15]))
    return (X[:n], X[n:]) if n_queries else X


def _fit(index, X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clamped faiss factories, exact completion
        return clone(index).set_params(**params).fit(X)


def _id(index):
    return repr(index)


@pytest.mark.parametrize("index", INDEXES, ids=_id)
@BOUNDED
@given(X=collections())
def test_transform_of_fitted_data_has_each_item_in_its_row(index, X):
    n = X.shape[0]
    k = min(3, n - 1)
    est = _fit(index, X, n_neighbors=k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        G = est.transform(X)
    per_row = k + 1 if est.mode == "distance" else k
    assert G.shape == (n, n) and np.diff(G.indptr).tolist() == [per_row] * n
    if est.metric == "inner_product":  # an item need not be its own nearest: never itself
        own = est.kneighbors(return_distance=False)
        assert not (own == np.arange(n)[:, None]).any()
    else:
        rows = np.repeat(np.arange(n), per_row)
        at_self = G.indices == rows
        assert at_self.reshape(n, per_row).any(axis=1).all(), "an item is missing from its own row"
        if est.mode == "distance":
            zero_row = ~X.any(axis=1)
            expected = np.where(zero_row & (est.metric == "cosine"), 1.0, 0.0)
            np.testing.assert_array_equal(G.data[at_self], expected)


@pytest.mark.parametrize("index", [i for i in INDEXES if i._is_exact()], ids=_id)
@BOUNDED
@given(data=collections(n_queries=5))
def test_exact_backends_equal_exact_index_and_sklearn(index, data):
    X, Q = data
    k = min(3, X.shape[0])
    dist, _ = _fit(index, X, n_neighbors=k).kneighbors(Q)
    ref, _ = ExactIndex(n_neighbors=k, metric=index.metric).fit(X).kneighbors(Q)
    scale = max(np.abs(X).max(), np.abs(Q).max(), 1e-300)
    # float32 storage: distances agree to float32 precision of the data's scale
    tol = 1e-5 * (scale if index.metric == "euclidean" else 1.0)
    if index.metric == "inner_product":
        tol = 1e-5 * scale * scale * X.shape[1]
    np.testing.assert_allclose(dist, ref, rtol=1e-5, atol=tol)
    # sklearn treats rows of norm < 10 eps as zero vectors for cosine (its
    # normalize): compare cosine with it only where no row is that small
    norms = np.linalg.norm(np.vstack([X, Q]), axis=1)
    tiny = ((norms > 0) & (norms < 1e-10)).any()
    if isinstance(index, ExactIndex) and index.metric != "inner_product" and not (
        tiny and index.metric == "cosine"
    ):
        sk, _ = NearestNeighbors(n_neighbors=k, metric=index.metric, algorithm="brute").fit(
            X).kneighbors(Q)
        np.testing.assert_allclose(dist, sk, rtol=1e-5, atol=tol)
