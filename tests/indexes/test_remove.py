"""Removal on every index: removed items never come back, ids never change.

Parametrized over every index instance of the contract suite
(``estimator_instances.index_instances``) and BM25 for the lexical case.
"""

import pickle
import threading

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

from skfindkit import AnnoyIndex, ExactIndex, HNSWIndex, ShardedIndex
from skfindkit.indexes import UnknownItemError
from skfindkit.io import load, save

from .._backends import needs_mark
from ..common.estimator_instances import index_instances, text_index_instances

INDEXES = index_instances()
IDS = [repr(i) for i in INDEXES]


def clustered(n, d=8, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.randn(6, d) * 3
    return (centers[rng.randint(6, size=n)] + rng.randn(n, d)).astype(np.float32)


def fitted(index, X):
    index = clone(index)
    if "random_state" in index.get_params():
        index.set_params(random_state=0)
    return index.fit(X)


def live_truth(index, X, Q, k, live):
    """Exact neighbours among the live rows, as ids of the whole collection."""
    ids = np.flatnonzero(live)
    dist, ind = ExactIndex(metric=index.metric_).fit(X[ids]).kneighbors(Q, k)
    return dist, ids[ind]


@pytest.fixture(scope="module")
def data():
    return clustered(240), clustered(12, seed=1)


@pytest.mark.parametrize("index", INDEXES, ids=IDS)
def test_removed_items_are_never_returned_and_k_is_filled(index, data):
    X, Q = data
    index = fitted(index, X)
    k = 5
    _, first = index.kneighbors(Q, k)
    gone = np.unique(first[:, :3])  # the nearest items of every query
    index.remove(gone)
    assert index.n_items_ == X.shape[0] - gone.size == index.live_mask_.sum()
    assert not index.is_live(gone).any() and index.is_live(np.setdiff1d(np.arange(240), gone)).all()

    dist, ind = index.kneighbors(Q, k)
    assert ind.shape == (12, k) and (ind >= 0).all() and not np.isin(ind, gone).any()
    true_dist, true_ind = live_truth(index, X, Q, k, index.live_mask_)
    if index._is_exact():
        np.testing.assert_array_equal(ind, true_ind)
    assert np.mean([len(set(a) & set(b)) for a, b in zip(ind, true_ind)]) / k >= 0.8

    graph = index.transform(Q)
    assert graph.shape == (12, 240) and graph[:, gone].nnz == 0
    assert (np.diff(graph.indptr) == k + (index.mode == "distance")).all()
    # the indexed items' own neighbours: removed items have no row and are nobody's neighbour
    dist_all, ind_all = index.kneighbors(n_neighbors=k)
    assert (ind_all[gone] == -1).all() and np.isinf(dist_all[gone]).all()
    live_rows = np.setdiff1d(np.arange(240), gone)
    assert (ind_all[live_rows] >= 0).all() and not np.isin(ind_all, gone).any()
    assert not (ind_all[live_rows] == live_rows[:, None]).any()  # each item excludes itself
    graph = index.kneighbors_graph(n_neighbors=k)
    assert np.diff(graph.indptr)[gone].sum() == 0 and graph[:, gone].nnz == 0
    exact = index.exact_kneighbors(Q, k, return_distance=False)
    np.testing.assert_array_equal(exact, true_ind)


@pytest.mark.parametrize("index", INDEXES, ids=IDS)
def test_ids_are_stable_and_never_reused(index, data):
    X, Q = data
    index = fitted(index, X[:200])
    index.remove([0, 5, 199])
    index.partial_fit(X[200:])
    assert index.n_samples_fit_ == 240 and index.n_items_ == 237
    if index.metric_ != "inner_product":  # where each item is its own nearest neighbour:
        # each new item finds itself under the id it was given after the largest one ever assigned
        ind = index.kneighbors(X[200:], 1, return_distance=False)
        np.testing.assert_array_equal(ind[:, 0], np.arange(200, 240))
        ind = index.kneighbors(X[[1, 6, 198]], 1, return_distance=False)
        np.testing.assert_array_equal(ind[:, 0], [1, 6, 198])
    np.testing.assert_array_equal(index.live_mask_, ~np.isin(np.arange(240), [0, 5, 199]))
    index.remove([200])
    ind = index.kneighbors(X[200:201], 3, return_distance=False)
    assert not np.isin(ind, [0, 5, 199, 200]).any()


@pytest.mark.parametrize("index", INDEXES, ids=IDS)
def test_saved_state_keeps_removals(index, data, tmp_path):
    X, Q = data
    index = fitted(index, X)
    index.remove(np.arange(0, 240, 3))
    expected = index.kneighbors(Q, 4)
    path = tmp_path / "index.skf"
    save(index, path)
    for copy in (pickle.loads(pickle.dumps(index)), load(path)):
        assert copy.n_items_ == index.n_items_
        np.testing.assert_array_equal(copy.live_mask_, index.live_mask_)
        ind = copy.kneighbors(Q, 4)[1]
        assert not np.isin(ind, np.arange(0, 240, 3)).any()
        if index._is_exact():  # graphs may walk differently once reloaded (nmslib sw-graph)
            np.testing.assert_array_equal(ind, expected[1])
        with pytest.raises(UnknownItemError, match="already removed"):
            copy.remove([3])


@pytest.mark.parametrize("index", [i for i in INDEXES if i._is_exact()],
                         ids=[repr(i) for i in INDEXES if i._is_exact()])
def test_exact_index_after_removal_equals_a_fresh_fit_on_the_live_items(index, data):
    X, Q = data
    index = fitted(index, X)
    rng = np.random.RandomState(0)
    gone = rng.choice(240, 60, replace=False)
    index.remove(gone[:30]).remove(gone[30:]).compact()
    live = np.setdiff1d(np.arange(240), gone)
    fresh = fitted(index, X[live])
    for q in (Q, X[live[:5]]):
        d1, i1 = index.kneighbors(q, 6)
        d2, i2 = fresh.kneighbors(q, 6)
        np.testing.assert_array_equal(i1, live[i2])
        np.testing.assert_allclose(d1, d2, rtol=1e-6, atol=1e-6)


def test_exact_index_erases_removed_rows_but_not_the_callers_array(data):
    X, _ = data
    X = X.copy()
    index = ExactIndex().fit(X)
    index.remove([1, 2])
    assert not index._fit_X[[1, 2]].any()  # the data of removed items are gone
    assert X[[1, 2]].any()  # the caller's array is never written
    Xs = sp.csr_matrix(X)
    sparse = ExactIndex().fit(Xs).remove([4])
    assert sparse._fit_X[4].nnz == 0 and Xs[4].nnz


def counts(n_docs=60, n_terms=30, seed=0):
    rng = np.random.RandomState(seed)
    return sp.csr_matrix(rng.poisson(0.3, size=(n_docs, n_terms)).astype(float))


@pytest.mark.parametrize("index", text_index_instances(), ids=repr)
def test_bm25_statistics_follow_removals(index):
    C = counts()
    Q = counts(8, seed=1)
    Q = Q[np.asarray(Q.sum(axis=1)).ravel() > 0]
    index = clone(index).fit(C)
    gone = np.arange(0, 60, 4)
    index.remove(gone)
    live = np.setdiff1d(np.arange(60), gone)
    fresh = clone(index).fit(C[live])  # document frequencies and avgdl of the live documents
    d1, i1 = index.kneighbors(Q, 3)
    d2, i2 = fresh.kneighbors(Q, 3)
    np.testing.assert_array_equal(i1, live[i2])
    np.testing.assert_allclose(d1, d2, rtol=1e-12)
    d3, i3 = pickle.loads(pickle.dumps(index)).kneighbors(Q, 3)
    np.testing.assert_array_equal(i3, i1)


@pytest.mark.parametrize("bad, error, match", [
    ([240], UnknownItemError, "unknown item ids \\[240\\]"),
    ([-1], UnknownItemError, "unknown item ids \\[-1\\]"),
    ([3, 3], UnknownItemError, "more than once: \\[3\\]"),
    ([0.5], ValueError, "integer item ids"),
    ([[1, 2]], ValueError, "1-D"),
])
def test_remove_refuses_unknown_ids_and_changes_nothing(bad, error, match, data):
    X, _ = data
    index = ExactIndex().fit(X)
    with pytest.raises(error, match=match):
        index.remove(bad)
    assert index.n_items_ == 240


def test_remove_refuses_removed_ids_and_removing_everything(data):
    X, _ = data
    index = ExactIndex().fit(X[:10]).remove([2])
    with pytest.raises(UnknownItemError, match="already removed: \\[2\\]"):
        index.remove([1, 2])
    assert index.n_items_ == 9  # nothing removed by the refused call
    with pytest.raises(ValueError, match="empty"):
        index.remove([i for i in range(10) if i != 2])
    assert index.n_items_ == 9
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        index.kneighbors(X[:1], 10)  # more neighbours than live items


def _hnsw():
    from skfindkit import HNSWIndex

    return HNSWIndex(n_neighbors=3, random_state=0)


@pytest.mark.parametrize("make", [
    lambda: ExactIndex(n_neighbors=3),
    lambda: ShardedIndex(ExactIndex(n_neighbors=3), n_shards=2),
    pytest.param(_hnsw, marks=needs_mark(HNSWIndex)),
])
def test_removal_addition_and_search_from_threads_equal_a_serial_run(make):
    X = clustered(400, seed=3)
    Q = clustered(10, seed=4)
    removals = [np.arange(i, 200, 20) for i in range(10)]  # half of the first 200
    additions = [X[200 + 10 * i: 210 + 10 * i] for i in range(20)]

    serial = make().fit(X[:200])
    for add in additions:
        serial.partial_fit(add)
    for rem in removals:
        serial.remove(rem)

    index = make().fit(X[:200])
    errors, seen = [], []

    def remover():
        for rem in removals:
            index.remove(rem)

    def adder():
        for add in additions:
            index.partial_fit(add)

    def reader():
        for _ in range(30):
            ind = index.kneighbors(Q, return_distance=False)
            seen.append(ind)

    def guarded(fn):
        def run():
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guarded(f)) for f in (remover, adder, reader, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all((ind >= 0).all() and ind.shape == (10, 3) for ind in seen)
    np.testing.assert_array_equal(index.live_mask_, serial.live_mask_)
    # a graph's links depend on the order of insertions and deletions: its stored items are
    # compared by exact search, its own search by what it may return
    np.testing.assert_array_equal(index.exact_kneighbors(Q), serial.exact_kneighbors(Q))
    if index._is_exact():
        np.testing.assert_array_equal(index.kneighbors(Q), serial.kneighbors(Q))
    assert index.is_live(index.kneighbors(Q, return_distance=False)).all()


@needs_mark(HNSWIndex)
def test_hnswlib_marks_removed_items_deleted_and_filters_natively(data):
    X, Q = data
    index = HNSWIndex(random_state=0).fit(X)
    gone = index.kneighbors(Q, 3, return_distance=False).ravel()
    index.remove(np.unique(gone))
    labels, _ = index._index.knn_query(Q, k=20)  # hnswlib's own walk skips them
    assert not np.isin(labels, gone).any()
    mask = np.zeros(240, dtype=bool)
    mask[::5] = True
    _, labels = index._search_masked(Q, 5, mask)  # hnswlib's filter, no over-fetch
    assert mask[labels].all()


@needs_mark(HNSWIndex)
@pytest.mark.parametrize("keep_vectors", [True, False])
def test_hnswlib_compaction_drops_removed_items_and_keeps_ids(keep_vectors, data, tmp_path):
    X, Q = data
    index = HNSWIndex(keep_vectors=keep_vectors, random_state=0).fit(X)
    index.remove(np.arange(0, 40))  # 1/6 of the items: below the default share of 0.2
    assert index._index.get_current_count() == 240
    index.remove(np.arange(40, 60))  # past it: compacted automatically
    assert index._index.get_current_count() == 180
    index.remove([60, 61])  # kept as tombstones (marked deleted) until the share is reached
    assert index._index.get_current_count() == 180
    new = clustered(5, seed=9)
    index.partial_fit(new)
    live = index.live_mask_
    for copy in (index, pickle.loads(pickle.dumps(index))):
        ind = copy.kneighbors(Q, 5, return_distance=False)
        truth = live_truth(copy, np.vstack([X, new]), Q, 5, live)[1]
        assert live[ind].all()
        assert np.mean([len(set(a) & set(b)) for a, b in zip(ind, truth)]) >= 4.5
        np.testing.assert_array_equal(copy.kneighbors(new, 1, return_distance=False).ravel(),
                                      np.arange(240, 245))
    save(index.compact(), tmp_path / "index.skf")
    loaded = load(tmp_path / "index.skf")
    assert loaded._index.get_current_count() == loaded.n_items_ == 183


OVER_FETCHING = [i for i in INDEXES if not hasattr(i, "_search_masked")]


@pytest.mark.parametrize("index", OVER_FETCHING, ids=[repr(i) for i in OVER_FETCHING])
def test_a_tenth_removed_is_answered_by_one_native_search(index, monkeypatch):
    """Tombstones at a 10 % share: one native search, asked for ``k / 0.9`` plus a margin
    (annoy: ``search_k / 0.9``), no exact scan, and the recall of the index rebuilt on
    the live items."""
    X, Q = clustered(2000), clustered(50, seed=1)
    index = fitted(index, X)
    if index._is_exact():
        pytest.skip("an exact configuration removes for real and searches exactly")
    gone = np.random.RandomState(0).choice(2000, 200, replace=False)
    index.remove(gone)
    calls = []
    for name in ("_search", "_search_among", "_exact_search"):
        real = getattr(type(index), name)

        def counting(self, X, k, *args, _name=name, _real=real, **kwargs):
            calls.append((_name, k, kwargs))
            return _real(self, X, k, *args, **kwargs)

        monkeypatch.setattr(type(index), name, counting)
    dist, ind = index.kneighbors(Q, 3)
    assert [c[0] for c in calls] == ["_search"]
    if index._held_tombstones():
        assert calls[0][1] == 5  # ceil((3 + 2 sqrt(3 * 0.1)) / 0.9)
    if isinstance(index, AnnoyIndex):
        assert calls[0][2] == {"search_k": int(np.ceil(
            (index.search_k or index.n_trees * 3) / 0.9))}
    assert (ind >= 0).all() and not np.isin(ind, gone).any()
    monkeypatch.undo()
    live = np.ones(2000, dtype=bool)
    live[gone] = False
    truth = live_truth(index, X, Q, 3, live)[1]
    rebuilt = np.flatnonzero(live)[fitted(index, X[live]).kneighbors(Q, 3, return_distance=False)]

    def recall(ind):
        return np.mean([len(set(a) & set(b)) for a, b in zip(ind, truth)]) / 3

    assert recall(ind) >= recall(rebuilt) - 0.05
