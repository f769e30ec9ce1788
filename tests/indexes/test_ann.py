"""Approximate indexes (annoy, nmslib, hnswlib, faiss): units, recall, persistence, bad input.

Each test is parametrized over the backends, so every new approximate index
inherits the whole list. The sklearn estimator checks and KNT equivalence run
in ``tests/common/test_estimators.py`` over ``index_instances()``.
"""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_info

from skfindkit import AnnoyIndex, ExactIndex, FaissIndex, HNSWIndex, NMSLibIndex
from skfindkit.utils._persist import CorruptIndexError, NativeBlob

from .._corruption import corrupted_payloads
from skfindkit.metrics import make_retrieval_scorer, recall_at_k

from .._backends import MODULES as _MODULES
from .._backends import needs
from .._backends import param as _param

ANN = [_param(cls, cls) for cls in _MODULES]  # every named index that needs a library
METRICS = ["euclidean", "cosine", "inner_product"]
# configurations covering every documented method / factory string family
CONFIGS = [_param(c) for c in [
    AnnoyIndex(random_state=0),
    AnnoyIndex(n_trees=3, search_k=30, random_state=0),
    NMSLibIndex(),
    NMSLibIndex(method="sw-graph"),
    NMSLibIndex(method="seq_search"),
    HNSWIndex(random_state=0),
    HNSWIndex(M=4, ef_construction=10, ef_search=5, random_state=0),
    FaissIndex(),
    FaissIndex(factory="HNSW32", ef_search=64),
    FaissIndex(factory="Flat"),
    FaissIndex(factory="IVF1024,Flat", nprobe=8, random_state=0),
    FaissIndex(factory="IVF1024,PQ8", nprobe=8, random_state=0),
    FaissIndex(factory="IVF64_HNSW32,Flat", nprobe=8, random_state=0),
    FaissIndex(factory="HNSW32,SQ8"),
    FaissIndex(factory="PCA16,IVF256,Flat", nprobe=4, random_state=0),
]]


def clustered(n, d=32, n_clusters=20, intrinsic=8, seed=0):
    """Clustered data on a low-dimensional subspace: neighbours are meaningful."""
    rng = np.random.RandomState(seed)
    centers = rng.randn(n_clusters, intrinsic) * 4
    Z = centers[rng.randint(n_clusters, size=n)] + rng.randn(n, intrinsic)
    return (Z @ rng.randn(intrinsic, d) + 0.05 * rng.randn(n, d)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    X = clustered(2200)
    return X[200:], X[:200]


def fresh(index, **params):
    from sklearn.base import clone

    return clone(index).set_params(**params)


def quiet(func, *args, **kwargs):
    """Call ``func`` ignoring the clamped-factory warning of small faiss data."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="FaissIndex: factory")
        return func(*args, **kwargs)


@pytest.mark.parametrize("cls", ANN)
@pytest.mark.parametrize("metric", METRICS)
def test_default_recall_against_exact(cls, metric, data):
    X, Q = data
    true = ExactIndex(n_neighbors=10, metric=metric).fit(X).kneighbors(Q, return_distance=False)
    index = cls(n_neighbors=10, metric=metric)
    if "random_state" in index.get_params():
        index.set_params(random_state=0)
    ind = index.fit(X).kneighbors(Q, return_distance=False)
    assert recall_at_k(true, ind) >= 0.9


@pytest.mark.parametrize("index", CONFIGS)
@pytest.mark.parametrize("metric", METRICS)
def test_every_config_builds_queries_and_reports_true_units(index, metric, data):
    X, Q = data[0][:800], data[1][:40]
    index = quiet(fresh(index, n_neighbors=10, metric=metric).fit, X)
    dist, ind = index.kneighbors(Q)
    assert ind.shape == (40, 10) and (ind >= 0).all() and (ind < 800).all()
    assert (np.diff(dist, axis=1) >= 0).all()
    np.testing.assert_allclose(dist, _reference_distances(X, Q, ind, metric), rtol=1e-4, atol=1e-4)
    exact = ExactIndex(metric=metric).fit(X)
    true = exact.kneighbors(Q, n_neighbors=10, return_distance=False)
    lossy = any(s in repr(index) for s in ("PQ", "PCA", "search_k=30"))
    assert recall_at_k(true, ind) >= (0.3 if lossy else 0.8)


@pytest.mark.parametrize("index", CONFIGS)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_self_is_exactly_zero_in_fit_transform(index, metric, data):
    X = data[0][:500]
    graph = quiet(fresh(index, n_neighbors=5, metric=metric).fit_transform, X)
    assert graph.shape == (500, 500) and graph.getnnz(axis=1).max() == 6
    diag = graph.diagonal()
    stored = graph[np.arange(500), np.arange(500)].A1
    assert (diag == 0).all() and (stored == 0).all()
    # sklearn's rule: the item itself comes first
    first_is_self = graph.indices.reshape(500, 6)[:, 0] == np.arange(500)
    assert first_is_self.mean() > (0.9 if "ef_search=5" in repr(index) else 0.99)
    assert graph.data.min() >= 0


def _reference_distances(X, Q, ind, metric):
    """Distances in skfindkit's units by plain float64 numpy."""
    X, Q = X.astype(np.float64), Q.astype(np.float64)
    Y = X[ind]
    if metric == "inner_product":
        return 1 - np.einsum("qkd,qd->qk", Y, Q)
    if metric == "cosine":
        Y = Y / np.linalg.norm(Y, axis=2, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
        return 1 - np.einsum("qkd,qd->qk", Y, Q)
    return np.linalg.norm(Y - Q[:, None, :], axis=2)


def test_squared_l2_is_converted_for_nmslib_hnsw_and_hnswlib():
    needs(NMSLibIndex, HNSWIndex, FaissIndex)
    X = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    for index in (NMSLibIndex(n_neighbors=2), HNSWIndex(n_neighbors=2), FaissIndex(n_neighbors=2)):
        dist, ind = index.fit(X).kneighbors([[0.0, 0.0]])
        np.testing.assert_allclose(dist, [[0.0, 5.0]], atol=1e-6)


def test_annoy_angular_units_are_cosine_distance():
    needs(AnnoyIndex)
    X = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    dist, _ = AnnoyIndex(n_neighbors=3, metric="cosine").fit(X).kneighbors([[2.0, 0.0]])
    np.testing.assert_allclose(dist, [[0.0, 1 - np.sqrt(0.5), 1.0]], atol=1e-6)


@pytest.mark.parametrize("index", CONFIGS)
def test_pickle_round_trip_identical_and_corruption_detected(index, data):
    X, Q = data[0][:600], data[1][:30]
    index = quiet(fresh(index, n_neighbors=7).fit, X)
    blob = pickle.dumps(index)
    again = pickle.loads(blob)
    for a, b in zip(index.kneighbors(Q), again.kneighbors(Q)):
        np.testing.assert_array_equal(a, b)
    state = index.__getstate__()
    if state["_index_blob"] is None:
        pytest.skip("nmslib seq_search saves no native index: it is rebuilt from the data")
    for bad in corrupted_payloads(state["_index_blob"]):
        broken = dict(state, _index_blob=NativeBlob(state["_index_blob"].kind, bad))
        with pytest.raises(CorruptIndexError, match="'_index_blob'"):
            type(index).__new__(type(index)).__setstate__(broken)


@pytest.mark.parametrize("cls", ANN)
def test_partial_fit_adds_items(cls, data):
    X = data[0][:900]
    index = cls(n_neighbors=5).fit(X[:600])
    index.partial_fit(X[600:])
    assert index.n_samples_fit_ == 900
    true = ExactIndex(n_neighbors=5).fit(X).kneighbors(X[600:700], return_distance=False)
    ind = index.kneighbors(X[600:700], return_distance=False)
    assert recall_at_k(true, ind) >= 0.9
    assert ind.max() >= 600  # new items are found under their new ids
    again = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(again.kneighbors(X[:50])[1], index.kneighbors(X[:50])[1])


def test_hnswlib_and_faiss_grow_natively(data):
    needs(HNSWIndex, FaissIndex)
    X = data[0][:300]
    for index in (HNSWIndex(), FaissIndex()):
        index.fit(X[:200])
        native = index._index
        index.partial_fit(X[200:])
        assert index._index is native


@pytest.mark.parametrize("cls", [_param(AnnoyIndex, AnnoyIndex), _param(HNSWIndex, HNSWIndex)])
def test_random_state_makes_builds_reproducible(cls, data):
    X, Q = data[0][:1000], data[1][:50]
    a = cls(n_neighbors=10, random_state=3).fit(X).kneighbors(Q)
    b = cls(n_neighbors=10, random_state=3).fit(X).kneighbors(Q)
    np.testing.assert_array_equal(a[1], b[1])


def test_faiss_random_state_seeds_kmeans(data):
    needs(FaissIndex)
    X = data[0]
    a = quiet(FaissIndex(factory="IVF16,Flat", random_state=1).fit, X)
    b = quiet(FaissIndex(factory="IVF16,Flat", random_state=1).fit, X)
    c = quiet(FaissIndex(factory="IVF16,Flat", random_state=2).fit, X)
    centroids = [x._index.quantizer.reconstruct_n(0, 16) for x in (a, b, c)]
    np.testing.assert_array_equal(centroids[0], centroids[1])
    assert not np.array_equal(centroids[0], centroids[2])


@pytest.mark.parametrize("index", CONFIGS)
def test_n_jobs_leaves_process_thread_settings_unchanged(index, data):
    faiss = pytest.importorskip("faiss", reason="faiss is not installed")

    X = data[0][:400]
    before_omp = faiss.omp_get_max_threads()
    before = [(p["filepath"], p["num_threads"]) for p in threadpool_info()]
    fitted = quiet(fresh(index, n_jobs=2).fit, X)
    fitted.kneighbors(X[:50])
    fitted.partial_fit(X[:10])
    assert faiss.omp_get_max_threads() == before_omp
    assert [(p["filepath"], p["num_threads"]) for p in threadpool_info()] == before


def test_grid_search_over_construction_parameters(data):
    needs(*_MODULES)
    X = data[0][:1200]
    grid = {
        "faissindex__factory": ["HNSW16", "IVF1024,Flat", "Flat"],
        "faissindex__nprobe": [None],
    }
    search = GridSearchCV(
        make_pipeline(StandardScaler(), FaissIndex(n_neighbors=10)),
        grid,
        scoring=make_retrieval_scorer("recall", k=10),
        cv=2,
        error_score="raise",
    )
    quiet(search.fit, X)
    assert set(search.cv_results_["param_faissindex__factory"]) == set(grid["faissindex__factory"])
    assert search.best_params_["faissindex__factory"] == "Flat"
    for cls, grid in [
        (AnnoyIndex, {"n_trees": [1, 20]}),
        (NMSLibIndex, {"M": [4, 16], "method": ["hnsw", "sw-graph"]}),
        (HNSWIndex, {"M": [4, 16], "ef_construction": [10, 100]}),
    ]:
        search = GridSearchCV(
            cls(n_neighbors=10), grid, scoring=make_retrieval_scorer("recall", 10), cv=2,
            error_score="raise",
        ).fit(X)
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()
        assert search.best_score_ >= 0.9


@pytest.mark.parametrize("index", CONFIGS)
def test_duplicates_and_integer_or_float64_input(index):
    rng = np.random.RandomState(0)
    base = rng.randint(0, 5, size=(60, 16))
    X = np.vstack([base, base[:20]])  # 20 exact duplicates
    for data in (X, X.astype(np.float64)):
        fitted = quiet(fresh(index, n_neighbors=4).fit, data)
        dist, ind = quiet(fitted.kneighbors)
        assert ind.shape == (80, 4) and (ind >= 0).all()
        assert (ind != np.arange(80)[:, None]).all()
        assert dist[60:, 0].max() == pytest.approx(0.0, abs=1e-6)  # its duplicate


def test_k_beyond_what_annoy_found_is_completed_not_garbage(data):
    needs(AnnoyIndex)
    X, Q = data[0][:500], data[1][:20]
    # one tree, one node inspected: a single leaf (< 50 items) is all annoy returns
    index = AnnoyIndex(n_neighbors=50, n_trees=1, search_k=1, random_state=0).fit(X)
    with pytest.warns(UserWarning, match="fewer than 50 neighbours"):
        dist, ind = index.kneighbors(Q)
    assert (ind >= 0).all() and np.isfinite(dist).all()
    assert (np.diff(dist, axis=1) >= 0).all()
    np.testing.assert_array_equal(ind, ExactIndex(n_neighbors=50).fit(X).kneighbors(Q)[1])


def test_tiny_indexes_with_one_or_two_items():
    needs(*_MODULES)
    for cls in _MODULES:
        for n in (1, 2):
            X = np.arange(n * 3, dtype=float).reshape(n, 3)
            dist, ind = quiet(cls(n_neighbors=n).fit, X).kneighbors(X)
            assert ind.shape == (n, n)
            np.testing.assert_array_equal(ind[:, 0], np.arange(n))
            assert (dist[:, 0] == 0).all()


def test_bad_parameters_name_the_parameter():
    needs(*_MODULES)
    X = np.random.RandomState(0).rand(50, 10)
    with pytest.raises(InvalidParameterError, match="metric"):
        HNSWIndex(metric="manhattan").fit(X)
    with pytest.raises(InvalidParameterError, match="method"):
        NMSLibIndex(method="vp-tree").fit(X)
    with pytest.raises(InvalidParameterError, match="n_trees"):
        AnnoyIndex(n_trees=0).fit(X)
    with pytest.raises(ValueError, match="factory='NoSuchIndex'"):
        FaissIndex(factory="NoSuchIndex").fit(X)
    with pytest.raises(ValueError, match="factory='IVF8,PQ16'.*10 features"):
        FaissIndex(factory="IVF8,PQ16").fit(X)
    with pytest.raises(ValueError, match="nprobe=4 does not apply"):
        FaissIndex(factory="HNSW32", nprobe=4).fit(X)
    with pytest.raises(ValueError, match="ef_search=4 does not apply"):
        FaissIndex(factory="Flat", ef_search=4).fit(X)


def test_metric_the_backend_lacks_is_refused_at_fit_naming_backend():
    needs(HNSWIndex)
    class EuclideanOnly(HNSWIndex):
        supported_metrics = ("euclidean",)

    with pytest.raises(ValueError, match=r"\(hnswlib\) does not support metric='cosine'.*'euclidean'"):
        EuclideanOnly(metric="cosine").fit(np.eye(5))


def test_faiss_clamps_untrainable_factory_with_a_warning():
    needs(FaissIndex)
    X = clustered(200)
    # at least 3 bits a code: faiss's table kernels need 8 centroids
    with pytest.warns(UserWarning, match="using 'IVF5,PQ4x3'"):
        index = FaissIndex(factory="IVF1024,PQ4", n_neighbors=3).fit(X)
    assert index.factory_ == "IVF5,PQ4x3" and index.factory == "IVF1024,PQ4"
    with pytest.raises(ValueError, match="cannot train"):
        FaissIndex(factory="PQ4", n_neighbors=1).fit(X[:1])


def test_query_time_parameters_apply_without_refit(data):
    needs(*_MODULES)
    X, Q = data[0][:1000], data[1][:50]
    true = ExactIndex(n_neighbors=10).fit(X).kneighbors(Q, return_distance=False)
    for index, param, low, high in [
        (HNSWIndex(n_neighbors=10, M=4, random_state=0), "ef_search", 10, 200),
        (NMSLibIndex(n_neighbors=10, M=4), "ef_search", 10, 200),
        (FaissIndex(n_neighbors=10, factory="IVF25,Flat", random_state=0), "nprobe", 1, 25),
        (AnnoyIndex(n_neighbors=10, n_trees=2, random_state=0), "search_k", 20, 2000),
    ]:
        quiet(index.fit, X)
        rec_low = recall_at_k(true, quiet(index.set_params(**{param: low}).kneighbors, Q)[1])
        rec_high = recall_at_k(true, index.set_params(**{param: high}).kneighbors(Q)[1])
        assert rec_high > rec_low and rec_high >= 0.98, (index, rec_low, rec_high)
