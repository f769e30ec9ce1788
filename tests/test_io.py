"""Bytes and files: whole-state integrity, the safe format, atomic writes.

Cases that hand corrupted bytes to native libraries run in a child process
(``_isolation.run_isolated``): a crash fails the test instead of the run.
"""

import os
import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfindkit import ExactIndex, FunctionVectorLoader, SklearnFeatureExtractor, attach_keys
from skfindkit import io as skio
from skfindkit.utils._native_bytes import load_from_bytes, save_to_bytes
from skfindkit.utils._persist import CorruptFileError, CorruptIndexError, NativeBlob

from . import _corruption
from ._isolation import run_isolated

BACKENDS = list(_corruption.BACKENDS)
_NEEDS = {"annoy": "annoy", "nmslib": "nmslib", "hnswlib": "hnswlib",
          "faiss-hnsw": "faiss", "faiss-flat": "faiss"}


def _backend(name):
    if name in _NEEDS:
        pytest.importorskip(_NEEDS[name])
    return name


# ------------------------------------------------------------ native bytes
def test_native_bytes_round_trip_several_files():
    def save(path):
        for suffix, data in (("", b"main"), (".dat", b"\x00" * 5), (".x", b"")):
            with open(path + suffix, "wb") as fh:
                fh.write(data)

    data = save_to_bytes(save, suffixes=(".dat", ".x"))

    def load(path):
        return [open(path + s, "rb").read() for s in ("", ".dat", ".x")]

    # each file is mapped (the only copy in memory), none concatenated into a buffer
    assert sorted(data) == ["file", "file.dat", "file.x"]
    assert load_from_bytes(data, load, suffixes=(".dat", ".x")) == [b"main", b"\x00" * 5, b""]
    for bad in ({k: v for k, v in data.items() if k != "file.x"},  # a file missing
                {**data, "file.y": data["file"]},  # one too many
                {**data, "file.dat": data["file.dat"].view(np.int8)},  # not bytes
                data["file"]):  # not the files of a multi-file save
        with pytest.raises(ValueError, match="expected the byte arrays of files"):
            load_from_bytes(bad, load, suffixes=(".dat", ".x"))


# ------------------------------------------------------ whole-state integrity
@pytest.mark.parametrize("backend", BACKENDS)
def test_bit_flips_anywhere_in_a_pickled_index_never_answer_wrong(backend):
    counts = run_isolated(_corruption.bitflip_cases, _backend(backend))
    assert counts.get("silent-wrong", 0) == 0, counts
    # every flip in the data (most of the bytes) is refused by our check
    assert counts.get("refused", 0) >= 0.8 * counts["tried"], counts


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_pickles_are_refused(backend):
    results = run_isolated(_corruption.truncation_cases, _backend(backend))
    assert all(r.startswith("refused") for r in results), results


@pytest.mark.parametrize("backend", BACKENDS)
def test_native_bytes_of_another_index_are_refused(backend):
    result, message = run_isolated(_corruption.swapped_blob_case, _backend(backend))
    assert result == "refused", message
    assert ("'_index_blob'" in message) or ("'_fit_X'" in message), message


@pytest.mark.parametrize("backend", BACKENDS)
def test_changed_n_features_is_refused_by_the_checksum(backend):
    result, message = run_isolated(_corruption.tampered_dims_case, _backend(backend), False)
    assert result == "refused" and "'n_features_in_'" in message, message


@pytest.mark.parametrize("backend", BACKENDS)
def test_changed_n_features_is_refused_by_the_dimension_checks(backend):
    # checksums recomputed after the change: the dimension checks must catch
    # it before annoy aborts (std::length_error) or faiss asserts
    result, message = run_isolated(_corruption.tampered_dims_case, _backend(backend), True)
    assert result == "refused", message
    assert "features" in message or "annoy could not load" in message, message


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "exact"])
def test_native_index_of_another_dimension_is_refused_before_use(backend):
    # issues 13.2 / 13.12: annoy aborted (std::length_error), faiss raised a
    # bare AssertionError; the checksums are recomputed, so only the native
    # dimension checks stand between the bytes and the library
    result, message = run_isolated(_corruption.foreign_dims_case, _backend(backend))
    assert result == "refused", message
    assert "features" in message or "annoy could not load" in message, message


def test_one_flipped_bit_in_exact_index_data_is_named():
    index, _ = _corruption.make_index("exact")
    data = pickle.dumps(index, protocol=5)
    start = data.find(index._fit_X.tobytes()[:64])
    assert start > 0
    for offset in (0, 1234, index._fit_X.nbytes - 1):
        with pytest.raises(CorruptIndexError, match="'_fit_X' \\(the stored float32 data\\)"):
            pickle.loads(_corruption.flip(data, start + offset, offset % 8))


def test_pickle_without_integrity_record_is_refused():
    index, _ = _corruption.make_index("exact")
    state = index.__getstate__()
    del state["_checksums"]
    with pytest.raises(CorruptIndexError, match="no skfindkit integrity record"):
        ExactIndex.__new__(ExactIndex).__setstate__(state)


@pytest.mark.slow
def test_keras_extractor_corrupt_model_bytes_are_refused(digits):
    keras = pytest.importorskip("keras")
    from skfindkit import KerasFeatureExtractor

    inputs = keras.Input(shape=(8, 8, 1))
    hidden = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Flatten()(hidden))
    ext = KerasFeatureExtractor(model, layer="conv", pooling="avg").fit(digits[0][:4])
    data = pickle.dumps(ext, protocol=5)
    np.testing.assert_array_equal(pickle.loads(data).transform(digits[0][:4]),
                                  ext.transform(digits[0][:4]))
    state = ext.__getstate__()  # Keras archives differ per save (timestamps)
    payload = state["model"].payload
    for bad in (_corruption.flip(payload.tobytes(), 10), payload.tobytes()[:-5],
                _corruption.flip(payload.tobytes(), len(payload) // 2, 3)):
        broken = dict(state, model=NativeBlob("KerasFeatureExtractor", bad))
        with pytest.raises(CorruptFileError, match="'model' failed the XXH3-128 checksum"):
            KerasFeatureExtractor.__new__(KerasFeatureExtractor).__setstate__(broken)


# ------------------------------------------- data read back from the native index
# backends whose native bytes hold the float32 rows exactly: ``_fit_X`` is sealed
# but not written twice; it is read back on load and checked against its digest
_LOSSLESS = ["annoy", "nmslib", "hnswlib", "faiss-hnsw", "faiss-flat"]


def _round_trips(index, tmp_path):
    path = tmp_path / "index.skfk"
    skio.save(index, path)
    return [pickle.loads(pickle.dumps(index)), joblib.load(_dumped(index, tmp_path)),
            skio.load(path)]


def _dumped(index, tmp_path):
    path = tmp_path / "index.joblib"
    joblib.dump(index, path)
    return path


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "inner_product"])
@pytest.mark.parametrize("backend", _LOSSLESS)
def test_data_read_back_from_the_native_index_is_bit_identical(backend, metric, tmp_path):
    index, Q = _corruption.make_index(_backend(backend), metric=metric)
    assert "_fit_X" not in index.__getstate__()  # not written beside the native bytes
    assert "_fit_X" in index.__getstate__()["_checksums"]["fields"]  # but sealed
    for loaded in _round_trips(index, tmp_path):
        assert loaded._fit_X.dtype == np.float32 and loaded._fit_X.flags.c_contiguous
        assert np.array_equal(loaded._fit_X, index._fit_X)
        assert _corruption._same(loaded.kneighbors(Q), index.kneighbors(Q))


@pytest.mark.parametrize("backend", _LOSSLESS)
def test_data_read_back_keeps_the_rescaling_of_tiny_values(backend, tmp_path):
    index, Q = _corruption.make_index(_backend(backend))
    X = index._fit_X * np.float32(1e-30)  # rescaled by a power of two when fitted
    index.fit(X)
    assert index._scale != 1.0
    for loaded in _round_trips(index, tmp_path):
        assert loaded._scale == index._scale and np.array_equal(loaded._fit_X, index._fit_X)
        assert _corruption._same(loaded.kneighbors(X[:5]), index.kneighbors(X[:5]))


@pytest.mark.parametrize("backend", _LOSSLESS)
def test_resealed_native_bytes_of_another_index_fail_the_data_digest(backend):
    # checksums recomputed around another index's native bytes (same shape):
    # the rows read back from them do not have the sealed data's digest
    index, _ = _corruption.make_index(_backend(backend), seed=0)
    other, _ = _corruption.make_index(backend, seed=1)
    state = _corruption.resealed(index.__getstate__(),
                                 _index_blob=other.__getstate__()["_index_blob"])
    with pytest.raises(CorruptIndexError, match="do not match the saved data's checksum"):
        type(index).__new__(type(index)).__setstate__(state)


def test_lossy_native_indexes_keep_their_data_and_refuse_a_state_without_it():
    pytest.importorskip("faiss")
    from skfindkit import FaissIndex

    X = _corruption.clustered(400, d=16)
    with pytest.warns(UserWarning, match="training points"):
        index = FaissIndex(factory="IVF4,PQ4").fit(X)
    state = index.__getstate__()
    assert "_fit_X" in state  # PQ codes are lossy
    del state["_fit_X"]
    with pytest.raises(CorruptIndexError, match="does not hold the vectors exactly"):
        type(index).__new__(type(index)).__setstate__(state)


# ------------------------------------------------------------ safe format
@pytest.fixture(scope="module")
def digits_pipeline():
    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(
        SklearnFeatureExtractor(StandardScaler()),
        SklearnFeatureExtractor(PCA(16, random_state=0)),
        SklearnFeatureExtractor(TruncatedSVD(8, random_state=0)),
        ExactIndex(n_neighbors=4, metric="cosine"),
    ).fit(X, y)
    attach_keys(pipe, [f"digit-{i}.png" for i in range(len(X))])
    return pipe, X


def test_safe_format_round_trip_of_a_pipeline(digits_pipeline, tmp_path):
    pipe, X = digits_pipeline
    skio.save(pipe, tmp_path / "p.skfk")
    again = skio.load(tmp_path / "p.skfk")
    for a, b in zip(pipe.transform(X[:50]).toarray(), again.transform(X[:50]).toarray()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again[-1].item_keys_, pipe[-1].item_keys_)
    assert again.get_params(deep=False).keys() == pipe.get_params(deep=False).keys()


@pytest.mark.parametrize("backend", BACKENDS)
def test_safe_format_corruption_is_refused(backend, tmp_path):
    counts = run_isolated(_corruption.safe_file_bitflip_cases, _backend(backend), str(tmp_path))
    assert counts.get("refused", 0) == counts["tried"], counts


def _payload_marker(path):
    return os.path.join(os.path.dirname(path), "payload-ran")


class _Payload:
    """Unpickling this object writes a marker file: what a crafted pickle can do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_never_unpickles_a_joblib_file(tmp_path):
    path = str(tmp_path / "crafted.joblib")
    joblib.dump(_Payload(_payload_marker(path)), path)
    with pytest.raises(CorruptFileError, match="pickle/joblib file, which runs code"):
        skio.load(path)
    assert not os.path.exists(_payload_marker(path))
    joblib.load(path)  # the same file under joblib runs its payload
    assert os.path.exists(_payload_marker(path))


def _rewrite_tree(path, edit):
    """Rewrite a safe file's JSON tree and re-seal it, as a crafted file would."""
    import json

    from skfindkit.utils._persist import new_hash

    with open(path, "rb") as fh:
        data = fh.read()
    _, version, _, tree_len = skio._HEADER.unpack_from(data)
    tree = json.loads(data[skio._HEADER.size:skio._HEADER.size + tree_len])
    edit(tree)
    text = json.dumps(tree).encode()
    start = -(-(skio._HEADER.size + tree_len) // 64) * 64
    body = skio._HEADER.pack(skio.MAGIC, version, 0, len(text)) + text
    body += bytes(-(-len(body) // 64) * 64 - len(body)) + data[start:-skio._DIGEST]
    with open(path, "wb") as fh:
        fh.write(body + new_hash(body).digest())


def test_crafted_safe_file_naming_a_dangerous_type_is_refused(tmp_path):
    path = str(tmp_path / "crafted.skfk")
    skio.save(ExactIndex(), path)

    def to_payload(tree):
        tree["root"]["class"] = "os.system"  # or any callable: never imported or called
        tree["root"]["state"] = {"$": "dict", "items": [["cmd", "touch pwned"]]}

    _rewrite_tree(path, to_payload)
    with pytest.raises(skio.UntrustedTypeError, match=r"not trusted: \['os.system'\]"):
        skio.load(path)


def test_crafted_safe_file_with_a_trusted_name_that_is_not_an_estimator(tmp_path):
    path = str(tmp_path / "crafted.skfk")
    skio.save(ExactIndex(), path)

    def to_function(tree):
        tree["root"]["class"] = "sklearn.utils.validation.check_array"

    _rewrite_tree(path, to_function)
    with pytest.raises(skio.UntrustedTypeError, match="check_array"):
        skio.load(path)


class _MyEstimator(BaseEstimator):
    def __init__(self, alpha=1.0):
        self.alpha = alpha


def test_own_estimators_load_only_when_trusted(tmp_path):
    path = tmp_path / "mine.skfk"
    skio.save(make_pipeline(_MyEstimator(alpha=2.5), ExactIndex()), path)
    with pytest.raises(skio.UntrustedTypeError, match="_MyEstimator"):
        skio.load(path)
    again = skio.load(path, trusted=[_MyEstimator])
    assert again[0].alpha == 2.5


def test_save_refuses_functions_with_a_clear_error(tmp_path):
    loader = FunctionVectorLoader(lambda item: np.zeros(3))
    with pytest.raises(TypeError, match="func.*function.*joblib.dump"):
        skio.save(loader, tmp_path / "f.skfk")
    assert not os.listdir(tmp_path)


def test_save_keeps_numpy_scalars_special_floats_and_random_states(tmp_path):
    obj = ExactIndex()
    obj.extra_ = {"f": float("nan"), "g": np.float32(1.5), "rs": np.random.RandomState(3),
                  (1, "a"): [np.int64(7), None, b"\x00\x01"], "dt": np.dtype("<f4")}
    skio.save(obj, tmp_path / "x.skfk")
    extra = skio.load(tmp_path / "x.skfk").extra_
    assert np.isnan(extra["f"]) and type(extra["g"]) is np.float32 and extra["g"] == 1.5
    assert extra["rs"].randint(1000) == np.random.RandomState(3).randint(1000)
    assert extra[(1, "a")] == [7, None, b"\x00\x01"] and extra["dt"] == np.float32


# ------------------------------------------------------------ atomic writes
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump({"good": np.arange(10)}, path)
    before = path.read_bytes()

    class Bomb:
        def __reduce__(self):
            raise RuntimeError("disk full (simulated)")

    with pytest.raises(RuntimeError, match="simulated"):
        with skio.atomic_write(path) as fh:
            joblib.dump([np.ones(100_000), Bomb()], fh)  # fails after ~800 kB
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.joblib"]  # no temporary file left


def test_save_keeps_the_old_file_when_the_write_fails_midway(tmp_path, monkeypatch):
    path = tmp_path / "index.skfk"
    X = np.random.RandomState(0).rand(2000, 8)
    skio.save(ExactIndex().fit(X[:10]), path)
    before = path.read_bytes()
    writes = []
    real_write = skio._write_piece

    def failing(fh, piece):
        writes.append(len(piece))
        if len(writes) == 2:  # the header went out, the data fails
            raise OSError(28, "No space left on device (simulated)")
        real_write(fh, piece)

    monkeypatch.setattr(skio, "_write_piece", failing)
    with pytest.raises(OSError, match="No space left"):
        skio.save(ExactIndex().fit(X), path)
    assert path.read_bytes() == before
    assert skio.load(path).n_samples_fit_ == 10
    assert sorted(os.listdir(tmp_path)) == ["index.skfk"]


def test_atomic_write_text_mode_and_permissions(tmp_path):
    path = tmp_path / "notes.md"
    with skio.atomic_write(path, mode="w", encoding="utf-8") as fh:
        fh.write("é\n")
    assert path.read_text(encoding="utf-8") == "é\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(ValueError, match="mode"):
        with skio.atomic_write(path, mode="a"):
            pass


@pytest.mark.parametrize("backend", BACKENDS)
def test_joblib_round_trip_answers_identically(backend):
    assert run_isolated(_corruption.joblib_round_trip, _backend(backend))


def _faiss_views_then_growth(factory, how, folder):
    from skfindkit import FaissIndex

    rng = np.random.RandomState(0)
    X, Y = rng.rand(2000, 16).astype(np.float32), rng.rand(300, 16).astype(np.float32)
    fitted = FaissIndex(n_neighbors=5, factory=factory, random_state=0, n_jobs=1).fit(X)
    path = os.path.join(folder, "index")
    joblib.dump(fitted, path)
    copied = joblib.load(path, mmap_mode="r")
    assert getattr(copied, "_loaded_from", None) is None
    if how == "safe":
        skio.save(fitted, path + ".skfk")
        viewed = skio.load(path + ".skfk")
    else:
        viewed = joblib.load(path)
    assert viewed._loaded_from is not None
    for a, b, c in zip(fitted.kneighbors(Y), viewed.kneighbors(Y), copied.kneighbors(Y)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    viewed.partial_fit(Y)  # growing the views themselves would abort the process
    copied.partial_fit(Y)
    assert viewed._loaded_from is None and viewed._index.ntotal == 2300
    for a, b in zip(copied.kneighbors(X[:200]), viewed.kneighbors(X[:200])):
        np.testing.assert_array_equal(a, b)
    again = pickle.loads(pickle.dumps(viewed))  # the grown index saves and loads again
    np.testing.assert_array_equal(again.kneighbors(Y)[1], copied.kneighbors(Y)[1])
    return True


@pytest.mark.parametrize("factory", ["HNSW32", "Flat", "IVF16,Flat", "IVF16,PQ4x4fs"])
@pytest.mark.parametrize("how", ["joblib", "safe"])
def test_faiss_loaded_without_a_copy_answers_and_grows_like_a_copied_load(factory, how, tmp_path):
    # faiss reads its arrays as views of the checked bytes (no copy); partial_fit
    # must first make them its own. A memory-mapped joblib load is never viewed:
    # faiss copies it (the reference). In a child: a regression aborts there.
    pytest.importorskip("faiss")
    assert run_isolated(_faiss_views_then_growth, factory, how, str(tmp_path))


@pytest.mark.parametrize("hint", [None, 10])
def test_faiss_bytes_written_into_one_buffer_equal_faiss_serialization(hint, monkeypatch):
    # the buffer is sized by an upper estimate (hint=None) or grows when the
    # estimate is short (hint=10): either way, exactly faiss's own bytes
    faiss = pytest.importorskip("faiss")
    from skfindkit.indexes import _faiss

    if hint is not None:
        monkeypatch.setattr(_faiss, "_size_hint", lambda faiss, index: hint)
    X = np.random.RandomState(0).rand(3000, 16).astype(np.float32)
    for factory in ("HNSW32", "Flat", "IVF16,Flat", "IVF16,PQ4x4fs"):
        index = faiss.index_factory(16, factory)
        index.train(X)
        index.add(X)
        expected = faiss.serialize_index(index)
        assert _faiss._size_hint(faiss, index) >= (expected.size if hint is None else 0)
        np.testing.assert_array_equal(_faiss._write_to_buffer(faiss, index), expected)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("how", ["load", "mapped", "file_kind"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, how):
    import threading

    fifo = tmp_path / "pipe.skfk"
    os.mkfifo(fifo)
    outcome = []

    def attempt():
        try:
            if how == "file_kind":
                outcome.append(skio.file_kind(fifo))
            else:
                skio.load(fifo, mmap_mode="r" if how == "mapped" else None)
        except Exception as exc:  # noqa: BLE001 - recorded and checked below
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # a writer lets the blocked open return
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
    (result,) = outcome
    assert isinstance(result, (CorruptFileError, ValueError)), result
    assert "pipe.skfk" in str(result) and "not a regular file" in str(result)
