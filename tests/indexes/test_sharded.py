"""ShardedIndex beyond the contract suite: exact merge, even growth, memory, errors.

The contract (KNeighborsTransformer semantics, pickling, bad input) runs over
the ShardedIndex instances listed in ``tests/common/estimator_instances.py``.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skfindkit import ExactIndex, ShardedIndex
from skfindkit.indexes._sharded import fill_evenly

METRICS = ["euclidean", "cosine", "inner_product"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3.0, size=(10, 12))
    labels = rng.integers(0, 10, 700)
    X = (centers[labels] + rng.normal(size=(700, 12))).astype(np.float32)
    X[10] = X[600]  # duplicates across shards: ties are ordered by id
    X[11] = X[600]
    return X, labels


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("n_shards", [1, 3, 7])
def test_exact_shards_equal_one_exact_index(data, metric, n_shards):
    X, _ = data
    one = ExactIndex(metric=metric, n_neighbors=9).fit(X[:650])
    sharded = ShardedIndex(ExactIndex(metric=metric), n_shards, n_neighbors=9).fit(X[:650])
    for queries in (X[650:], X[600:601], None):
        d1, i1 = one.kneighbors(queries)
        d2, i2 = sharded.kneighbors(queries)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(d1, d2)
    assert (one.transform(X[650:]) != sharded.transform(X[650:])).nnz == 0


@pytest.mark.parametrize("metric", METRICS)
def test_partial_fit_fills_smallest_shards_and_keeps_global_ids(data, metric):
    X, _ = data
    sharded = ShardedIndex(ExactIndex(metric=metric), 4, n_neighbors=5).fit(X[:402])
    assert [len(i) for i in sharded.shard_ids_] == [100, 101, 101, 100]
    sharded.partial_fit(X[402:405])  # the two shards of 100 first, then the lowest number
    assert [len(i) for i in sharded.shard_ids_] == [102, 101, 101, 101]
    assert sharded.shard_ids_[0][-2:].tolist() == [402, 403]
    assert sharded.shard_ids_[3][-1] == 404
    sharded.partial_fit(X[405:])
    sizes = [len(i) for i in sharded.shard_ids_]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == X.shape[0]
    assert sharded.n_samples_fit_ == X.shape[0]
    all_ids = np.sort(np.concatenate(sharded.shard_ids_))
    np.testing.assert_array_equal(all_ids, np.arange(X.shape[0]))
    for ids in sharded.shard_ids_:
        assert (np.diff(ids) > 0).all()
    # the grown index answers as one index fitted on everything
    one = ExactIndex(metric=metric, n_neighbors=5).fit(X)
    for queries in (X[:50], None):
        d1, i1 = one.kneighbors(queries)
        d2, i2 = sharded.kneighbors(queries)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(d1, d2)


@pytest.mark.parametrize(
    "sizes,n_new,expected",
    [
        ([5, 3, 3], 4, [0, 2, 2]),
        ([5, 3, 3], 5, [1, 2, 2]),  # all at 5, the extra one to shard 0
        ([0, 0, 0], 7, [3, 2, 2]),
        ([10, 1], 3, [0, 3]),
        ([4, 4], 0, [0, 0]),
        ([2, 9, 2, 9], 100, [29, 22, 28, 21]),
    ],
)
def test_fill_evenly(sizes, n_new, expected):
    counts = fill_evenly(sizes, n_new)
    assert counts.tolist() == expected and counts.sum() == n_new


def test_shards_hold_the_only_copy_of_the_rows(data):
    X, _ = data
    sharded = ShardedIndex(ExactIndex(), 3).fit(X[:600])
    assert "_pending_X" not in vars(sharded)
    stored = [shard._fit_X for shard in sharded.shards_]
    assert sum(s.nbytes for s in stored) == X[:600].nbytes
    assert not any(np.shares_memory(s, X) for s in stored)
    sharded.partial_fit(X[600:])
    assert "_pending_X" not in vars(sharded)
    assert sum(shard._fit_X.nbytes for shard in sharded.shards_) == X.nbytes
    # what a pickle carries: the shards, not a second full copy
    state = sharded.__getstate__()
    assert not any(isinstance(v, np.ndarray) and v.size >= X[:600].size for v in state.values())


def test_parallel_shards_give_the_serial_results(data):
    X, _ = data
    serial = ShardedIndex(ExactIndex(), 4, n_jobs=1).fit(X[:600])
    threads = ShardedIndex(ExactIndex(), 4, n_jobs=2).fit(X[:600])
    for a, b in zip(serial.kneighbors(X[600:]), threads.kneighbors(X[600:])):
        np.testing.assert_array_equal(a, b)


def test_approximate_shards_merge_to_high_recall(data):
    pytest.importorskip("hnswlib")
    from skfindkit import HNSWIndex

    X, _ = data
    exact = ExactIndex(n_neighbors=10).fit(X[:650]).kneighbors(X[650:], return_distance=False)
    sharded = ShardedIndex(HNSWIndex(random_state=0), 3, n_neighbors=10).fit(X[:650])
    ind = sharded.kneighbors(X[650:], return_distance=False)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ind, exact)])
    assert recall > 0.95


def test_grid_search_tunes_shard_parameters(data):
    X, y = data
    search = GridSearchCV(
        ShardedIndex(ExactIndex(), 2, n_neighbors=3),
        {"n_shards": [1, 3], "index__metric": ["euclidean", "cosine"]},
        cv=2,
    ).fit(X, y)
    assert set(search.cv_results_["param_n_shards"]) == {1, 3}
    assert search.best_estimator_.metric == search.best_params_["index__metric"]


def test_bad_parameters_are_named(data):
    X, _ = data
    with pytest.raises(ValueError, match="n_shards=5 but X has 4 samples"):
        ShardedIndex(ExactIndex(), 5).fit(X[:4])
    with pytest.raises(ValueError, match="'n_shards' parameter"):
        ShardedIndex(ExactIndex(), 0).fit(X)
    with pytest.raises(ValueError, match="'index' parameter"):
        ShardedIndex("exact").fit(X)
    from sklearn.neighbors import NearestNeighbors

    with pytest.raises(ValueError, match="'index' parameter"):
        ShardedIndex(NearestNeighbors()).fit(X)
    # a shard's own bad parameter is reported by the shard
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        ShardedIndex(ExactIndex(batch_size=0), 2).fit(X)


def test_metric_comes_from_the_shard_index():
    est = ShardedIndex(ExactIndex(metric="cosine"))
    assert est.metric == "cosine" and ShardedIndex().metric == "euclidean"
    assert "metric" not in est.get_params(deep=False)
    assert est.get_params()["index__metric"] == "cosine"
    assert clone(est).get_params()["index__metric"] == "cosine"


def _brute_float64(X, Q, k, metric):
    """Exact neighbours of float32-rounded rows, distances summed in float64."""
    X, Q = X.astype(np.float32).astype(np.float64), Q.astype(np.float32).astype(np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
        dist = 0.5 * ((X[None] - Q[:, None]) ** 2).sum(-1)
    else:
        dist = np.sqrt(((X[None] - Q[:, None]) ** 2).sum(-1))
    ids = np.broadcast_to(np.arange(X.shape[0]), dist.shape)
    order = np.lexsort((ids, dist), axis=1)[:, :k]
    return np.take_along_axis(dist, order, axis=1), order


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_shards_of_very_different_magnitudes_merge_in_one_unit(metric):
    # one shard holds only tiny rows (it rescales them itself, as any index
    # does with data near float32's limits), the other ordinary ones: the
    # merge must compare their distances in one unit
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(20, 4)) * 1e-30, rng.normal(size=(20, 4))])
    Q = np.vstack([X[25:28], rng.normal(size=(3, 4)) * 1e-30, X[:3]])
    sharded = ShardedIndex(ExactIndex(metric=metric), 2, n_neighbors=6).fit(X)
    # (cosine rows are normalized: never rescaled)
    assert [s._scale != 1.0 for s in sharded.shards_] == [metric == "euclidean", False]
    d_ref, _ = _brute_float64(X, Q, 6, metric)
    d, i = sharded.kneighbors(Q)
    # the right distances (many items tie for some queries, so ids are
    # compared through the distance each returned id really has)
    np.testing.assert_allclose(d, d_ref, rtol=1e-6, atol=1e-300)
    d_all, i_all = _brute_float64(X, Q, X.shape[0], metric)
    true_d = np.take_along_axis(d_all, np.argsort(i_all, axis=1), axis=1)
    np.testing.assert_allclose(np.take_along_axis(true_d, i, axis=1), d, rtol=1e-6, atol=1e-300)


def test_query_time_knob_reaches_the_shards_without_refit(data):
    pytest.importorskip("hnswlib")
    from skfindkit import HNSWIndex

    X, _ = data
    sharded = ShardedIndex(HNSWIndex(ef_search=10, random_state=0), 3, n_neighbors=10).fit(X)
    shards = sharded.shards_
    sharded.set_params(index__ef_search=200)
    sharded.kneighbors(X[:5])
    assert sharded.shards_ == shards  # the same fitted shards, not rebuilt
    assert all(shard.ef_search == 200 for shard in sharded.shards_)
    exact = ExactIndex(n_neighbors=10).fit(X).kneighbors(X[:50], return_distance=False)
    np.testing.assert_array_equal(np.sort(sharded.kneighbors(X[:50], return_distance=False)),
                                  np.sort(exact))


def test_n_neighbors_defaults_to_the_shard_template(data):
    X, _ = data
    assert ShardedIndex(ExactIndex(n_neighbors=10)).fit(X).kneighbors(X[:2])[1].shape == (2, 10)
    assert ShardedIndex(ExactIndex(n_neighbors=10), n_neighbors=3).fit(X).kneighbors(
        X[:2])[1].shape == (2, 3)
    assert ShardedIndex().fit(X).kneighbors(X[:2])[1].shape == (2, 5)
    graph = ShardedIndex(ExactIndex(n_neighbors=4), mode="connectivity").fit(X).transform(X[:3])
    assert graph.getnnz(axis=1).tolist() == [4, 4, 4]


def test_shards_are_driven_through_public_methods_only():
    # a composite uses its parts' public seam (fit, partial_fit, set_params,
    # prepare_queries, prepared_rows, kneighbors_prepared, identical_items...)
    import ast
    from pathlib import Path

    from skfindkit.indexes import _sharded, _shards

    private = []
    for module in (_sharded, _shards):
        for node in ast.walk(ast.parse(Path(module.__file__).read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "_ASSEMBLED"):
                continue  # its own state
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
                continue  # its own base class
            private.append(f"{module.__name__}:{node.lineno}: .{node.attr}")
    assert private == []
