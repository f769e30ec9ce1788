"""``skfindkit.io.load(path, mmap_mode="r")``: mapped arrays, the same answers, clear errors."""

import json
import os
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.pipeline import make_pipeline

from skfindkit import BM25Index, ExactIndex, attach_keys
from skfindkit import io as skio
from skfindkit.utils import _safe_file
from skfindkit.utils._mapped import mapping_of
from skfindkit.utils._safe_tree import walk

from .. import _safe_file_cases as cases
from .._corruption import resealed, save_state
from .._isolation import run_isolated

DOCS = ["red apple pie", "green apple", "blue sky", "red sky at night", "apple tart",
        "night sky stars", "green tea", "blue tea pot"] * 5


def _dense(n=400, d=8, seed=0):
    return np.random.RandomState(seed).rand(n, d).astype(np.float32)


def _saved(obj, tmp_path, name="i.skfk"):
    path = tmp_path / name
    skio.save(obj, path)
    return path


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "inner_product"])
def test_mapped_dense_index_answers_as_the_loaded_one(tmp_path, metric):
    X = _dense()
    path = _saved(ExactIndex(n_neighbors=4, metric=metric).fit(X), tmp_path)
    loaded, mapped = skio.load(path), skio.load(path, mmap_mode="r")
    assert isinstance(mapped._fit_X, np.memmap) and mapping_of(mapped._fit_X) is not None
    assert not mapped._fit_X.flags.writeable and mapping_of(loaded._fit_X) is None
    for a, b in zip(loaded.kneighbors(X[:20] + 0.01), mapped.kneighbors(X[:20] + 0.01)):
        np.testing.assert_array_equal(a, b)
    assert (loaded.transform(X[:5]) != mapped.transform(X[:5])).nnz == 0


@pytest.mark.parametrize("make", [
    lambda: make_pipeline(TfidfVectorizer(), ExactIndex(n_neighbors=3, metric="cosine")),
    lambda: make_pipeline(CountVectorizer(), BM25Index(n_neighbors=3)),
], ids=["sparse-exact", "bm25"])
def test_mapped_sparse_pipeline_with_keys_answers_as_the_loaded_one(tmp_path, make):
    pipe = make().fit(DOCS)
    attach_keys(pipe, [f"doc{i}" for i in range(len(DOCS))])
    path = _saved(pipe, tmp_path)
    loaded, mapped = skio.load(path), skio.load(path, mmap_mode="r")
    data = mapped[-1]._fit_X
    assert sp.issparse(data) and all(
        mapping_of(part) is not None for part in (data.data, data.indices, data.indptr))
    queries = mapped[0].transform(["apple sky", "green tea pot"])
    for a, b in zip(loaded[-1].kneighbors(queries), mapped[-1].kneighbors(queries)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded[-1].item_keys_, mapped[-1].item_keys_)


@pytest.mark.parametrize("make", [
    lambda: ExactIndex(n_neighbors=3),
    lambda: make_pipeline(CountVectorizer(), BM25Index(n_neighbors=3)),
], ids=["exact", "bm25"])
def test_partial_fit_of_a_mapped_index_copies_and_leaves_the_file_alone(tmp_path, make):
    first, more = (DOCS[:30], DOCS[30:]) if not isinstance(make(), ExactIndex) else (
        _dense(300), _dense(50, seed=1))
    est = make().fit(first)
    path = _saved(est, tmp_path)
    before = path.read_bytes()
    mapped = skio.load(path, mmap_mode="r")
    index = mapped[-1] if hasattr(mapped, "steps") else mapped
    expected = skio.load(path)
    expected_index = expected[-1] if hasattr(expected, "steps") else expected
    rows = mapped[0].transform(more) if hasattr(mapped, "steps") else more
    index.partial_fit(rows)
    expected_index.partial_fit(rows)
    assert index.n_samples_fit_ == expected_index.n_samples_fit_ == len(first) + len(more)
    for a, b in zip(index.kneighbors(rows), expected_index.kneighbors(rows)):
        np.testing.assert_array_equal(a, b)
    assert path.read_bytes() == before


def test_mmap_mode_other_than_r_is_refused(tmp_path):
    path = _saved(ExactIndex().fit(_dense(10)), tmp_path)
    for mode in ("r+", "w+", "c", True):
        with pytest.raises(ValueError, match="mmap_mode"):
            skio.load(path, mmap_mode=mode)


@pytest.mark.slow
def test_every_byte_flip_truncation_and_appended_byte_of_a_mapped_load_is_a_named_error(
        tmp_path):
    # in a child process: a crash (SIGBUS, segfault) fails the test, not the run
    found = run_isolated(cases.byte_cases, str(tmp_path), 300, 0, "r")
    assert set(found) == {"corrupt"}, {k: v[:5] for k, v in found.items()}


@pytest.mark.slow
def test_every_structural_edit_of_a_mapped_load_is_refused_clearly(tmp_path):
    found = run_isolated(cases.tree_cases, str(tmp_path), "r")
    assert set(found) <= {"corrupt", "untrusted", "loaded"}, {
        k: v[:5] for k, v in found.items() if k not in ("corrupt", "untrusted", "loaded")}


def test_non_finite_stored_data_are_refused_by_a_mapped_load(tmp_path):
    index = ExactIndex().fit(_dense(50))
    index._fit_X[3, 2] = np.nan  # sealed as it is: the file's checksums all match
    path = _saved(index, tmp_path)
    for mode in (None, "r"):
        with pytest.raises(skio.CorruptIndexError, match="not finite"):
            skio.load(path, mmap_mode=mode)


def test_a_file_replaced_between_its_check_and_its_mapping_is_refused(tmp_path, monkeypatch):
    path = _saved(ExactIndex().fit(_dense(20)), tmp_path)
    other = _saved(ExactIndex().fit(_dense(20, seed=1)), tmp_path, "other.skfk")
    checked_once = skio.read_checked

    def then_replaced(p, **kwargs):
        checked = checked_once(p, **kwargs)
        os.replace(other, p)  # what a save of the same path does (a rename)
        return checked

    monkeypatch.setattr(skio, "read_checked", then_replaced)
    with pytest.raises(skio.CorruptFileError, match="changed while it was read"):
        skio.load(path, mmap_mode="r")


def _resident_bytes_of(path):
    """Resident bytes of this process's mappings of ``path`` (Linux's smaps)."""
    total, current = 0, False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
                current = fields[-1] == os.fspath(path)
            elif current and fields[0] == "Rss:":
                total += int(fields[1]) * 1024
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
@pytest.mark.parametrize("metric", ["inner_product", "euclidean"])
def test_a_mapped_load_leaves_the_data_on_disk_until_a_query_reads_it(tmp_path, metric):
    X = _dense(8192, 64)  # 2 MiB (euclidean: and its search matrix, as much again)
    path = _saved(ExactIndex(n_neighbors=2, metric=metric).fit(X), tmp_path)
    mapped = skio.load(path, mmap_mode="r")  # checked (checksum, finite values) on the way
    assert _resident_bytes_of(path) < X.nbytes // 4
    mapped.kneighbors(X[:3])
    assert _resident_bytes_of(path) >= X.nbytes // 2


def test_map_blocks_gives_read_only_views_at_the_blocks_offsets(tmp_path):
    X = _dense(33, 5)
    path = _saved(ExactIndex().fit(X), tmp_path)
    checked = _safe_file.read_checked(path)
    tree, nodes = json.loads(checked.tree), []
    walk(tree["root"], nodes)
    specs = _safe_file.block_specs(tree["blobs"], nodes, checked.data_size)
    read = _safe_file.read_blocks(checked, specs)
    mapped = _safe_file.map_blocks(checked, specs)
    assert len(read) == len(mapped)
    for a, b in zip(read, mapped):
        assert a.dtype == b.dtype and a.shape == b.shape and not b.flags.writeable
        np.testing.assert_array_equal(a, b)



def test_removal_from_a_mapped_index_copies_and_leaves_the_file_alone(tmp_path):
    X = _dense(200)
    path = _saved(ExactIndex(n_neighbors=4).fit(X), tmp_path)
    before = path.read_bytes()
    mapped, loaded = skio.load(path, mmap_mode="r"), skio.load(path)
    for index in (mapped, loaded):
        index.remove([1, 2, 50])
    for a, b in zip(mapped.kneighbors(X[:10]), loaded.kneighbors(X[:10])):
        np.testing.assert_array_equal(a, b)
    assert not np.isin([1, 2, 50], mapped.kneighbors(X[:10])[1]).any()
    assert path.read_bytes() == before


def _save_over_a_mapped_file(folder):
    """In a child: map a file, save a smaller, different index over its path, query again."""
    path, answers = os.path.join(folder, "over.skfk"), {}
    X, Q = _dense(2000, 16), _dense(6, 16, seed=1)
    for metric in ("cosine", "inner_product", "euclidean"):
        skio.save(ExactIndex(n_neighbors=5, metric=metric).fit(X), path)
        mapped = skio.load(path, mmap_mode="r")
        before, rows, inode = mapped.kneighbors(Q), np.array(mapped._fit_X), os.stat(path).st_ino
        skio.save(ExactIndex(n_neighbors=5, metric=metric).fit(_dense(20, 16, seed=2)), path)
        after = mapped.kneighbors(Q)
        answers[metric] = (os.stat(path).st_ino != inode,
                           all(np.array_equal(a, b) for a, b in zip(before, after)),
                           bool(np.array_equal(mapped._fit_X, rows)))
    return answers


def test_saving_over_a_mapped_file_leaves_the_mapped_index_answering_as_before(tmp_path):
    answers = run_isolated(_save_over_a_mapped_file, str(tmp_path), timeout=120)
    assert answers == {m: (True, True, True) for m in ("cosine", "inner_product", "euclidean")}


def _far_groups(n=300, d=6):
    """Rows in two clusters 1e6 apart (the search matrix cuts them into groups)."""
    X = _dense(n, d)
    X[: n // 10] += 1e6
    return X


@pytest.mark.parametrize("make, metric", [
    (_dense, "euclidean"), (_far_groups, "euclidean"), (_dense, "cosine"),
    (_dense, "inner_product")], ids=["euclidean", "euclidean-groups", "cosine", "inner_product"])
def test_a_mapped_index_searches_its_saved_matrix_without_building_it(tmp_path, make, metric):
    X = make()
    index = ExactIndex(n_neighbors=4, metric=metric).fit(X)  # never queried: saving builds it
    path = _saved(index, tmp_path)
    mapped = skio.load(path, mmap_mode="r")
    prepared = mapped._index._prepared
    assert prepared is not None  # nothing is left to build at the first query
    for part in (prepared.matrix, prepared.norms) + (
            () if prepared.perm is None else (prepared.perm,)):
        assert mapping_of(part) is not None and not part.flags.writeable
    assert (prepared.n_groups > 1) == (make is _far_groups)
    Q = X[:20] + 0.01
    for a, b in zip(index.kneighbors(Q), mapped.kneighbors(Q)):
        np.testing.assert_array_equal(a, b)


def test_the_saved_matrix_follows_removal_compaction_and_partial_fit(tmp_path):
    X, more = _far_groups(), _dense(40, 6, seed=1)
    index = ExactIndex(n_neighbors=4).fit(X)
    index.kneighbors(X[:2])  # the matrix of the first rows is built...
    index.remove([0, 5, 200])
    index.compact()
    index.partial_fit(more)  # ...and replaced
    path = _saved(index, tmp_path)
    Q = np.vstack([X[:10], more[:10]]) + 0.01
    for mode in (None, "r"):
        loaded = skio.load(path, mmap_mode=mode)
        assert loaded._index._prepared.matrix.shape[0] == X.shape[0] + more.shape[0]
        for a, b in zip(index.kneighbors(Q), loaded.kneighbors(Q)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, metric", [
    (_dense, "euclidean"), (_far_groups, "euclidean"), (_dense, "inner_product")],
    ids=["euclidean", "euclidean-groups", "inner_product"])
def test_a_file_without_a_saved_matrix_builds_it_at_the_first_query(tmp_path, make, metric):
    # the state files had before the matrix was saved: no native structure (None)
    X = make()
    index = ExactIndex(n_neighbors=4, metric=metric).fit(X)
    path = str(tmp_path / "before.skfk")
    save_state(ExactIndex, resealed(index.__getstate__(), _index_blob=None), path)
    Q = X[:20] + 0.01
    for mode in (None, "r"):
        loaded = skio.load(path, mmap_mode=mode)
        assert loaded._index._prepared is None
        for a, b in zip(index.kneighbors(Q), loaded.kneighbors(Q)):
            np.testing.assert_array_equal(a, b)


def test_the_mapped_checksum_pass_equals_the_read_one_and_refuses_a_flipped_byte(tmp_path):
    path = _saved(ExactIndex().fit(_dense(3000, 8)), tmp_path)
    read, mapped = _safe_file.read_checked(path), _safe_file.read_checked(path, mapped=True)
    assert (read.digest, read.start, read.data_size, read.tree) == (
        mapped.digest, mapped.start, mapped.data_size, mapped.tree)
    data = bytearray(path.read_bytes())
    for where in (mapped.start, mapped.start + mapped.data_size - 1):
        data[where] ^= 0x01
        path.write_bytes(bytes(data))
        with pytest.raises(skio.CorruptFileError, match="failed its XXH3-128 check"):
            _safe_file.read_checked(path, mapped=True)
        data[where] ^= 0x01
