"""Any faiss index built from a factory string (HNSW, IVF, PQ, Flat...)."""

import re
import warnings
from contextlib import contextmanager
from numbers import Integral

import numpy as np

from ..utils._optional import Requirement
from ..utils._persist import CorruptIndexError
from ..utils._sklearn_compat import Interval
from ._ann_utils import C_INT_MAX, native_seed
from ._faiss_checks import loaded_index_problem
from ._approximate import ApproximateIndex, NativeIdMap

__all__ = ["FaissIndex"]

_MIN_POINTS_PER_LIST = 39  # below this, faiss's k-means warns that it is starved


def _faiss():
    return FaissIndex._requires.load()


@contextmanager
def _omp_threads(faiss, n_threads):
    """Run faiss with ``n_threads`` OpenMP threads, restoring the process-wide value."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n_threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def fit_factory(factory, n_samples):
    """The factory string with its k-means sizes clamped to what ``n_samples`` trains.

    ``IVF<nlist>`` is reduced to ``n_samples // 39`` lists (at least 1) and
    the ``<nbits>`` of ``PQ<M>[x<nbits>]`` to ``floor(log2(n_samples / 39))``
    (at least 3: faiss's table kernels need 8 centroids or more), so that
    every k-means has 39 points per centroid where the data allow. Fast-scan
    codes (``PQ<M>x4fs``) have exactly 4 bits and are left as they are.
    """

    def ivf(match):
        nlist = int(match.group(1))
        return f"IVF{min(nlist, max(1, n_samples // _MIN_POINTS_PER_LIST))}"

    def pq(match):
        if match.group(3):  # fast-scan: 4 bits, nothing to clamp
            return match.group(0)
        nbits = int(match.group(2) or 8)
        fitted = min(nbits, max(3, int(np.log2(max(n_samples / _MIN_POINTS_PER_LIST, 2)))))
        return f"PQ{match.group(1)}" + (f"x{fitted}" if match.group(2) or fitted != nbits else "")

    out = re.sub(r"IVF(\d+)", ivf, factory)
    return re.sub(r"(?<![A-Za-z])PQ(\d+)(?:x(\d+))?(fs)?", pq, out)


class FaissIndex(NativeIdMap, ApproximateIndex):
    """Nearest neighbours with any faiss index described by a factory string.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours of each query.
    metric : {"euclidean", "cosine", "inner_product"}, default="euclidean"
        Distance, reported in :class:`~skfindkit.ExactIndex`'s units. Cosine
        indexes unit rows with ``METRIC_L2`` (so self-distances are exactly
        0); inner product uses ``METRIC_INNER_PRODUCT``.
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.
    n_jobs : int, default=None
        OpenMP threads for training, adding and searching. faiss's
        process-wide thread count is restored after every call. ``None``
        means 1 unless in a :func:`joblib.parallel_config` context. At most
        :func:`joblib.cpu_count` threads.
    factory : str, default="HNSW32"
        faiss index factory string, e.g. ``"Flat"``, ``"HNSW32"``,
        ``"IVF1024,Flat"``, ``"IVF1024,PQ16"``. When the data is too small to
        train it, the k-means sizes are reduced (``IVF<nlist>`` to
        ``n_samples // 39`` lists, ``PQ`` codes to ``log2(n_samples / 39)``
        bits)
        with a warning; the string actually used is ``factory_``.
    nprobe : int, default=None
        faiss's ``nprobe`` (IVF indexes): inverted lists visited per query.
        None keeps faiss's default (1).
    ef_search : int, default=None
        faiss's ``efSearch`` (HNSW indexes and HNSW-quantized IVF):
        candidate list size while querying. None keeps faiss's default (16).
    random_state : int, RandomState instance or None, default=None
        faiss's k-means (IVF centroids, PQ codebooks).
    refine : int, default=None
        Its pairing with faiss's 4-bit fast-scan codes is the fastest measured there at
        recall@10 >= 0.95: one dimension per sub-quantizer
        (``factory="IVF512,PQ128x4fs"`` for 128 features, ``nprobe=3..12``,
        ``refine=2..3``), or after a PCA where the data's intrinsic dimension
        is low (``"PCA32,IVF256,PQ32x4fs"``, ``refine=5``). The candidates'
        float32 distances are computed by faiss in place; only those that
        can still be among the nearest get exact float64 distances.
    keep_vectors : bool, default=True
        False only for factories that store the vectors exactly (``"Flat"``,
        ``"IVF<n>,Flat"``, ``"HNSW<M>"``); lossy codes need the copy (an
        error says so).
    max_tombstone_share : float, default=None

    Attributes
    ----------
    factory_ : str
        The factory string used after fitting the k-means sizes to the data.
    metric_ : str
        The metric the index was fitted with; it answers every query
        (see :class:`~skfindkit.indexes.BaseIndex`).
    n_samples_fit_ : int
        Number of indexed items.
    n_features_in_ : int
        Number of features of the indexed items.

    Notes
    -----
    Items are added natively by :meth:`partial_fit` (``index.add``); trained
    structures (IVF centroids, PQ codebooks) are not retrained. An index
    loaded with ``joblib.load`` or :func:`skfindkit.io.load` reads its arrays
    in place from the checked bytes (no second copy); its first
    :meth:`partial_fit` copies them into arrays faiss can grow (a
    memory-mapped ``joblib.load(..., mmap_mode=...)`` is always copied). Distances of
    indexes whose codes are lossy (PQ, SQ, transforms) or computed with BLAS
    (``"Flat"``) are recomputed exactly for the returned ids.

    A loaded index is checked before its first query: dimension, metric,
    item count and training of the index and its nested storage/quantizer,
    HNSW levels and links, inverted lists' ids. faiss's own reader checks the
    rest of a file; it allocates a vector's declared length (up to 2^40
    elements) before reading it, so a tampered file can make a load allocate
    much more memory than the file holds (``docs/security.md``).

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import FaissIndex
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> index = FaissIndex(n_neighbors=2, factory="HNSW32").fit(X)
    >>> dist, ind = index.kneighbors([[0.1, 0.0]])
    >>> ind
    array([[0, 1]])
    >>> np.round(dist, 2)
    array([[0.1, 0.9]])
    """

    _backend = "faiss"
    _cli_name = "faiss"
    _requires = Requirement(library="faiss-cpu", import_name="faiss", extra="faiss")
    supported_metrics = ("euclidean", "cosine", "inner_product")

    @property
    def _native_distance(self):
        if not _native_distances_exact(_faiss(), self._index):
            return "recompute"  # lossy codes or BLAS: recomputed for the returned ids
        return "dot" if self.metric_ == "inner_product" else "sqeuclidean"

    def _is_exact(self):
        # the fitted factory answers queries, whatever set_params says later
        return getattr(self, "factory_", self._fitted("factory")).replace(" ", "") == "Flat"

    def _flat_scan_unit(self):
        # faiss's float32 flat scan: proven row by row, exact search where it cannot be
        return "dot" if self.metric_ == "inner_product" else "sqeuclidean"

    _parameter_constraints: dict = {
        **ApproximateIndex._parameter_constraints,
        "factory": [str],
        "nprobe": [None, Interval(Integral, 1, C_INT_MAX, closed="both")],
        "ef_search": [None, Interval(Integral, 1, C_INT_MAX, closed="both")],
    }
    _query_time_params = ("nprobe", "ef_search")

    def __init__(
        self,
        n_neighbors=5,
        *,
        metric="euclidean",
        mode="distance",
        n_jobs=None,
        factory="HNSW32",
        nprobe=None,
        ef_search=None,
        random_state=None,
        refine=None,
        keep_vectors=True,
        max_tombstone_share=None,
    ):
        super().__init__(n_neighbors=n_neighbors, metric=metric, mode=mode, n_jobs=n_jobs,
                         random_state=random_state, refine=refine, keep_vectors=keep_vectors,
                         max_tombstone_share=max_tombstone_share)
        self.factory = factory
        self.nprobe = nprobe
        self.ef_search = ef_search

    def _build(self, X):
        faiss = _faiss()
        factory = self._fitted("factory")
        self.factory_ = fit_factory(factory, X.shape[0])
        if self.factory_ != factory:
            warnings.warn(
                f"FaissIndex: factory={factory!r} needs more training points than "
                f"the {X.shape[0]} given; using {self.factory_!r} instead.",
                UserWarning,
            )
        ip = self.metric_ == "inner_product"
        try:
            index = faiss.index_factory(
                X.shape[1], self.factory_, faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
            )
        except RuntimeError as exc:
            raise ValueError(
                f"FaissIndex: faiss cannot build factory={factory!r} for "
                f"{X.shape[1]} features: {str(exc).strip().splitlines()[-1]}"
            ) from exc
        if not self._keeps_vectors():
            _read_back_vectors(faiss, index, self.factory_)
        seed = native_seed(self._fitted("random_state"))
        for part in _trained_parts(faiss, index):
            part.cp.seed = seed
        with _omp_threads(faiss, self._n_threads()):
            if not index.is_trained:
                try:
                    index.train(X)
                except RuntimeError as exc:
                    raise ValueError(
                        f"FaissIndex: faiss cannot train factory={self.factory_!r} on "
                        f"{X.shape[0]} samples: {_faiss_message(exc)}"
                    ) from exc
            index.add(X)
        self._set_search_params(index)  # fails early on a parameter the index lacks
        return index

    def _set_search_params(self, index):
        space = _faiss().ParameterSpace()
        for name, native_name in (("nprobe", "nprobe"), ("ef_search", "efSearch")):
            value = getattr(self, name)
            if value is None:
                continue
            if native_name == "efSearch":  # faiss allocates ef slots: more than the items is moot
                value = min(value, max(index.ntotal, 1))
            try:
                space.set_index_parameter(index, native_name, value)
            except RuntimeError as exc:
                raise ValueError(
                    f"FaissIndex: {name}={getattr(self, name)} does not apply to factory="
                    f"{self._fitted('factory')!r}; leave {name}=None for this index."
                ) from exc

    _transient_attrs = ("_loaded_from",)

    def _own_arrays(self):
        """A zero-copy loaded index's arrays are views that add/remove cannot resize:
        read it again into memory of its own."""
        if getattr(self, "_loaded_from", None) is not None:
            faiss = _faiss()
            self._index = faiss.read_index(_buffer_reader(faiss, self._loaded_from))
            self._loaded_from = None

    def _add(self, X):
        faiss = _faiss()
        self._own_arrays()
        with _omp_threads(faiss, self._n_threads()):
            self._index.add(X)

    def _query_params(self):
        return {"nprobe": self.nprobe, "ef_search": self.ef_search}

    def _apply_query_params(self):
        self._set_search_params(self._index)  # query-time knobs: no rebuild needed

    def _search(self, X, k):
        faiss = _faiss()
        with _omp_threads(faiss, self._n_threads()):
            try:
                dist, ind = self._index.search(X, k)
                return dist, self._to_ids(ind)
            except RuntimeError as exc:  # a faiss assertion (e.g. PQ<M>x2 with 2 dims a code)
                raise ValueError(
                    f"FaissIndex: faiss cannot search factory={self.factory_!r}: "
                    f"{_faiss_message(exc)}. Choose another factory (e.g. more bits per code)."
                ) from None

    def _candidate_scorer(self):
        if not self._keeps_vectors():
            return None  # the rows are in the native index: numpy reads them back
        scores = _stored_rows_scorer(_faiss(), self._fit_X, self.metric_)
        if self.metric_ == "inner_product":
            return scores, None  # products' errors depend on the norms: best 2k kept
        # float32 sum of d squared float32 differences (the exact step squares
        # the same differences): relative error below (d + 2) * 2**-24
        return scores, (self._fit_X.shape[1] + 2) * 2.0**-24

    def _get_vectors(self, ids):
        return self._native_rows(
            ids, lambda pos: self._index.reconstruct_batch(np.asarray(pos, dtype=np.int64)))

    def _compact(self):
        """Flat and IVF-Flat: faiss's ``remove_ids`` (the others keep their order, as
        the id map says; IVF keeps its trained centroids); the other factories are
        rebuilt (trained again, same ``random_state``) from the live rows."""
        faiss = _faiss()
        ivf = isinstance(faiss.downcast_index(self._index), faiss.IndexIVFFlat)
        if not (self._is_exact() or ivf):
            return self._rebuild_native()
        self._own_arrays()
        native = faiss.downcast_index(self._index)
        held = self._held_ids()
        gone = np.flatnonzero(self._removed_mask()[held])
        if ivf:  # the direct map (keep_vectors=False) is rebuilt from the lists below
            direct = native.direct_map.type
            native.set_direct_map_type(faiss.DirectMap.NoMap)
        native.remove_ids(faiss.IDSelectorBatch(gone.astype(np.int64)))
        if ivf:
            _renumber_lists(faiss, native, np.delete(np.arange(held.size), gone))
            native.set_direct_map_type(direct)
        if self._keeps_vectors():
            self._erase_removed()
        self._install_native(self._index, np.delete(held, gone))

    def _serialize(self):
        return _write_to_buffer(_faiss(), self._index)

    def _deserialize(self, payload):
        faiss = _faiss()
        if not _owns_memory(payload):
            return faiss.read_index(_buffer_reader(faiss, payload))
        # zero copy: the index's large arrays stay views of the (checked) payload,
        # which the index keeps alive; partial_fit first makes them its own
        self._loaded_from = payload
        return faiss.read_index(faiss.ZeroCopyIOReader(faiss.swig_ptr(payload), payload.size))

    def _check_loaded_index(self, index):
        """The loaded index against the saved state, walked in numpy (``_faiss_checks``)."""
        faiss = _faiss()
        metric = faiss.METRIC_INNER_PRODUCT if self.metric_ == "inner_product" else faiss.METRIC_L2
        problem = loaded_index_problem(faiss, index, self.n_features_in_, self._n_native(),
                                       metric)
        if problem:
            raise CorruptIndexError(
                f"FaissIndex: the faiss index does not match the saved state ({problem}); "
                "it was not queried."
            )

    def _vectors_in_native(self):
        return _raw_vectors(_faiss(), self._index)

    def _vectors_from_index(self, index):
        faiss = _faiss()
        if not _raw_vectors(faiss, index):
            raise self._no_vectors_error()
        flat = faiss.downcast_index(getattr(faiss.downcast_index(index), "storage", index))
        if isinstance(flat, faiss.IndexFlat):  # Flat and HNSW-Flat: one array, copied at once
            # (reconstruct_n goes vector by vector: 5x slower on 100k x 128)
            rows = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d)
            return self._rows_by_id(rows.reshape(flat.ntotal, flat.d).copy())
        # IVF-Flat: rows live in their lists
        return self._rows_by_id(index.reconstruct_n(0, index.ntotal))

    def _native_shape(self, index):
        return index.ntotal, index.d


def _stored_rows_scorer(faiss, data, metric):
    """``refine``'s first step with faiss's kernels: float32 scores (larger is
    nearer) of candidate ids, reading the stored rows in place (numpy would
    gather a copy of every candidate row first); ``-inf`` for ``-1`` ids."""
    kernel = (faiss.fvec_inner_products_by_idx if metric == "inner_product"
              else faiss.fvec_L2sqr_by_idx)

    def scores(queries, cand):
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        cand = np.ascontiguousarray(cand, dtype=np.int64)
        out = np.empty(cand.shape, dtype=np.float32)
        kernel(faiss.swig_ptr(out), faiss.swig_ptr(queries), faiss.swig_ptr(data),
               faiss.swig_ptr(cand), data.shape[1], cand.shape[0], cand.shape[1])
        if metric != "inner_product":
            np.negative(out, out=out)  # squared distance: smaller is nearer
        return out

    return scores


def _renumber_lists(faiss, ivf, kept):
    """After ``remove_ids``, an IVF's lists still name the old positions ``kept``:
    renumber them 0, 1, ... (what ``add`` continues from, and the id map's order)."""
    lists = ivf.invlists
    for number in range(ivf.nlist):
        size = lists.list_size(number)
        if size:
            ids = faiss.rev_swig_ptr(lists.get_ids(number), size)
            ids[:] = np.searchsorted(kept, ids)


def _trained_parts(faiss, index):
    """The k-means-trained components of an index (whose ``cp.seed`` is set)."""
    index = faiss.downcast_index(index)
    parts = []
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        parts.append(ivf)
        ivf = faiss.downcast_index(ivf)
        index = ivf
    if hasattr(index, "pq"):
        parts.append(index.pq)
    return parts


def _read_back_vectors(faiss, index, factory):
    """Make ``reconstruct`` return the indexed rows exactly, or refuse ``keep_vectors=False``."""
    if not isinstance(faiss.downcast_index(index),
                      (faiss.IndexFlat, faiss.IndexHNSWFlat, faiss.IndexIVFFlat)):
        raise ValueError(
            f"FaissIndex: keep_vectors=False needs a factory that stores the vectors "
            f"exactly ('Flat', 'IVF<n>,Flat', 'HNSW<M>'); factory={factory!r} stores lossy "
            "codes, so the exact features (kneighbors(X=None), refine, exact completion) "
            "need the copy: use keep_vectors=True."
        )
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:  # ids -> list positions, kept up to date by add
        ivf.set_direct_map_type(faiss.DirectMap.Array)


def _write_to_buffer(faiss, index):
    """``write_index`` straight into one numpy buffer: the only copy of the bytes.

    The buffer is allocated for an upper estimate of the size (pages that
    are never written are never touched, so cost nothing) and grown only if
    the estimate was short. faiss's ``serialize_index`` grows a vector and
    copies it again; writing to a file first costs a file write and a read.
    """
    try:
        buffer = np.empty(_size_hint(faiss, index), dtype=np.uint8)
    except MemoryError:  # strict overcommit: start small and grow
        buffer = np.empty(1 << 26, dtype=np.uint8)
    pos = 0

    def write(piece):
        nonlocal buffer, pos
        size = len(piece)
        if pos + size > buffer.size:
            grown = np.empty(max(2 * buffer.size, pos + size), dtype=np.uint8)
            grown[:pos] = buffer[:pos]
            buffer = grown
        buffer[pos:pos + size] = np.frombuffer(piece, dtype=np.uint8)
        pos += size
        return size

    writer = faiss.PyCallbackIOWriter(write, 1 << 22)
    faiss.write_index(index, writer)
    del writer  # flushes its last piece
    return buffer[:pos]


def _owns_memory(array):
    """Whether ``array`` is private, writable process memory (no file mapping).

    A loaded index may keep views of such a buffer; never of a mapped file
    (``joblib.load(..., mmap_mode=...)``), which may change or shrink under it.
    """
    while isinstance(array, np.ndarray):
        if isinstance(array, np.memmap) or not array.flags.writeable:
            return False
        array = array.base
    return array is None or isinstance(array, (bytes, bytearray))


def _size_hint(faiss, index):
    """An upper estimate of ``write_index``'s size: float32 rows plus ids for every
    item (codes are never larger), HNSW links, IVF centroids, 4 MiB for the rest."""
    n = index.ntotal
    hint = n * (4 * index.d + 16) + (1 << 22)
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if hnsw is not None:
        hint += 4 * hnsw.neighbors.size() + 12 * n  # links, levels, offsets
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        hint += 4 * ivf.nlist * ivf.d
    return hint


def _buffer_reader(faiss, payload):
    """A faiss reader of ``payload`` in 4 MiB pieces: faiss copies the bytes into
    its own arrays (its zero-copy reader would keep views of ``payload``, which
    ``add`` cannot grow)."""
    view, pos = memoryview(payload).cast("B"), 0

    def read(n):
        nonlocal pos
        piece = view[pos:pos + n].tobytes()
        pos += len(piece)
        return piece

    return faiss.PyCallbackIOReader(read, 1 << 22)


def _raw_vectors(faiss, index):
    """Whether the index stores the added float32 rows unchanged (Flat codes)."""
    index = faiss.downcast_index(index)
    return type(index) in (faiss.IndexFlat, faiss.IndexFlatL2, faiss.IndexFlatIP,
                           faiss.IndexHNSWFlat, faiss.IndexIVFFlat)


def _native_distances_exact(faiss, index):
    """Whether faiss computes exact per-pair distances (uncompressed codes, no BLAS)."""
    return isinstance(faiss.downcast_index(index), (faiss.IndexHNSWFlat, faiss.IndexIVFFlat))


def _faiss_message(exc):
    """The readable part of a faiss C++ error ("Error: ..." without the source location)."""
    text = str(exc).strip().splitlines()[-1]
    return text[text.find("Error: "):] if "Error: " in text else text
