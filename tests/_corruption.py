"""Corrupted, truncated and mixed-up saved indexes: the cases and how each ended.

Shared by ``tests/test_io.py`` (run in a child process through
``_isolation.run_isolated``) and ``reliability_report.py``. Every case ends in
one of:

- ``"refused"``: a :class:`~skfindkit.io.CorruptFileError` (or its subclass
  ``CorruptIndexError``) before anything was answered;
- ``"refused-other"``: another exception while loading (e.g. pickle's own
  errors on a broken opcode): not silent, but not our message;
- ``"identical"``: loaded and answers exactly as the original (a harmless
  byte, e.g. in pickle framing);
- ``"silent-wrong"``: loaded and answers differently -- a defect.
"""

import io
import pickle
import warnings

import numpy as np

from skfindkit.utils import _persist
from skfindkit.utils._persist import CorruptFileError, seal_state

BACKENDS = ("exact", "annoy", "nmslib", "hnswlib", "faiss-hnsw", "faiss-flat")


def clustered(n, d=16, n_clusters=12, seed=0):
    """Clustered float32 data on a low-dimensional subspace (neighbours mean something)."""
    rng = np.random.RandomState(seed)
    centers = rng.randn(n_clusters, 6) * 4
    Z = centers[rng.randint(n_clusters, size=n)] + rng.randn(n, 6)
    return (Z @ rng.randn(6, d) + 0.05 * rng.randn(n, d)).astype(np.float32)


def make_index(backend, metric="euclidean", seed=0, n=300, d=16):
    """A small fitted index of ``backend`` and queries from the same distribution."""
    from skfindkit import AnnoyIndex, ExactIndex, FaissIndex, HNSWIndex, NMSLibIndex

    make = {
        "exact": lambda: ExactIndex(n_neighbors=5, metric=metric),
        "annoy": lambda: AnnoyIndex(n_neighbors=5, metric=metric, n_trees=5, random_state=0),
        "nmslib": lambda: NMSLibIndex(n_neighbors=5, metric=metric),
        "hnswlib": lambda: HNSWIndex(n_neighbors=5, metric=metric, random_state=0),
        "faiss-hnsw": lambda: FaissIndex(n_neighbors=5, metric=metric),
        "faiss-flat": lambda: FaissIndex(n_neighbors=5, metric=metric, factory="Flat"),
    }[backend]
    X = clustered(n + 20, d=d, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = make().fit(X[:n], np.arange(n) % 3)
    return index, X[n:]


def _answers(index, Q):
    return index.kneighbors(Q)


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def outcome(load, reference, Q):
    """How loading ended (see the module docstring) and the error message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = load()
            got = _answers(obj, Q)
    except CorruptFileError as exc:
        return "refused", str(exc)
    except Exception as exc:  # noqa: BLE001 - every other error is counted, not hidden
        return "refused-other", f"{type(exc).__name__}: {exc}"
    return ("identical" if _same(got, reference) else "silent-wrong"), ""


def flip(data, position, bit=0):
    out = bytearray(data)
    out[position] ^= 1 << bit
    return bytes(out)


def corrupted_payloads(blob):
    """Truncated / bit-flipped / altered copies of a NativeBlob's payload (bytes, or a
    dict of arrays: hnswlib's state, the files of nmslib)."""
    payload = blob.payload
    if isinstance(payload, dict):  # a library's own state arrays (hnswlib)
        big = max((k for k, v in payload.items() if isinstance(v, np.ndarray)),
                  key=lambda k: payload[k].nbytes)
        flipped = payload[big].copy()
        flipped.reshape(-1).view(np.uint8)[flipped.nbytes // 2] ^= 1  # any shape
        dropped = "dim" if "dim" in payload else sorted(payload)[-1]  # a part missing
        return [{**payload, big: flipped}, {**payload, big: payload[big][:-1]},
                {k: v for k, v in payload.items() if k != dropped}]
    data = payload.tobytes()
    return [data[: len(data) // 2], data[:-1] + bytes([data[-1] ^ 1]), b"junk" + data[4:]]


def bitflip_cases(backend, n_positions=40, seed=0):
    """Flip one bit at ``n_positions`` places spread over a pickled index.

    Returns ``{"tried": n, outcome: count, ..., "examples": {outcome: message}}``.
    """
    index, Q = make_index(backend)
    reference = _answers(index, Q)
    data = pickle.dumps(index, protocol=5)
    rng = np.random.RandomState(seed)
    positions = np.unique(np.r_[
        np.linspace(0, len(data) - 1, n_positions // 2).astype(int),
        rng.randint(0, len(data), n_positions - n_positions // 2),
    ])
    counts = {"tried": 0, "examples": {}}
    for pos in positions:
        result, message = outcome(
            lambda p=pos: pickle.loads(flip(data, int(p), int(p) % 8)), reference, Q)
        counts["tried"] += 1
        counts[result] = counts.get(result, 0) + 1
        counts["examples"].setdefault(result, f"byte {pos}: {message}")
    return counts


def truncation_cases(backend):
    """Cut a pickled index at several lengths; every load must fail."""
    index, Q = make_index(backend)
    reference = _answers(index, Q)
    data = pickle.dumps(index, protocol=5)
    results = []
    for cut in (len(data) // 4, len(data) // 2, len(data) - 100, len(data) - 1):
        results.append(outcome(lambda c=cut: pickle.loads(data[:c]), reference, Q)[0])
    return results


def swapped_blob_case(backend):
    """The native bytes (or the stored data) of another index of the same backend."""
    index, Q = make_index(backend, seed=0)
    other, _ = make_index(backend, seed=1)
    reference = _answers(index, Q)
    state, foreign = index.__getstate__(), other.__getstate__()
    key = "_fit_X" if state.get("_index_blob") is None else "_index_blob"
    state[key] = foreign[key]

    def load():
        obj = type(index).__new__(type(index))
        obj.__setstate__(state)
        return obj

    return outcome(load, reference, Q)


def tampered_dims_case(backend, reseal):
    """``n_features_in_`` changed in the saved state (``reseal``: checksums recomputed).

    With ``reseal=False`` the checksum must catch it; with ``reseal=True`` (a
    state whose checksums were recomputed after the change) the native
    dimension checks must, before the native library is queried.
    """
    index, Q = make_index(backend)
    reference = _answers(index, Q)
    state = dict(index.__getstate__())
    state["n_features_in_"] = index.n_features_in_ + 3
    if reseal:
        state.pop("_checksums")
        state = seal_state(state)
    Q_tampered = np.hstack([Q, np.zeros((Q.shape[0], 3), np.float32)])

    def load():
        obj = type(index).__new__(type(index))
        obj.__setstate__(state)
        obj.kneighbors(Q_tampered)  # the query that aborted annoy before the fix
        return obj

    return outcome(load, reference, Q)


def foreign_dims_case(backend):
    """The native index of another dimension, with every checksum recomputed.

    Stored data and dimensions agree; only the native index does not: the
    native checks (annoy's ``f``, faiss's ``d``, hnswlib's and nmslib's
    dimension) must refuse it before the native library is queried.
    """
    index, Q = make_index(backend)
    reference = _answers(index, Q)
    state = dict(index.__getstate__())
    if state.get("_index_blob") is None:
        return "not-applicable", "no native index: rebuilt from the stored data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = type(index)(**index.get_params()).fit(clustered(300, d=12, seed=3))
    state["_index_blob"] = other.__getstate__()["_index_blob"]
    state.pop("_checksums")
    state = seal_state(state)

    def load():
        obj = type(index).__new__(type(index))
        obj.__setstate__(state)
        return obj

    return outcome(load, reference, Q)


def safe_file_bitflip_cases(backend, tmp_path, n_positions=30, seed=0):
    """Bit flips and truncations of a file written by ``skfindkit.io.save``."""
    import os

    from skfindkit import io as skio

    index, Q = make_index(backend)
    reference = _answers(index, Q)
    path = os.path.join(tmp_path, f"{backend}.skfk")
    skio.save(index, path)
    with open(path, "rb") as fh:
        data = fh.read()
    rng = np.random.RandomState(seed)
    positions = rng.randint(0, len(data), n_positions)
    counts = {"tried": 0, "examples": {}}
    bad = os.path.join(tmp_path, f"{backend}-bad.skfk")
    cases = [flip(data, int(p), int(p) % 8) for p in positions]
    cases += [data[:c] for c in (len(data) // 2, len(data) - 1)]
    for case in cases:
        with open(bad, "wb") as fh:
            fh.write(case)
        result, message = outcome(lambda: skio.load(bad), reference, Q)
        counts["tried"] += 1
        counts[result] = counts.get(result, 0) + 1
        counts["examples"].setdefault(result, message)
    return counts


def joblib_round_trip(backend):
    """A joblib dump + load answers identically."""
    import joblib

    index, Q = make_index(backend)
    buffer = io.BytesIO()
    joblib.dump(index, buffer)
    buffer.seek(0)
    return _same(_answers(joblib.load(buffer), Q), _answers(index, Q))


def resealed(state, **changes):
    """A sealed state with ``changes`` and every checksum recomputed (what an
    attacker can do: a checksum is not a signature); detached fields keep
    their recorded digest."""
    state = dict(state, **changes)
    record = state["_checksums"]
    fields = dict(record["fields"], **{k: _persist._digest(v) for k, v in changes.items()})
    state["_checksums"] = dict(record, fields=fields, all=_persist._combined(fields))
    return state


def save_state(cls, state, path):
    """Write ``state`` (a sealed state of an estimator of ``cls``) with ``skfindkit.io.save``:
    the file a tampered state makes, its file checksum recomputed by ``save``."""
    from skfindkit import io as skio

    obj = cls.__new__(cls)
    obj.__getstate__ = lambda: state
    skio.save(obj, path)
