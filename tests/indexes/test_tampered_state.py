"""Values no fit makes, in a file whose checksums were recomputed, are refused at load.

Found by an independent tester (``tests/reliability_independent.py``): a file
sealed again after an edit of ``n_neighbors``, ``metric_``, ``_scale``, the row
keys, the zero rows, the stored data or a pipeline's steps loaded without
error and failed later (a TypeError deep in a query) or answered from data no
fit could have stored. Each is now a ``CorruptFileError`` naming the file.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline

from skfindkit import BM25Index, ExactIndex, HNSWIndex, ShardedIndex, SklearnFeatureExtractor
from skfindkit import io as skio
from skfindkit.utils._persist import CorruptFileError, NativeBlob

from .._corruption import resealed, save_state
from .._optional import has

X = np.random.default_rng(0).random((40, 8)).astype(np.float32)


def _load_tampered(index, tmp_path, **changes):
    path = str(tmp_path / "tampered.skfk")
    save_state(type(index), resealed(index.__getstate__(), **changes), path)
    return skio.load(path)


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "3", float("nan")])
def test_invalid_parameter_in_a_resealed_file(value, tmp_path):
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        _load_tampered(ExactIndex(n_neighbors=3).fit(X), tmp_path, n_neighbors=value)


@pytest.mark.parametrize("changes", [
    {"metric_": "bogus"}, {"metric_": 5}, {"metric_": None},
    {"_scale": float("nan")}, {"_scale": 3.0}, {"_scale": -1.0},
    {"n_samples_fit_": 0}, {"n_features_in_": 8.0}, {"n_samples_fit_": True},
    {"_zero_rows": np.array([100])},
    {"_fit_X": np.where(X > 0.5, np.nan, X).astype(np.float32)},
    {"_fit_X": (X * 10).astype(np.int64)},
], ids=lambda c: f"{next(iter(c))}={next(iter(c.values()))!r:.12}")
def test_fitted_values_no_fit_makes(changes, tmp_path):
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        _load_tampered(ExactIndex(n_neighbors=3).fit(X), tmp_path, **changes)


@pytest.mark.skipif(not has("hnswlib"), reason="hnswlib is not installed (extra: hnswlib)")
def test_row_keys_of_the_wrong_length(tmp_path):
    index = HNSWIndex(n_neighbors=3, keep_vectors=False).fit(X)
    keys = index.__getstate__()["_fit_keys"]
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        _load_tampered(index, tmp_path, _fit_keys=keys[:-1])


@pytest.mark.parametrize("data", [-1.0, float("nan")])
def test_bm25_counts_that_are_not_counts(data, tmp_path):
    counts = sp.csr_matrix(np.random.default_rng(1).integers(0, 3, (30, 12)).astype(float))
    index = BM25Index(n_neighbors=3).fit(counts)
    stored = index.__getstate__()["_fit_X"].copy()
    stored.data[0] = data
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        _load_tampered(index, tmp_path, _fit_X=stored)


def test_sharded_index_claiming_a_trillion_items_allocates_nothing(tmp_path):
    index = ShardedIndex(ExactIndex(n_neighbors=3), n_shards=2).fit(X)
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        _load_tampered(index, tmp_path, n_samples_fit_=10**12)


@pytest.mark.parametrize("steps", [5, [], [("only-a-name",)], [(3, "passthrough")]])
def test_pipeline_steps_that_are_not_steps(steps, tmp_path):
    pipe = Pipeline([("pca", SklearnFeatureExtractor(PCA(2))), ("index", ExactIndex())]).fit(X)
    pipe.steps = steps  # what an edit of the file's tree can say
    path = str(tmp_path / "tampered.skfk")
    skio.save(pipe, path)
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        skio.load(path)


def test_sharded_index_with_a_scale_no_fit_makes(tmp_path):
    index = ShardedIndex(ExactIndex(n_neighbors=3), n_shards=2).fit(X)
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        _load_tampered(index, tmp_path, _scale=float("nan"))


@pytest.mark.skipif(not has("annoy"), reason="annoy is not installed (extra: annoy)")
def test_annoy_split_nodes_with_nan_or_wrong_counts(tmp_path):
    # a NaN in a split node's hyperplane or count passed the checks and changed answers
    from skfindkit import AnnoyIndex
    from skfindkit.utils._persist import NativeBlob

    # three trees: every kind of node, a twentieth of the default forest's files
    index = AnnoyIndex(n_neighbors=3, n_trees=3, random_state=0).fit(X)
    blob = index.__getstate__()["_index_blob"]
    node = 16 + 4 * X.shape[1]
    payload = np.asarray(blob.payload)
    refused = 0
    nan = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
    for start in range(X.shape[0] * node, payload.size - 4, node):  # every non-item node
        for offset in (0, 16):  # its count, the first float of its row
            edited = payload.copy()
            edited[start + offset:start + offset + 4] = nan
            try:
                loaded = _load_tampered(index, tmp_path, _index_blob=NativeBlob(blob.kind, edited))
            except CorruptFileError:
                refused += 1
                continue
            # accepted only where the word is a leaf's unused slot: same answers
            np.testing.assert_array_equal(loaded.kneighbors(X[:4])[1], index.kneighbors(X[:4])[1])
    assert refused > 0


def _replaced(arrays, **changes):
    return {k: v for k, v in {**arrays, **changes}.items() if v is not None}


@pytest.mark.parametrize("metric, change", [
    ("euclidean", lambda a: _replaced(a, norms=a["norms"][:-1])),
    ("euclidean", lambda a: _replaced(a, norms=np.where(a["norms"] > 0, np.nan, 0.0))),
    ("euclidean", lambda a: _replaced(a, matrix=a["matrix"][:, :-1].copy())),
    ("euclidean", lambda a: _replaced(a, perm=np.zeros_like(a["perm"]))),
    ("euclidean", lambda a: _replaced(a, perm=None)),
    ("euclidean", lambda a: _replaced(a, starts=a["starts"] - 1)),
    ("euclidean", lambda a: _replaced(a, starts=a["starts"].astype(np.uint64))),
    ("euclidean", lambda a: _replaced(a, centres=None)),
    ("euclidean", lambda a: np.zeros(64, dtype=np.uint8)),
    ("inner_product", lambda a: _replaced(a, norms=-a["norms"])),
    ("inner_product", lambda a: _replaced(a, matrix=np.zeros((40, 9), np.float32))),
], ids=["short-norms", "nan-norms", "matrix-shape", "perm-not-permutation", "perm-missing",
        "starts", "starts-unsigned", "centres-missing", "bytes", "negative-norms", "extra-array"])
def test_a_stored_search_matrix_no_fit_makes(metric, change, tmp_path):
    Xg = X.copy()
    Xg[:4] += 1e6  # two groups far apart: a permutation is stored
    index = ExactIndex(n_neighbors=3, metric=metric).fit(Xg)
    blob = NativeBlob("exact", change(index._index.prepared.stored()))
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        _load_tampered(index, tmp_path, _index_blob=blob)


@pytest.mark.parametrize("metric", ["euclidean", "inner_product"])
def test_stored_rows_resealed_without_their_search_matrix(metric, tmp_path):
    index = ExactIndex(n_neighbors=3, metric=metric).fit(X)
    with pytest.raises(CorruptFileError, match="tampered.skfk"):
        _load_tampered(index, tmp_path, _fit_X=np.roll(X, 1, axis=0))


def _edited(arrays, name, row, column=None, by=1.0):
    value = arrays[name].copy()
    if column is None:
        value[row] += by
    else:
        value[row, column] += by
    return _replaced(arrays, **{name: value})


MIDDLE = 100  # beyond the first and last 32 rows that every load recomputes


@pytest.mark.parametrize("metric, change", [
    ("euclidean", lambda a: _edited(a, "matrix", MIDDLE, 0)),
    ("euclidean", lambda a: _edited(a, "matrix", MIDDLE, -1, by=1e-3)),  # -|y - c|^2 / 2
    ("euclidean", lambda a: _edited(a, "matrix", MIDDLE, -1, by=-1e-3)),
    ("euclidean", lambda a: _edited(a, "norms", MIDDLE, by=-1e-6)),
    ("euclidean-groups", lambda a: _edited(a, "matrix", MIDDLE, 3, by=1e-4)),
    ("euclidean-groups", lambda a: _replaced(a, perm=np.roll(a["perm"], 1))),
    ("cosine", lambda a: _edited(a, "norms", MIDDLE, by=1e-3)),
    ("inner_product", lambda a: _edited(a, "norms", MIDDLE, by=-1e-3)),
], ids=["centred-row", "norm-column-up", "norm-column-down", "norms", "grouped-row",
        "perm-rolled", "cosine-norms", "inner-product-norms"])
@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_every_row_of_a_stored_search_matrix_is_checked_against_the_rows(
        metric, change, mmap_mode, tmp_path):
    """An edit anywhere in the stored matrix, resealed, is refused: a search that
    trusted it would not be exact (its error bounds assume the matrix the rows make)."""
    rows = np.random.default_rng(1).random((300, 8)).astype(np.float32)
    if metric == "euclidean-groups":
        rows[:150] += 1e6  # two groups far apart: a permutation is stored
    index = ExactIndex(n_neighbors=3, metric=metric.replace("-groups", "")).fit(rows)
    blob = NativeBlob("exact", change(index._index.prepared.stored()))
    path = str(tmp_path / "tampered.skfk")
    save_state(ExactIndex, resealed(index.__getstate__(), _index_blob=blob), path)
    with pytest.raises(CorruptFileError, match="tampered.skfk.*search matrix|tampered.skfk.*norms"):
        skio.load(path, mmap_mode=mmap_mode)


def _cosine_rows_resealed(rows, tmp_path, edit, remove=()):
    """A cosine ExactIndex saved with its rows edited and every checksum, norm and
    search matrix made to match the edited rows."""
    from skfindkit.indexes._brute_matrix import BruteForceMatrix

    index = ExactIndex(n_neighbors=3, metric="cosine").fit(rows)
    if len(remove):
        index.remove(remove)
    state = index.__getstate__()
    data = np.array(index._fit_X)
    changes = edit(data, state) or {}
    blob = NativeBlob("exact", BruteForceMatrix(data, "cosine").prepared.stored())
    path = str(tmp_path / "tampered.skfk")
    save_state(ExactIndex, resealed(state, _fit_X=data, _index_blob=blob, **changes), path)
    return path


def _scaled_row(data, state):
    data[100] *= 1.5


def _new_zero_row(data, state):
    data[100] = 0.0


def _listed_zero_row_made_nonzero(data, state):
    data[7] = data[8]


def _row_scaled_by(factor):
    def edit(data, state):
        data[100] *= np.float32(factor)
    edit.__name__ = f"row_scaled_by_{factor}"
    return edit


@pytest.mark.parametrize("edit", [_scaled_row, _new_zero_row, _listed_zero_row_made_nonzero,
                                  _row_scaled_by(1 - 9e-7), _row_scaled_by(1 - 3e-7),
                                  _row_scaled_by(1 + 3e-7)],
                         ids=lambda edit: edit.__name__)
@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_cosine_rows_that_are_not_unit_or_not_listed_as_zero_are_refused(edit, mmap_mode,
                                                                         tmp_path):
    """A cosine index stores unit rows (zero rows listed apart, answered at distance
    1): other rows, sealed again with matching norms, are not what a fit makes and
    would be answered by another distance than the one the docs define. A fit
    rounds each value once: its rows' norms are within u = 2**-24 of 1, and a row
    scaled by 1 - 3e-7 (5 u) is refused (it can flip a near tie)."""
    rows = np.random.default_rng(2).random((300, 8)).astype(np.float32)
    rows[7] = 0.0
    path = _cosine_rows_resealed(rows, tmp_path, edit)
    with pytest.raises(CorruptFileError, match="tampered.skfk.*unit rows"):
        skio.load(path, mmap_mode=mmap_mode)


def test_a_cosine_index_with_zero_rows_and_removed_rows_loads(tmp_path):
    """Removed rows are erased (zeroed) without being zero rows: a valid file."""
    rows = np.random.default_rng(3).random((300, 8)).astype(np.float32)
    rows[[7, 50]] = 0.0
    index = ExactIndex(n_neighbors=3, metric="cosine").fit(rows)
    index.remove([50, 60, 200])
    index.compact()
    path = tmp_path / "valid.skfk"
    skio.save(index, path)
    for mode in (None, "r"):
        loaded = skio.load(path, mmap_mode=mode)
        np.testing.assert_array_equal(loaded.kneighbors(rows[:20])[1], index.kneighbors(rows[:20])[1])
