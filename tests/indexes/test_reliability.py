"""Index correctness under stress: threads, magnitudes, refits, duplicates (issue 13).

Crash-prone concurrency runs in a child process (``_isolation.run_isolated``,
cases in ``_thread_cases``), so a native crash fails its test instead of killing
the run.
"""

import threading
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.neighbors import NearestNeighbors

from skfindkit import ExactIndex, FaissIndex, HNSWIndex, NMSLibIndex
from skfindkit.metrics import recall_at_k

from .. import _thread_cases
from .._backends import ALL_INDEXES, needs, param
from .._isolation import run_isolated

DEFAULTS = [param(cls, cls) for cls in ALL_INDEXES]


def clustered(n, d=16, seed=0, n_clusters=10):
    rng = np.random.RandomState(seed)
    centers = rng.randn(n_clusters, d) * 4
    return centers[rng.randint(n_clusters, size=n)] + rng.randn(n, d)


def default(cls, **params):
    index = cls(**params)
    if "random_state" in index.get_params():
        index.set_params(random_state=0)
    return index


# ------------------------------------------------------------- 1, 3, 4: threads
@pytest.mark.parametrize("cls", DEFAULTS + [param(NMSLibIndex(method="sw-graph"))])
def test_concurrent_queries_equal_serial(cls):
    X = clustered(2000)
    index = (default(cls) if isinstance(cls, type) else clone(cls)).fit(X)
    batches = [clustered(15, seed=s) for s in range(1, 9)]
    serial = [index.kneighbors(Q, n_neighbors=10) for Q in batches]
    results, errors = {}, []

    def worker(t):
        try:
            for rep in range(15):
                b = (t + rep) % len(batches)
                results[t, rep] = (b, index.kneighbors(batches[b], n_neighbors=10))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    differ = sum(
        not (np.array_equal(ind, serial[b][1]) and np.array_equal(dist, serial[b][0]))
        for b, (dist, ind) in results.values()
    )
    assert differ == 0, f"{differ} of {len(results)} concurrent calls differ from serial"


@pytest.mark.slow
@pytest.mark.parametrize("loaded", [False, True], ids=["fitted", "unpickled"])
@pytest.mark.parametrize("cls", [param(HNSWIndex, HNSWIndex), param(FaissIndex, FaissIndex)])
def test_partial_fit_while_another_thread_queries_neither_crashes_nor_loses(cls, loaded):
    # unpickled: FaissIndex answers from views of the loaded bytes until its
    # first partial_fit swaps in arrays faiss owns, while the reader queries
    found = run_isolated(_thread_cases.partial_fit_while_querying, cls.__name__, loaded)
    assert found > 0.95


@pytest.mark.parametrize("cls", DEFAULTS)
def test_two_writers_lose_no_item_and_keep_native_in_step(cls):
    assert run_isolated(_thread_cases.two_writers, cls.__name__)


def test_nmslib_query_time_parameters_are_applied_once_not_per_call():
    needs(NMSLibIndex)
    X = clustered(500)
    index = NMSLibIndex(ef_search=20).fit(X)
    calls = []
    native = index._index
    original = native.setQueryTimeParams

    class Spy:
        def __getattr__(self, name):
            return getattr(native, name)

        def setQueryTimeParams(self, params):
            calls.append(params)
            original(params)

    index._index = Spy()
    index.kneighbors(X[:5])
    index.kneighbors(X[:5])
    assert len(calls) <= 1
    index.set_params(ef_search=40)
    index.kneighbors(X[:5])
    index.kneighbors(X[:5])
    assert calls[-1] == {"efSearch": 40} and len(calls) <= 2


# ------------------------------------------------------------- 6: magnitudes
@pytest.mark.parametrize("cls", DEFAULTS)
def test_values_beyond_float32_are_refused_naming_x(cls):
    X = clustered(50)
    X[3, 2] = 1e39
    with pytest.raises(ValueError, match="X.*float32"):
        default(cls).fit(X)
    index = default(cls).fit(clustered(50))
    with pytest.raises(ValueError, match="X.*float32"):
        index.kneighbors(X)


@pytest.mark.parametrize("scale", [1e-30, 1e20, 1e30])
@pytest.mark.parametrize("cls", DEFAULTS)
def test_tiny_and_huge_magnitudes_give_sklearns_neighbours(cls, scale):
    data = clustered(640) * scale
    X, Q = data[:600], data[600:]
    index = default(cls, n_neighbors=5).fit(X)
    dist, ind = index.kneighbors(Q)
    ref_dist, ref_ind = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(X).kneighbors(Q)
    own = np.linalg.norm(X[ind] - Q[:, None, :], axis=2)  # float64 distances of the ids found
    np.testing.assert_allclose(dist, own, rtol=1e-4)
    if cls is ExactIndex:
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-4)
    assert recall_at_k(ref_ind, ind) >= (1.0 if cls is ExactIndex else 0.9)
    G = index.transform(X)  # self at exactly 0
    assert (G[np.arange(600), np.arange(600)].A1 == 0).all()
    assert np.diff(G.indptr).tolist() == [6] * 600


def test_two_tiny_points_are_not_tied():
    X = np.array([[0.0], [1.07e-27], [5e-27]])
    d, i = ExactIndex(n_neighbors=2).fit(X).kneighbors([[1.07e-27]])
    np.testing.assert_array_equal(i, [[1, 0]])
    np.testing.assert_allclose(d, [[0.0, 1.07e-27]], rtol=1e-6)


# ------------------------------------------------- 7: inner-product self-exclusion
def _ip_reference_without_self(X, k):
    S = X @ X.T
    np.fill_diagonal(S, -np.inf)
    ind = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return 1 - np.take_along_axis(S, ind, axis=1), ind


@pytest.mark.parametrize("cls", DEFAULTS)
def test_inner_product_kneighbors_none_keeps_every_true_neighbour(cls):
    X = np.array([[1.0, 0], [2.0, 0], [3.0, 0]])
    ind = default(cls, n_neighbors=1, metric="inner_product").fit(X).kneighbors(
        return_distance=False)
    np.testing.assert_array_equal(ind[:, 0], [2, 2, 1])
    X = clustered(300, d=8)
    index = default(cls, n_neighbors=5, metric="inner_product").fit(X)
    dist, ind = index.kneighbors()
    ref_dist, ref_ind = _ip_reference_without_self(X, 5)
    assert not (ind == np.arange(300)[:, None]).any()
    if cls is ExactIndex:
        np.testing.assert_array_equal(ind, ref_ind)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-5, atol=1e-4)
    else:
        assert recall_at_k(ref_ind, ind) >= 0.9


# ------------------------------------------------- 8: params changed after fit
@pytest.mark.parametrize("cls", DEFAULTS)
@pytest.mark.parametrize("change", [{"metric": "cosine"}, {"metric": "inner_product"}])
def test_fitted_state_answers_after_set_params(cls, change):
    X, Q = clustered(500), clustered(30, seed=3)
    index = default(cls, n_neighbors=5).fit(X)
    before = index.kneighbors(Q)
    index.set_params(**change)
    after = index.kneighbors(Q)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])
    assert index.metric_ == "euclidean"
    index.partial_fit(Q)  # adds under the fitted metric too
    assert (index.kneighbors(Q, n_neighbors=1)[0] == 0).all()
    index.fit(X)  # refitting takes the new value
    assert index.metric_ == change["metric"]


def test_nmslib_method_change_after_fit_keeps_fitted_method():
    needs(NMSLibIndex)
    X, Q = clustered(500), clustered(30, seed=3)
    index = NMSLibIndex(n_neighbors=5).fit(X)
    before = index.kneighbors(Q)
    after = index.set_params(method="sw-graph").kneighbors(Q)
    np.testing.assert_allclose(before[0], after[0])


# --------------------------------------------- 9: self at 0 in transform of the fitted data
def _assert_self_at_zero(G, n):
    rows = np.repeat(np.arange(n), np.diff(G.indptr))
    has_self = np.zeros(n, bool)
    at = rows == G.indices
    has_self[rows[at]] = True
    assert has_self.all(), f"{(~has_self).sum()} rows lack the item itself"
    assert (G.data[at] == 0).all()


@pytest.mark.parametrize("cls", DEFAULTS)
def test_many_identical_rows_each_item_finds_itself(cls):
    X = np.ones((34, 3))
    X[17, 0] = 0
    index = default(cls, n_neighbors=5).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # graph searches may need exact completion here
        G = index.transform(X)
        d, i = index.kneighbors(X[17:18], n_neighbors=1)
    _assert_self_at_zero(G, 34)
    assert i[0, 0] == 17 and d[0, 0] == 0


@pytest.mark.parametrize("cls", DEFAULTS)
def test_fit_transform_of_clustered_data_contains_each_item_at_zero(cls):
    rng = np.random.RandomState(0)
    X = clustered(3000, d=32) + 0.01 * rng.randn(3000, 32)
    G = default(cls, n_neighbors=10).fit_transform(X)
    _assert_self_at_zero(G, 3000)
    assert np.diff(G.indptr).tolist() == [11] * 3000


# ------------------------------------------- parameters: types and thread counts
def _index_instances():
    from ..common.estimator_instances import index_instances, text_index_instances

    return [pytest.param(i, id=repr(i).replace("\n", "").replace(" ", ""))
            for i in index_instances() + text_index_instances()]


def _integer_params(index):
    """Names of the parameters whose constraints take integers (bools excluded)."""
    from numbers import Integral

    from sklearn.utils._param_validation import Interval

    params = index.get_params(deep=False)
    return [name for name, options in index._parameter_constraints.items()
            if name in params and any(
                c is Integral or (isinstance(c, Interval) and c.type is Integral)
                for c in options)]


@pytest.mark.parametrize("index", _index_instances())
@pytest.mark.parametrize("value", [True, 2.5], ids=["bool", "float"])
def test_integer_parameters_refuse_bools_and_floats(index, value):
    import scipy.sparse as sp

    X = sp.random(30, 6, density=0.5, format="csr", random_state=0) * 5 if (
        type(index).__name__ == "BM25Index") else clustered(30, d=6)
    names = _integer_params(index)
    assert "n_neighbors" in names
    for name in names:
        changed = clone(index).set_params(**{name: value})
        with pytest.raises((TypeError, ValueError), match=f"'{name}' parameter"):
            changed.fit(X)


@pytest.mark.parametrize("value", [True, 2.5, 2.0, np.float64(3)])
def test_kneighbors_n_neighbors_argument_refuses_non_integers(value):
    X = clustered(30, d=4)
    index = ExactIndex().fit(X)
    changed = ExactIndex().fit(X).set_params(n_neighbors=value)  # after fit: fit's check skipped
    for call in (lambda: index.kneighbors(X[:2], n_neighbors=value),
                 lambda: index.kneighbors_graph(X[:2], n_neighbors=value),
                 lambda: changed.kneighbors(X[:2]), lambda: changed.transform(X[:2])):
        with pytest.raises(TypeError, match="n_neighbors"):
            call()


def test_more_threads_than_cpus_are_clamped_not_fatal():
    # faiss, nmslib and annoy abort the process when asked for 10**6 threads
    assert run_isolated(_thread_cases.more_threads_than_cpus)


@pytest.mark.parametrize("cls", DEFAULTS)
def test_a_loaded_index_saves_and_loads_again(cls):
    # nmslib saved a loaded hnsw index without its graph: the copy crashed on load
    assert run_isolated(_thread_cases.reloaded_saves_and_loads_again, cls.__name__)
