"""RankFusionIndex removal and filtered search: delegated to every member's index,
the fused ranking equal to a fresh fusion over the live (or allowed) items."""

import pickle

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skfindkit import ExactIndex, RankFusionIndex, io
from skfindkit.indexes import UnknownItemError
from skfindkit.utils import final_index


def _first(X):
    return np.asarray(X)[:, :2]


def _last(X):
    return np.asarray(X)[:, 2:]


def _fusion(**params):
    """Two exact members over different views of the same rows."""
    return RankFusionIndex([("a", make_pipeline(FunctionTransformer(_first), ExactIndex())),
                            ("b", make_pipeline(FunctionTransformer(_last),
                                                ExactIndex(metric="cosine")))], **params)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    return rng.rand(60, 4), rng.rand(7, 4)


@pytest.mark.parametrize("method", ["rrf", "minmax", "zscore"])
def test_removal_equals_a_fresh_fusion_of_the_live_items(method, data):
    X, Q = data
    gone = np.arange(0, 60, 4)
    live = np.setdiff1d(np.arange(60), gone)
    index = _fusion(method=method, n_neighbors=6, depth=100).fit(X).remove(gone)
    fresh = _fusion(method=method, n_neighbors=6, depth=100).fit(X[live])
    assert index.n_items_ == live.size and not index.is_live(gone).any()
    for member in index.members_:  # every member's index removed them
        np.testing.assert_array_equal(final_index(member[1]).live_mask_, index.live_mask_)
    dist, ind = index.kneighbors(Q)
    fresh_dist, fresh_ind = fresh.kneighbors(Q)
    np.testing.assert_array_equal(ind, live[fresh_ind])
    np.testing.assert_allclose(dist, fresh_dist, atol=1e-12)
    for copy in (pickle.loads(pickle.dumps(index)), index.compact()):
        np.testing.assert_array_equal(copy.kneighbors(Q, return_distance=False), ind)


def test_removal_is_checked_once_and_kept_in_saved_files(data, tmp_path):
    X, Q = data
    index = _fusion().fit(X).remove([3, 5])
    for bad in ([3], [70], [8, 8]):
        with pytest.raises(UnknownItemError):
            index.remove(bad)
    assert all(final_index(m).n_items_ == 58 for _, m in index.members_)
    io.save(index, tmp_path / "fused.skfk", trusted=[_first, _last])
    loaded = io.load(tmp_path / "fused.skfk", trusted=[_first, _last])
    np.testing.assert_array_equal(loaded.live_mask_, index.live_mask_)
    ind = loaded.kneighbors(np.vstack([X[[3, 5]], Q]), 5, return_distance=False)
    assert loaded.is_live(ind).all()
    own = index.kneighbors(None, 3, return_distance=False)  # removed items have no row
    assert (own[[3, 5]] == -1).all() and index.is_live(np.delete(own, [3, 5], axis=0)).all()


def test_filter_equals_a_fresh_fusion_of_the_allowed_items(data):
    X, Q = data
    allowed = np.flatnonzero(np.random.RandomState(2).rand(60) < 0.3)
    index = _fusion(n_neighbors=5).fit(X)
    fresh = _fusion(n_neighbors=5).fit(X[allowed])
    for filter in (allowed, np.isin(np.arange(60), allowed)):
        ind = index.kneighbors(Q, filter=filter, return_distance=False)
        np.testing.assert_array_equal(ind, allowed[fresh.kneighbors(Q, return_distance=False)])


def test_per_query_filters_with_fewer_allowed_items_than_k(data):
    X, Q = data
    index = _fusion(n_neighbors=4).fit(X).remove([1])
    filters = [np.array([1, 2, 9]), np.arange(10, 20)] + [np.arange(60)] * 5
    dist, ind = index.kneighbors(Q, filter=filters)
    assert sorted(ind[0, :2]) == [2, 9] and (ind[0, 2:] == -1).all()
    assert np.isinf(dist[0, 2:]).all() and np.isfinite(dist[0, :2]).all()
    assert set(ind[1]) <= set(range(10, 20)) and index.is_live(ind[2:]).all()
    graph = index.kneighbors_graph(Q, filter=filters)
    assert graph.shape == (7, 60) and graph.nnz == (ind >= 0).sum()
