"""Compaction on every index: removed items leave the native structure and saved files.

Parametrized over every index instance of the contract suite. Exact indexes
answer as a fresh fit on the live items; approximate ones keep their recall
against exact search of the live items. Backends that number their items
themselves (annoy, nmslib, faiss) rebuild under an id map (``_native_ids``).
"""

import pickle

import numpy as np
import pytest

from skfindkit import AnnoyIndex, FaissIndex, HNSWIndex, MilvusIndex, NMSLibIndex
from skfindkit.io import load, save
from skfindkit.utils._persist import CorruptFileError

from .._backends import needs_mark
from .._corruption import resealed, save_state
from ..common.estimator_instances import index_instances
from .test_remove import clustered, fitted, live_truth

INDEXES = index_instances()
IDS = [repr(i) for i in INDEXES]
MAPPED = [i for i in INDEXES if hasattr(i, "_rebuild_native")]
MAPPED_IDS = [repr(i) for i in MAPPED]


@pytest.fixture(scope="module")
def data():
    X = clustered(240)
    X[7] = np.linspace(1.125, 3.375, X.shape[1])  # a distinctive row: its bytes are searched
    return X, clustered(12, seed=1)


def _row_bytes(index, X, i):
    """The stored (prepared float32) bytes of row ``i``: what a saved file would hold."""
    row = index._prepare(X[i:i + 1])
    for shard in getattr(index, "shards_", [])[:1]:  # the shards prepare rows for the metric
        row = shard._prepare(row)
    return np.ascontiguousarray(row, dtype=np.float32).tobytes()


@pytest.mark.parametrize("index", INDEXES, ids=IDS)
def test_compacted_index_and_its_files_hold_no_removed_row(index, data, tmp_path):
    X, Q = data
    index = fitted(index, X)
    row = _row_bytes(index, X, 7)
    assert row in pickle.dumps(index)  # the check can fail: the row is there before
    index.remove([7, 8, 9]).compact()
    path = tmp_path / "index.skf"
    save(index, path)
    assert row not in pickle.dumps(index)
    assert row not in path.read_bytes()
    for copy in (pickle.loads(pickle.dumps(index)), load(path)):
        ind = copy.kneighbors(np.vstack([X[7:10], Q]), 4, return_distance=False)
        assert copy.is_live(ind).all()


@pytest.mark.parametrize("index", INDEXES, ids=IDS)
def test_compaction_equals_a_fresh_fit_or_keeps_recall(index, data):
    X, Q = data
    index = fitted(index, X)
    gone = np.random.RandomState(0).choice(240, 80, replace=False)
    index.remove(gone).compact()
    live = index.live_mask_
    k = 5
    dist, ind = index.kneighbors(Q, k)
    truth_dist, truth = live_truth(index, X, Q, k, live)
    assert live[ind].all()
    if index._is_exact():
        np.testing.assert_array_equal(ind, truth)
        np.testing.assert_allclose(dist, truth_dist, rtol=1e-5, atol=1e-5)
    else:  # these small graphs and forests find nearly all of them
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ind, truth)])
        assert recall >= 0.9


@pytest.mark.parametrize("index", MAPPED, ids=MAPPED_IDS)
def test_rebuilt_backends_compact_past_the_share_and_keep_ids(index, data):
    X, Q = data
    index = fitted(index, X[:200])
    exact = index._is_exact()  # exact indexes compact at every removal
    index.remove(np.arange(0, 30))  # 15 %: below the default share of 0.2
    assert index._n_native() == (170 if exact else 200)
    index.remove(np.arange(30, 50))  # 25 %: past it, compacted automatically
    assert index._n_native() == 150
    np.testing.assert_array_equal(index._native_ids, np.arange(50, 200))
    index.partial_fit(X[200:])
    live = index.live_mask_
    assert index._n_native() == 190 and not live[:50].any()
    if index.metric_ != "inner_product":  # each item its own nearest neighbour: ids kept
        for copy in (index, pickle.loads(pickle.dumps(index))):
            np.testing.assert_array_equal(
                copy.kneighbors(X[[50, 120, 199, 200, 239]], 1, return_distance=False).ravel(),
                [50, 120, 199, 200, 239])
    ind = index.kneighbors(return_distance=False)  # the rows of removed items are unfilled
    assert (ind[:50] == -1).all() and live[ind[50:]].all()


@pytest.mark.parametrize("make", [
    pytest.param(lambda: AnnoyIndex(keep_vectors=False, random_state=0),
                 marks=needs_mark(AnnoyIndex), id="annoy"),
    pytest.param(lambda: FaissIndex(factory="HNSW16", keep_vectors=False, random_state=0),
                 marks=needs_mark(FaissIndex), id="faiss-hnsw"),
    pytest.param(lambda: FaissIndex(factory="IVF4,Flat", nprobe=4, keep_vectors=False,
                                    random_state=0), marks=needs_mark(FaissIndex), id="faiss-ivf"),
])
def test_compaction_without_a_copy_reads_the_live_rows_back(make, data, tmp_path):
    X, Q = data
    index = make().fit(X)
    row = _row_bytes(index, X, 7)
    index.remove(np.arange(0, 60))
    assert index._n_native() == 180
    np.testing.assert_array_equal(index._get_vectors([7, 60, 239]),
                                  np.vstack([np.zeros((1, X.shape[1])), X[[60, 239]]]))
    save(index, tmp_path / "index.skf")
    assert row not in (tmp_path / "index.skf").read_bytes()
    loaded = load(tmp_path / "index.skf")
    np.testing.assert_array_equal(loaded.kneighbors(X[60:70], 1, return_distance=False).ravel(),
                                  np.arange(60, 70))
    new = clustered(5, seed=9)
    for grown in (index, loaded):  # new items after the largest id, read back by id
        grown.partial_fit(new)
        np.testing.assert_array_equal(grown.kneighbors(new, 1, return_distance=False).ravel(),
                                      np.arange(240, 245))
        np.testing.assert_array_equal(grown._get_vectors([59, 60, 244]),
                                      np.vstack([np.zeros((1, X.shape[1])), X[60], new[4]]))


@pytest.mark.parametrize("make", [
    pytest.param(lambda: AnnoyIndex(random_state=0), marks=needs_mark(AnnoyIndex), id="annoy"),
    pytest.param(lambda: NMSLibIndex(), marks=needs_mark(NMSLibIndex), id="nmslib"),
    pytest.param(lambda: FaissIndex(factory="HNSW16", random_state=0),
                 marks=needs_mark(FaissIndex), id="faiss"),
])
@pytest.mark.parametrize("bad", [
    np.arange(59, 239), np.arange(61, 240), np.arange(60, 240)[::-1].copy(),
    np.arange(60, 240).astype(np.float64)], ids=["removed", "live-missing", "order", "dtype"])
def test_a_tampered_id_map_is_refused(make, bad, data, tmp_path):
    X, _ = data
    index = make().fit(X).remove(np.arange(60)).compact()
    path = str(tmp_path / "tampered.skfk")
    save_state(type(index), resealed(index.__getstate__(), _native_ids=bad), path)
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        load(path)


@pytest.mark.parametrize("cls", [
    pytest.param(cls, marks=needs_mark(cls), id=cls.__name__)
    for cls in (AnnoyIndex, NMSLibIndex, FaissIndex, HNSWIndex)])
def test_max_tombstone_share_sets_when_remove_compacts(cls, data):
    X, _ = data
    every = cls(max_tombstone_share=0.0).fit(X).remove([1])
    assert every._held_tombstones() == 0
    never = cls(max_tombstone_share=1.0).fit(X).remove(np.arange(200))
    assert never._held_tombstones() == 200
    assert never.compact()._held_tombstones() == 0
    with pytest.raises(ValueError, match="max_tombstone_share"):
        cls(max_tombstone_share=1.5).fit(X)


@needs_mark(MilvusIndex)
def test_milvus_collection_loses_removed_items_past_the_share(data, tmp_path):
    X, Q = data
    index = MilvusIndex(M=8, ef_search=64).fit(X)  # HNSW: compacts past 0.2

    def rows():
        coll = index._attached()
        return coll.client.get_collection_stats(coll.name)["row_count"]

    index.remove(np.arange(40))
    assert rows() == 240 and index._held_tombstones() == 40
    index.remove(np.arange(40, 60))
    assert rows() == 180 and index._held_tombstones() == 0
    ind = index.kneighbors(X[60:70], 1, return_distance=False).ravel()
    np.testing.assert_array_equal(ind, np.arange(60, 70))  # ids are the primary keys
    state = index.__getstate__()
    path = str(tmp_path / "tampered.skfk")
    save_state(MilvusIndex, resealed(state, _n_dropped=100), path)
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        load(path)
    save(index, tmp_path / "milvus.skf")
    loaded = load(tmp_path / "milvus.skf")
    assert loaded._held_tombstones() == 0
    np.testing.assert_array_equal(loaded.kneighbors(Q, 3, return_distance=False),
                                  index.kneighbors(Q, 3, return_distance=False))


@needs_mark(FaissIndex)
@pytest.mark.parametrize("keep_vectors", [True, False])
def test_faiss_ivf_flat_removes_natively_and_keeps_its_centroids(keep_vectors, data, tmp_path):
    import faiss

    X, Q = data
    index = FaissIndex(factory="IVF4,Flat", nprobe=2, keep_vectors=keep_vectors,
                       random_state=0).fit(X)
    centroids = faiss.downcast_index(index._index).quantizer.reconstruct_n(0, 4)
    index.remove(np.arange(0, 240, 7))  # below the share: tombstones, over-fetched
    tombstoned = index.kneighbors(Q, 5)
    index.compact()
    assert index._index.ntotal == index.n_items_
    np.testing.assert_array_equal(
        faiss.downcast_index(index._index).quantizer.reconstruct_n(0, 4), centroids)
    for copy in (index, pickle.loads(pickle.dumps(index))):  # the same lists, the same answers
        dist, ind = copy.kneighbors(Q, 5)
        np.testing.assert_array_equal(ind, tombstoned[1])
        np.testing.assert_allclose(dist, tombstoned[0], rtol=1e-6)
    np.testing.assert_array_equal(index._data[[7, 8]], np.vstack([np.zeros(8), X[8]]))
    new = clustered(5, seed=9)
    index.partial_fit(new)
    np.testing.assert_array_equal(index.kneighbors(new, 1, return_distance=False).ravel(),
                                  np.arange(240, 245))


@needs_mark(MilvusIndex)
def test_milvus_deletes_by_primary_key_in_the_path_a_server_uses(data):
    """The delete a server collection's compaction makes (no server is reachable in the
    tests), run on Milvus Lite: the deleted ids are gone from ``get`` and searches."""
    X, _ = data
    index = MilvusIndex(index_type="FLAT").fit(X)
    coll = index._attached()
    index._delete_ids(coll, np.arange(5))
    assert coll.client.get(coll.name, ids=list(range(7))) and {
        r["id"] for r in coll.client.get(coll.name, ids=list(range(7)))} == {5, 6}
    hits = coll.client.search(coll.name, data=[X[2].tolist()], limit=3)[0]
    assert not {h["id"] for h in hits} & set(range(5))
