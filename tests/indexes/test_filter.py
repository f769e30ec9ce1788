"""Filtered search on every index, against the exact filtered truth."""

import numpy as np
import pytest

from skfindkit import AnnoyIndex, ExactIndex, HNSWIndex
from skfindkit.indexes import _removal
from skfindkit.indexes._approximate import ApproximateIndex

from ..common.estimator_instances import index_instances
from .test_remove import clustered, fitted

INDEXES = index_instances()
IDS = [repr(i) for i in INDEXES]


def filtered_truth(index, X, Q, k, allowed):
    """Exact neighbours among ``allowed`` ids, padded with -1 / inf like kneighbors."""
    allowed = np.flatnonzero(allowed) if np.asarray(allowed).dtype == bool else np.asarray(allowed)
    m = min(k, allowed.size)
    dist = np.full((Q.shape[0], k), np.inf)
    ind = np.full((Q.shape[0], k), -1)
    if m:
        d, i = ExactIndex(metric=index.metric_).fit(X[allowed]).kneighbors(Q, m)
        dist[:, :m], ind[:, :m] = d, allowed[i]
    return dist, ind


def overlap(ind, truth):
    hits = [len(set(a[a >= 0]) & set(b[b >= 0])) for a, b in zip(ind, truth)]
    return sum(hits) / max(1, (truth >= 0).sum())


@pytest.fixture(scope="module")
def data():
    return clustered(400), clustered(10, seed=1)


def check_filtered_search(index, share, data):
    X, Q = data
    index = fitted(index, X)
    rng = np.random.RandomState(1)
    mask = rng.rand(400) < share
    mask[rng.randint(400)] = True
    k = 5
    for allowed in (mask, np.flatnonzero(mask)):  # a mask, or the allowed ids
        dist, ind = index.kneighbors(Q, k, filter=allowed)
        true_dist, true_ind = filtered_truth(index, X, Q, k, mask)
        assert ind.shape == (10, k)
        assert mask[ind[ind >= 0]].all()
        # fewer than k only when fewer than k items pass, then -1 at inf
        np.testing.assert_array_equal(ind < 0, true_ind < 0)
        assert np.isinf(dist[ind < 0]).all()
        if index._is_exact():
            np.testing.assert_array_equal(ind, true_ind)
        assert overlap(ind, true_ind) >= 0.9
        exact = index.exact_kneighbors(Q, k, return_distance=False, filter=allowed)
        np.testing.assert_array_equal(exact, true_ind)


@pytest.mark.parametrize("share", [0.5, 0.1, 0.01])
@pytest.mark.parametrize("index", INDEXES, ids=IDS)
def test_filter_matches_exact_filtered_truth(index, share, data):
    check_filtered_search(index, share, data)


APPROXIMATE = [i for i in INDEXES if isinstance(i, ApproximateIndex)]


@pytest.mark.parametrize("share", [0.5, 0.1])
@pytest.mark.parametrize("index", APPROXIMATE, ids=[repr(i) for i in APPROXIMATE])
def test_over_fetch_matches_exact_filtered_truth(index, share, data, monkeypatch):
    """The over-fetching (or natively filtered) search itself: an index this small
    scans its allowed rows by default, the cheaper choice."""
    monkeypatch.setattr(_removal, "SCAN_ROWS_PER_CANDIDATE", 0)
    check_filtered_search(index, share, data)


@pytest.mark.parametrize("make", [lambda: AnnoyIndex(random_state=0),
                                  lambda: HNSWIndex(random_state=0)], ids=["annoy", "hnswlib"])
def test_a_selective_filter_scans_the_allowed_rows_instead_of_the_native_search(
        make, monkeypatch):
    """Over 6,000 items, a 1 % or 10 % filter is answered by one exact scan of its rows; a 50 %
    one by the native search (over-fetch or native filter), never by a scan."""
    X, Q = clustered(6000), clustered(10, seed=1)
    index = make().fit(X)
    calls = []
    for name in ("_search", "_search_among"):
        real = getattr(type(index), name)

        def counting(self, X, k, *args, _name=name, _real=real, **kwargs):
            calls.append(_name)
            return _real(self, X, k, *args, **kwargs)

        monkeypatch.setattr(type(index), name, counting)
    rng = np.random.RandomState(0)
    for share, expected in ((0.01, ["_search_among"]), (0.1, ["_search_among"]),
                            (0.5, ["_search"])):
        mask = rng.rand(6000) < share
        del calls[:]
        ind = index.kneighbors(Q, 3, return_distance=False, filter=mask)
        assert calls == expected
        assert mask[ind].all()


@pytest.mark.parametrize("index", INDEXES, ids=IDS)
def test_per_query_filters_and_removals_combine(index, data):
    X, Q = data
    index = fitted(index, X)
    index.remove(np.arange(0, 400, 2))
    # query r: ids r, r+10, ...: nothing left for even r, whose rows stay unfilled
    filters = [np.arange(r, 400, 10) for r in range(10)]
    ind = index.kneighbors(Q, 4, return_distance=False, filter=filters)
    for r, (row, allowed) in enumerate(zip(ind, filters)):
        live = allowed[allowed % 2 == 1]
        truth = filtered_truth(index, X, Q[r:r + 1], 4, live)[1][0]
        np.testing.assert_array_equal(row < 0, truth < 0)
        assert set(row[row >= 0]) <= set(live)
        if index._is_exact():
            np.testing.assert_array_equal(row, truth)
    graph = index.kneighbors_graph(Q, 4, filter=filters)
    assert graph.shape == (10, 400) and graph.nnz == (ind >= 0).sum()


def test_unfilled_slots_are_left_out_of_graphs(data):
    X, Q = data
    index = ExactIndex(n_neighbors=4).fit(X)
    graph = index.kneighbors_graph(Q, 4, mode="distance", filter=[3, 7])
    assert graph.shape == (10, 400) and (np.diff(graph.indptr) == 2).all()
    assert set(graph.indices) == {3, 7}


@pytest.mark.parametrize("bad, error, match", [
    (np.ones(399, dtype=bool), ValueError, "one entry per id \\(400\\)"),
    ([400], ValueError, "unknown item ids \\[400\\]"),
    ([[1, 2], [3]], ValueError, "2 per-query filters given for 10 queries"),
    (np.array([0.5]), ValueError, "integer item ids"),
    (lambda i: True, TypeError, "not a callable"),
    (np.ones(400, dtype=int), ValueError, "filter: repeated item ids \\[1\\].*boolean mask"),
    ([3, 5, 3], ValueError, "filter: repeated item ids \\[3\\]"),
    ([[1, [2, 3]]], ValueError, "filter must be a boolean mask over ids, an array of ids"),
    ([1, [2, 3]], ValueError, "filter must be a boolean mask over ids, an array of ids"),
])
def test_bad_filters_are_refused(bad, error, match, data):
    X, Q = data
    index = ExactIndex().fit(X)
    with pytest.raises(error, match=match):
        index.kneighbors(Q, 3, filter=bad)


def test_exact_filtered_search_scans_only_the_allowed_rows(data, monkeypatch):
    """At 1 % selectivity the exact path computes distances to the allowed rows only."""
    from skfindkit.indexes import _removal

    X, Q = data
    index = ExactIndex().fit(X)
    scanned = []
    real = _removal.brute_force_kneighbors

    def counting(rows, *args, **kwargs):
        scanned.append(rows.shape[0])
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(_removal, "brute_force_kneighbors", counting)
    index.kneighbors(Q, 3, filter=np.arange(0, 400, 100))
    assert scanned == [4]


def test_search_passes_the_filter_and_leaves_unfilled_keys_empty(data):
    from skfindkit.search import attach_keys, search

    X, Q = data
    index = attach_keys(ExactIndex(n_neighbors=3).fit(X), [f"item{i}" for i in range(400)])
    result = search(index, Q[:2], filter=[[5, 9], [7]])
    assert result.keys.tolist() == [[result.keys[0][0], result.keys[0][1], None],
                                    ["item7", None, None]]
    assert set(result.keys[0][:2]) == {"item5", "item9"}
    assert result.indices[1].tolist() == [7, -1, -1] and np.isinf(result.distances[1, 1:]).all()


def test_filters_of_the_indexed_items_own_neighbours(data):
    X, _ = data
    index = ExactIndex(n_neighbors=2).fit(X[:40])
    filters = [np.arange(r % 4, 40, 4) for r in range(40)]  # item r: same residue mod 4
    ind = index.kneighbors(filter=filters, return_distance=False)
    assert ((ind % 4) == (np.arange(40) % 4)[:, None]).all()
    assert not (ind == np.arange(40)[:, None]).any()  # each item still excludes itself
    truth = [ExactIndex(n_neighbors=3).fit(X[f]).kneighbors(X[r:r + 1], return_distance=False)
             for r, f in enumerate(filters)]
    expected = [[i for i in filters[r][t[0]] if i != r][:2] for r, t in enumerate(truth)]
    np.testing.assert_array_equal(ind, expected)
