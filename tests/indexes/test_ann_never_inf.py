"""Approximate indexes answer queries far outside the data (finite, within float32) exactly
(euclidean, inner product; cosine: as the same direction at unit length), never with ``inf``
distances or arbitrary ids; values beyond float32 are refused naming X."""

import warnings

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from skfindkit import AnnoyIndex, FaissIndex, HNSWIndex, NMSLibIndex

from .._backends import param

ANN = [param(cls, cls) for cls in (AnnoyIndex, NMSLibIndex, HNSWIndex, FaissIndex)]
METRICS = ["euclidean", "cosine", "inner_product"]


def _data(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(300, 8).astype(np.float32)
    Q = np.vstack([rng.randn(2, 8), 1e20 * rng.randn(2, 8), 2e19 * np.ones((1, 8))])
    return X, Q  # rows 2..4: squared distances overflow float32 (1e40)


@pytest.mark.parametrize("refine", [None, 3])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("cls", ANN)
def test_far_queries_are_answered_exactly_without_inf(cls, metric, refine):
    X, Q = _data()
    seeded = {"random_state": 0} if "random_state" in cls().get_params() else {}
    est = cls(n_neighbors=4, metric=metric, refine=refine, **seeded).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an exact answer needs no warning
        dist, ind = est.kneighbors(Q)
    assert np.isfinite(dist).all()
    assert ((ind >= 0) & (ind < X.shape[0])).all()
    if metric == "cosine":
        # a far query is a direction like any other: the index answers it as it
        # answers the same direction at unit length (approximately, like any query)
        unit = Q[2:] / np.linalg.norm(Q[2:], axis=1, keepdims=True)
        unit_dist, unit_ind = est.kneighbors(unit)
        np.testing.assert_array_equal(ind[2:], unit_ind)
        np.testing.assert_allclose(dist[2:], unit_dist, rtol=1e-5, atol=1e-6)
    else:
        exact_dist, exact_ind = est.exact_kneighbors(Q)
        np.testing.assert_array_equal(ind[2:], exact_ind[2:])
        # the backend's float32 distances where it could answer, exact ones otherwise
        np.testing.assert_allclose(dist[2:], exact_dist[2:], rtol=1e-5)
        if metric == "euclidean":  # scikit-learn's distances (float64 on the float32 data)
            ref, _ = NearestNeighbors(n_neighbors=4).fit(X.astype(np.float64)).kneighbors(Q[2:])
            np.testing.assert_allclose(dist[2:], ref, rtol=1e-6)


@pytest.mark.parametrize("cls", ANN)
def test_values_whose_squares_overflow_are_refused_naming_x(cls):
    X, _ = _data()
    est = cls(n_neighbors=2).fit(X)
    with pytest.raises(ValueError, match=r"^X contains values beyond the float32 range"):
        est.kneighbors(np.full((1, 8), 1e200))
    with pytest.raises(ValueError, match=r"^X contains values beyond the float32 range"):
        cls(n_neighbors=2).fit(np.vstack([X, np.full((1, 8), -1e160)]))


def test_ids_outside_the_index_count_as_missing():
    from skfindkit.indexes._query import _valid_ids

    labels = np.array([[0, 5, 2**64 - 1, 4]], dtype=np.uint64)  # hnswlib's label type
    np.testing.assert_array_equal(_valid_ids(labels, 5), [[0, -1, -1, 4]])
    np.testing.assert_array_equal(_valid_ids(np.array([[-1, 7, 3]]), 5), [[-1, -1, 3]])
