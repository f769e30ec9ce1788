"""MilvusIndex on a real Milvus Lite (embedded, in this process): contract, persistence, faults.

The sklearn checks and the KNeighborsTransformer equivalence run over the
instances of ``tests/common/estimator_instances.py``; here: equivalence with ExactIndex
for every metric, recall of the approximate index types, partial_fit,
pickling (Lite snapshots and server references), and the faults of issue 10
(unreachable server, a server that never answers, collection-name
collisions, a dimension that does not match, a Lite folder that is a file,
corrupt, or locked by another process). A Milvus server is played by the
embedded Lite server reached through its ``http://127.0.0.1`` address.
"""

import os
import pickle
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

# every test starts or uses a Milvus Lite server
pytestmark = pytest.mark.slow

from skfindkit import ExactIndex, MilvusIndex  # noqa: E402
from skfindkit.indexes import _milvus_store  # noqa: E402
from skfindkit.indexes._distances import exact_distances  # noqa: E402
from skfindkit.metrics import make_retrieval_scorer  # noqa: E402

METRICS = ["euclidean", "cosine", "inner_product"]


def clustered(n, d=16, n_clusters=10, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.randn(n_clusters, d) * 4
    labels = rng.randint(n_clusters, size=n)
    return (centers[labels] + rng.randn(n, d)).astype(np.float32), labels


@pytest.fixture(scope="module")
def data():
    X, y = clustered(1100)
    return X[100:], y[100:], X[:100], y[:100]


def lite_server_uri():
    """The http:// address of the embedded Lite server of the default store."""
    store = _milvus_store.default_store()
    _milvus_store.connect(store, 10)
    from milvus_lite import server_manager_instance

    return server_manager_instance.start_and_get_uri(store)


@pytest.mark.parametrize("metric", METRICS)
def test_flat_equals_exact_index(metric, data):
    X, y, Q, _ = data
    est = MilvusIndex(n_neighbors=7, metric=metric, index_type="FLAT", batch_size=300).fit(X, y)
    ref = ExactIndex(n_neighbors=7, metric=metric).fit(X, y)
    for query in (Q, None):  # None: fetched back from Milvus in blocks of batch_size
        d, i = est.kneighbors(query)
        dr, ir = ref.kneighbors(query)
        np.testing.assert_array_equal(i, ir)
        np.testing.assert_allclose(d, dr, rtol=1e-5, atol=1e-5)
    G, R = est.transform(Q), ref.transform(Q)
    np.testing.assert_array_equal(G.indices, R.indices)
    np.testing.assert_allclose(G.data, R.data, rtol=1e-5, atol=1e-5)
    assert est.score(Q, data[3]) == ref.score(Q, data[3])


@pytest.mark.parametrize("params", [
    dict(index_type="HNSW"),
    dict(index_type="HNSW", M=8, ef_construction=32, ef_search=32),
    dict(index_type="IVF_FLAT", nlist=16, nprobe=4),
    dict(index_type="IVF_SQ8", nlist=16, nprobe=4),
], ids=str)
@pytest.mark.parametrize("metric", METRICS)
def test_approximate_types_recall_and_true_units(params, metric, data):
    X, _, Q, _ = data
    est = MilvusIndex(n_neighbors=10, metric=metric, **params).fit(X)
    d, i = est.kneighbors(Q)
    true = ExactIndex(n_neighbors=10, metric=metric).fit(X).kneighbors(Q, return_distance=False)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i, true)])
    assert recall >= 0.85
    ref = ExactIndex(metric=metric).fit(X)
    exact = exact_distances(ref._prepare(Q), ref._fit_X, i, metric)  # ExactIndex's units
    np.testing.assert_allclose(d, exact, rtol=1e-4, atol=1e-4)


def test_build_and_search_parameters_reach_milvus(data):
    X, _, Q, _ = data
    hnsw = MilvusIndex(M=4, ef_construction=8, ef_search=12).fit(X)
    described = hnsw._index.client.describe_index(hnsw.collection_name_, "vector")
    assert (described["params"]["M"], described["params"]["efConstruction"]) == (4, 8)
    ivf = MilvusIndex(index_type="IVF_FLAT", nlist=32, nprobe=1).fit(X)
    described = ivf._index.client.describe_index(ivf.collection_name_, "vector")
    assert described["params"]["nlist"] == 32
    true = ExactIndex(n_neighbors=5).fit(X).kneighbors(Q, return_distance=False)
    recall = []
    for nprobe in (1, 32):  # a query-time knob: no refit
        ind = ivf.set_params(nprobe=nprobe).kneighbors(Q, return_distance=False)
        recall.append(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ind, true)]))
    assert recall[1] == 1.0 and recall[0] < recall[1]


def test_short_rows_are_completed_exactly_from_vectors_read_back(data):
    X, _, Q, _ = data
    # one probed cell of 64 rarely holds 40 items: Milvus returns short rows
    est = MilvusIndex(n_neighbors=40, index_type="IVF_FLAT", nlist=64, nprobe=1, batch_size=128)
    est.fit(X)
    with pytest.warns(UserWarning, match="completed by exact search"):
        d, i = est.kneighbors(Q)
    assert (i >= 0).all() and np.isfinite(d).all()
    assert (np.diff(d, axis=1) >= 0).all()
    assert all(len(set(row)) == 40 for row in i)


def test_partial_fit_inserts_natively(data):
    X, y, Q, _ = data
    est = MilvusIndex(n_neighbors=5, index_type="FLAT").fit(X[:600], y[:600])
    collection = est.collection_name_
    est.partial_fit(X[600:], y[600:])
    assert est.collection_name_ == collection and est.n_samples_fit_ == X.shape[0]
    assert est._index.client.get_collection_stats(collection)["row_count"] == X.shape[0]
    ref = ExactIndex(n_neighbors=5).fit(X, y)
    np.testing.assert_array_equal(est.kneighbors(Q)[1], ref.kneighbors(Q)[1])
    np.testing.assert_array_equal(est.kneighbors()[1], ref.kneighbors()[1])


def test_the_client_keeps_no_copy_of_the_vectors(data):
    X, y, _, _ = data
    est = MilvusIndex().fit(X, y)
    assert est._fit_X is None
    big = [k for k, v in vars(est).items() if isinstance(v, np.ndarray) and v.nbytes >= X.nbytes]
    assert big == []
    np.testing.assert_array_equal(est._get_vectors(np.array([5, 0, 899])), X[[5, 0, 899]])


def test_lite_pickle_is_an_independent_snapshot(data):
    X, y, Q, yq = data
    est = MilvusIndex(n_neighbors=5, M=8).fit(X[:800], y[:800])
    est.partial_fit(X[800:], y[800:])  # a second segment, indexed in the background
    blob = pickle.dumps(est)
    copy = pickle.loads(blob)
    assert copy.collection_name_ != est.collection_name_
    d, i = est.kneighbors(Q)
    d2, i2 = copy.kneighbors(Q)
    np.testing.assert_array_equal(i, i2)
    np.testing.assert_array_equal(d, d2)
    copy.partial_fit(Q, yq)  # the copy grows; the original does not
    assert copy.n_samples_fit_ == X.shape[0] + Q.shape[0]
    np.testing.assert_array_equal(est.kneighbors(Q)[1], i)
    name, client = est.collection_name_, est._index.client
    del est  # the temporary store drops a collection with its estimator
    assert not client.has_collection(name)
    np.testing.assert_array_equal(pickle.loads(blob).kneighbors(Q)[1], i)


def test_server_pickle_references_the_collection(data):
    X, y, Q, yq = data
    uri = lite_server_uri()
    assert uri.startswith("http://127.0.0.1:")
    est = MilvusIndex(n_neighbors=5, index_type="FLAT", uri=uri).fit(X, y)
    blob = pickle.dumps(est)
    assert len(blob) < y.nbytes + 8 * len(X) + 4096  # labels, row hashes, a reference
    with pytest.raises(PermissionError, match="allow_servers"):
        pickle.loads(blob)  # the caller names the servers a loaded file may reach
    with MilvusIndex.allow_servers(uri):
        copy, stale, dropped = pickle.loads(blob), pickle.loads(blob), pickle.loads(blob)
    assert copy.collection_name_ == est.collection_name_
    np.testing.assert_array_equal(copy.kneighbors(Q)[1], est.kneighbors(Q)[1])
    est.partial_fit(Q, yq)  # the collection changes under the other copy
    with pytest.raises(RuntimeError, match="no longer the one this index was fitted on"):
        stale.kneighbors(Q)
    est._index.client.drop_collection(est.collection_name_)
    with pytest.raises(RuntimeError, match="no longer exists"):
        dropped.kneighbors(Q)


def test_collection_name_collisions_and_dimension_mismatch(data, tmp_path):
    X, _, Q, _ = data
    uri = str(tmp_path / "named.db")
    first = MilvusIndex(uri=uri, collection_name="shared").fit(X)
    first.fit(X[:, :8])  # refitting its own collection replaces it
    assert first.n_features_in_ == 8
    with pytest.raises(ValueError, match=r"'shared' already exists.*dimension 8.*created by another"
                       r" MilvusIndex.*X has 16 features"):
        MilvusIndex(uri=uri, collection_name="shared").fit(X)
    client = first._index.client
    schema = client.create_schema(auto_id=True)
    schema.add_field("pk", _pymilvus().DataType.INT64, is_primary=True)
    schema.add_field("emb", _pymilvus().DataType.FLOAT_VECTOR, dim=3)
    client.create_collection("foreign", schema=schema)
    with pytest.raises(ValueError, match="'foreign' already exists.*dimension 3.*not created by skfindkit"):
        MilvusIndex(uri=uri, collection_name="foreign").fit(X)
    assert client.has_collection("foreign")  # never dropped
    # a named collection at a given uri outlives its estimator
    del first
    assert client.has_collection("shared")


def _pymilvus():
    import pymilvus

    return pymilvus


def test_unreachable_server_fails_fast_with_a_clear_error(data):
    X = data[0]
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=r"cannot reach the Milvus server at uri='http://127.0.0.1:1'"):
        MilvusIndex(uri="http://127.0.0.1:1", timeout=2).fit(X)
    assert time.monotonic() - start < 10


def test_server_that_never_answers_times_out(data):
    X = data[0]
    with socket.socket() as silent:  # accepts connections, never speaks gRPC
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(ConnectionError, match="within timeout=1.5 s"):
            MilvusIndex(uri=uri, timeout=1.5).fit(X)
        assert time.monotonic() - start < 15


def test_lite_path_that_is_a_file_or_corrupt(data, tmp_path):
    X = data[0]
    not_a_folder = tmp_path / "file.db"
    not_a_folder.write_bytes(b"not a Milvus Lite folder")
    with pytest.raises(ConnectionError, match="it is a file, not a Milvus Lite data folder"):
        MilvusIndex(uri=str(not_a_folder)).fit(X)
    corrupt = tmp_path / "corrupt.db"
    MilvusIndex(uri=str(corrupt), collection_name="c").fit(X[:50])
    # another process's view after a crash: the manifests are garbage
    _release_lite(corrupt)
    for name in ("manifest.json", "manifest.json.prev"):
        (corrupt / "collections" / "c" / name).write_text("{not json")
    with pytest.raises(ConnectionError, match="not a readable Milvus Lite folder.*manifest"):
        MilvusIndex(uri=str(corrupt), collection_name="d").fit(X[:50])


def _release_lite(path):
    from milvus_lite import server_manager_instance

    key = os.path.abspath(path)
    _milvus_store._CLIENTS.pop(key, None)
    server_manager_instance.release_server(key)


def test_lite_folder_locked_by_another_process(data, tmp_path):
    X = data[0]
    path = tmp_path / "locked.db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, pymilvus; pymilvus.MilvusClient(sys.argv[1]); print('up', flush=True);"
         " sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "up"
        with pytest.raises(ConnectionError, match="another process holds its lock"):
            MilvusIndex(uri=str(path)).fit(X)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_bad_parameters_name_the_parameter(data):
    X = data[0]
    for params in ({"index_type": "DISKANN"}, {"M": 1}, {"nprobe": 0}, {"timeout": 0},
                   {"uri": 3}, {"collection_name": 1}):
        name = next(iter(params))
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
            MilvusIndex(**params).fit(X)


def test_grid_search_tunes_index_type_and_search_parameters(data):
    X, y, _, _ = data
    grid = [{"index_type": ["FLAT"]}, {"index_type": ["HNSW"], "ef_search": [8, 64]},
            {"index_type": ["IVF_FLAT"], "nlist": [16], "nprobe": [1, 16]}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # short IVF rows completed
        search = GridSearchCV(MilvusIndex(n_neighbors=5), grid, cv=2, error_score="raise")
        search.fit(X, y)
    assert len(search.cv_results_["params"]) == 5
    assert search.best_score_ > 0.9
    assert clone(search.best_estimator_).get_params()["index_type"] in ("FLAT", "HNSW", "IVF_FLAT")


def test_exact_path_and_recall_scorer_read_vectors_back(data):
    X, _, Q, _ = data
    est = MilvusIndex(n_neighbors=5, M=4, ef_construction=8, ef_search=5, batch_size=256).fit(X)
    ref = ExactIndex(n_neighbors=5).fit(X)
    for query in (Q, None):  # exact: a scan of the collection in blocks of 256
        d, i = est.exact_kneighbors(query)
        dr, ir = ref.kneighbors(query)
        np.testing.assert_array_equal(i, ir)
        np.testing.assert_allclose(d, dr, rtol=1e-6, atol=1e-6)
    recall = make_retrieval_scorer("recall", k=5)(est, Q)
    ind, true = est.kneighbors(Q, return_distance=False), ref.kneighbors(Q, return_distance=False)
    assert recall == pytest.approx(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ind, true)]))
