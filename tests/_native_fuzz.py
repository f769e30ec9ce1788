"""Tampered native index bytes, every checksum recomputed: loaded and queried in a child.

A file whose checksums were recomputed after an edit (a checksum is not a
signature) reaches the native checks of its backend. :func:`variants` makes
seeded edits of a fitted index's sealed state -- random bytes of the native
blob, the backend's own header fields, the metric/dimension/count scalars of
the sealed metadata, truncations -- and :func:`load_and_query` (run in a child
process by the tests) loads each file with :func:`skfindkit.io.load` and
queries it. Each must end in a Python exception at load or in answers of the
right shape; a signal kills the child (``_isolation.ChildCrashed``).
"""

import contextlib
import os
import warnings

import numpy as np

from . import _corruption

BACKENDS = ("annoy", "nmslib", "hnswlib", "faiss-hnsw", "faiss-flat", "faiss-ivf", "faiss-pca",
            "annoy-compacted", "nmslib-compacted", "faiss-hnsw-compacted")
# a third of the items removed and compacted away: the native structure holds fewer
# items than ids, under an id map (annoy, nmslib, faiss)
_COMPACTED = "-compacted"
_FAISS_FACTORIES = {"faiss-ivf": "IVF4,Flat", "faiss-pca": "PCA4,IVF4,Flat"}
_OTHER_METRIC = {"euclidean": ["inner_product", "cosine"], "cosine": ["inner_product", "euclidean"],
                 "inner_product": ["euclidean", "cosine"]}


def fitted(backend, n=120, d=8, metric="euclidean"):
    """A small fitted index of ``backend`` and queries."""
    if backend.endswith(_COMPACTED):
        index, Q = fitted(backend[:-len(_COMPACTED)], n, d, metric)
        return index.remove(np.arange(0, n, 3)).compact(), Q
    if backend in _FAISS_FACTORIES:
        from skfindkit import FaissIndex

        X = _corruption.clustered(n + 10, d=d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return FaissIndex(n_neighbors=5, metric=metric, factory=_FAISS_FACTORIES[backend],
                              nprobe=2).fit(X[:n]), X[n:]
    return _corruption.make_index(backend, metric=metric, n=n, d=d)


def _edit_bytes(array, rng, n_edits, lo=0, hi=None):
    out = np.array(array, copy=True)
    raw = out.reshape(-1).view(np.uint8)
    hi = raw.size if hi is None else min(hi, raw.size)
    if hi <= lo:
        return out
    for pos in rng.randint(lo, hi, n_edits):
        raw[pos] = rng.randint(256)
    return out


def _int_edit(rng, value):
    return int(rng.choice([0, -1, 1, value + 1, value - 1, 2 * value + 1, 1 << 31, 1 << 40,
                           int(rng.randint(1 << 31))]))


def _payload_variant(payload, rng, kind):
    """An edited copy of a native payload (bytes array, or dict of them / of fields)."""
    if isinstance(payload, dict):
        arrays = sorted(k for k, v in payload.items() if isinstance(v, np.ndarray))
        scalars = sorted(k for k, v in payload.items()
                         if isinstance(v, (int, np.integer)) and not isinstance(v, bool))
        if kind == "header" and scalars:
            key = scalars[rng.randint(len(scalars))]
            return {**payload, key: _int_edit(rng, int(payload[key]))}
        key = arrays[rng.randint(len(arrays))]
        if kind == "truncate":
            return {**payload, key: payload[key][:rng.randint(payload[key].size)]}
        hi = 64 if kind == "header" else None
        return {**payload, key: _edit_bytes(payload[key], rng, rng.randint(1, 5), hi=hi)}
    if kind == "truncate":
        return payload[:rng.randint(payload.size)].copy()
    if kind == "header":  # a 4- or 8-byte field near the start set to a wild value
        out = payload.copy()
        pos = 4 * rng.randint(min(32, payload.size // 8))
        out[pos:pos + 8] = np.frombuffer(np.int64(_int_edit(rng, 0)).tobytes(), np.uint8)
        return out
    return _edit_bytes(payload, rng, rng.randint(1, 5))


def variants(index, n_variants, seed=0):
    """``n_variants`` resealed states of ``index``: (description, state)."""
    from skfindkit.utils._persist import NativeBlob

    state = index.__getstate__()
    blob = state["_index_blob"]
    rng = np.random.RandomState(seed)
    kinds = ["bytes", "header", "scalar", "truncate"]
    out = []
    for i in range(n_variants):
        kind = kinds[i % len(kinds)]
        if kind == "scalar":
            name = ["metric_", "n_features_in_", "n_samples_fit_"][(i // 4) % 3]
            if name == "metric_":
                options = [m for m in _OTHER_METRIC[index.metric_]
                           if m in type(index).supported_metrics]
                value = options[rng.randint(len(options))]
            else:
                value = _int_edit(rng, getattr(index, name))
            changes = {name: value}
        else:
            changes = {"_index_blob": NativeBlob(blob.kind, _payload_variant(blob.payload, rng,
                                                                             kind))}
        out.append((f"{kind} {sorted(changes)}", _corruption.resealed(state, **changes)))
    return out


def write_variants(backend, folder, n_variants, seed=0):
    """Files of the tampered variants of a fitted ``backend`` index: [(description, path)]."""
    index, Q = fitted(backend)
    paths = []
    for i, (what, state) in enumerate(variants(index, n_variants, seed)):
        path = os.path.join(folder, f"{backend}-{i}.skfk")
        _corruption.save_state(type(index), state, path)
        paths.append((what, path))
    return paths, Q


#: address space a child may take beyond what it holds: a tampered length field that makes
#: the native library allocate (and zero) gigabytes fails fast instead of paging for minutes
_HEADROOM = 2 << 30


@contextlib.contextmanager
def _bounded_memory(headroom=_HEADROOM):
    """Cap this process's address space at its current size plus ``headroom`` (restored after)."""
    try:
        import resource
    except ImportError:  # not on POSIX: unbounded
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = size + headroom if hard == resource.RLIM_INFINITY else min(size + headroom, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def load_and_query(path, Q):
    """How loading and querying ``path`` ended: ("refused", message) or ("answered", problem).

    Runs under :func:`_bounded_memory`: an allocation the tampered file asks for
    beyond it is a ``MemoryError`` (a refusal), never a crash.
    """
    with _bounded_memory():
        return _load_and_query(path, Q)


def _load_and_query(path, Q):
    from skfindkit import io as skio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            index = skio.load(path)
    except Exception as exc:  # noqa: BLE001 - any clear Python error at load is a refusal
        return "refused", f"{type(exc).__name__}: {exc}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dist, ind = index.kneighbors(Q)
    except Exception as exc:  # noqa: BLE001
        return "query-error", f"{type(exc).__name__}: {exc}"
    k = min(index.n_neighbors, index.n_samples_fit_)
    ok = (dist.shape == ind.shape == (len(Q), k)
          and ((ind >= -1) & (ind < index.n_samples_fit_)).all())
    return ("answered", "") if ok else ("bad-shape", f"{dist.shape} {ind.shape}")


def _far_link_annoy(index, payload):
    out = payload.copy()
    node = 16 + 4 * index.n_features_in_
    ints = out.reshape(-1, node).view("<i4")
    inner = np.flatnonzero(ints[index.n_samples_fit_:, 0] > ints.shape[1])  # split nodes
    row = index.n_samples_fit_ + inner[0]
    ints[row, 2] = ints.shape[0] + 10_000  # euclidean layout: children at byte 8
    return out


def _far_link_hnswlib(index, state):
    level0 = state["data_level0"].copy()
    per = int(state["size_data_per_element"])
    level0[4:8].view("<u4")[0] = 10_000_000  # item 0's first level-0 link
    assert per > 8
    return {**state, "data_level0": level0}


def _far_link_nmslib(index, payload):
    main = payload["file"].copy()
    d = index.n_features_in_
    at = 68 + 16 + 4 * d + 4  # item 0's first level-0 link
    main[at:at + 4] = np.frombuffer(np.int32(10_000_000).tobytes(), np.uint8)
    return {**payload, "file": main}


def _far_link_faiss(index, payload):
    import faiss

    loaded = faiss.deserialize_index(np.array(payload))
    hnsw = loaded.hnsw
    faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())[3] = 10_000_000
    return faiss.serialize_index(loaded)


FAR_LINK = {"annoy": _far_link_annoy, "hnswlib": _far_link_hnswlib, "nmslib": _far_link_nmslib,
            "faiss-hnsw": _far_link_faiss}


def write_far_link(backend, folder):
    """A file whose graph links one item to an id far beyond the items (resealed)."""
    from skfindkit.utils._persist import NativeBlob

    index, Q = fitted(backend)
    state = index.__getstate__()
    blob = state["_index_blob"]
    payload = FAR_LINK[backend](index, blob.payload)
    path = os.path.join(folder, f"{backend}-far-link.skfk")
    _corruption.save_state(type(index), _corruption.resealed(
        state, _index_blob=NativeBlob(blob.kind, payload)), path)
    return path, Q


#: hnswlib state scalars it trusts as they are, and a tampered value of each
HNSWLIB_SCALAR_EDITS = {
    "index_inited": False, "ep_added": False, "has_deletions": True, "normalize": True,
    "num_threads": 10**9, "ef": 0, "ef_construction": 0,
}


def write_hnswlib_scalar_edit(field, folder):
    """A file whose hnswlib state has one scalar edited (resealed)."""
    from skfindkit.utils._persist import NativeBlob

    index, Q = fitted("hnswlib")
    state = index.__getstate__()
    blob = state["_index_blob"]
    payload = dict(blob.payload, **{field: HNSWLIB_SCALAR_EDITS[field]})
    path = os.path.join(folder, f"hnswlib-{field}.skfk")
    _corruption.save_state(type(index), _corruption.resealed(
        state, _index_blob=NativeBlob(blob.kind, payload)), path)
    return path, Q
