"""Graph indexes (HNSW, SW-graph) and sequential search backed by nmslib."""

from numbers import Integral

import numpy as np

from ..utils._optional import Requirement
from ..utils._sklearn_compat import Interval, StrOptions
from ..utils._native_bytes import file_parts, load_from_bytes, save_to_bytes
from ..utils._persist import CorruptIndexError
from ._ann_utils import C_INT_MAX, stack_padded
from ._approximate import ApproximateIndex, NativeIdMap

__all__ = ["NMSLibIndex"]

# metric -> nmslib space; cosine searches unit rows with l2 so that
# identical items are at distance exactly 0
_SPACES = {"euclidean": "l2", "cosine": "l2", "inner_product": "negdotprod"}
# nmslib's optimized hnsw returns squared L2; the other methods return L2
_SQUARED_L2 = {"hnsw"}


def _nmslib():
    return NMSLibIndex._requires.load()


class NMSLibIndex(NativeIdMap, ApproximateIndex):
    """Approximate nearest neighbours with nmslib.

    nmslib cannot add items to a built index: :meth:`partial_fit` rebuilds it
    from all items. nmslib's Python API has no seed, so builds are not
    bit-reproducible; PyPI's nmslib wheel is compiled without SIMD (build it
    from source for full speed).

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours of each query.
    metric : {"euclidean", "cosine", "inner_product"}, default="euclidean"
        Distance, reported in :class:`~skfindkit.ExactIndex`'s units (the
        squared L2 of nmslib's hnsw is converted; cosine searches unit rows;
        inner product uses nmslib's ``negdotprod`` space).
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.
    n_jobs : int, default=None
        Threads for building and for ``knnQueryBatch``. ``None`` means 1
        unless in a :func:`joblib.parallel_config` context. At most
        :func:`joblib.cpu_count` threads.
    method : {"hnsw", "sw-graph", "seq_search"}, default="hnsw"
        nmslib's method: the HNSW graph, the (flat) small-world graph, or
        exhaustive sequential search (exact).
    M : int, default=16
        nmslib's ``M`` for ``"hnsw"``, ``NN`` for ``"sw-graph"``: graph
        out-degree. Ignored by ``"seq_search"``.
    ef_construction : int, default=200
        nmslib's ``efConstruction``: candidate list size while building the
        graph.
    ef_search : int, default=50
        nmslib's ``efSearch``: candidate list size while querying.
    refine : int, default=None
    max_tombstone_share : float, default=None

    Attributes
    ----------
    metric_ : str
        The metric the index was fitted with; it answers every query
        (see :class:`~skfindkit.indexes.BaseIndex`).
    n_samples_fit_ : int
        Number of indexed items.
    n_features_in_ : int
        Number of features of the indexed items.

    See Also
    --------
    HNSWIndex : HNSW through hnswlib (seedable, grows natively).

    Notes
    -----
    nmslib saves its index to, and loads it from, files only: pickling or
    :func:`skfindkit.io.save` copies that file into the one saved file, and
    loading writes it back to a temporary file (in ``/dev/shm`` where there
    is one) for nmslib to load. Saving + loading therefore costs about
    2.3-3.0x nmslib's own save + load at 100k x 128
    (``benchmarks/results/persistence.md``), close to the cost of those file
    copies alone.

    Before nmslib reads them, the saved files are checked in numpy: the data
    file record by record, and, for ``method="hnsw"``, the whole optimized
    graph (header fields, each item's row equal to the data file's, every
    link below the number of items and pointing to an item of the level it
    is on). For ``method="sw-graph"`` skfindkit checks the data file only;
    the graph is a text file whose links nmslib's own reader checks
    (``docs/security.md``).

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import NMSLibIndex
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> index = NMSLibIndex(n_neighbors=2).fit(X)
    >>> dist, ind = index.kneighbors([[0.1, 0.0]])
    >>> ind
    array([[0, 1]])
    >>> np.round(dist, 2)
    array([[0.1, 0.9]])
    """

    _backend = "nmslib"
    _cli_name = "nmslib"
    _requires = Requirement(library="nmslib", import_name="nmslib", extra="nmslib")
    supported_metrics = ("euclidean", "cosine", "inner_product")

    @property
    def _native_distance(self):
        if self.metric_ == "inner_product":
            return "negdot"  # negdotprod = -<x, y>
        return "sqeuclidean" if self._fitted("method") in _SQUARED_L2 else "euclidean"

    def _is_exact(self):
        return self._fitted("method") == "seq_search"

    _parameter_constraints: dict = {
        **ApproximateIndex._parameter_constraints,
        "method": [StrOptions({"hnsw", "sw-graph", "seq_search"})],
        "M": [Interval(Integral, 2, C_INT_MAX, closed="both")],
        "ef_construction": [Interval(Integral, 1, C_INT_MAX, closed="both")],
        "ef_search": [Interval(Integral, 1, C_INT_MAX, closed="both")],
    }
    _query_time_params = ("ef_search",)

    def __init__(
        self,
        n_neighbors=5,
        *,
        metric="euclidean",
        mode="distance",
        n_jobs=None,
        method="hnsw",
        M=16,
        ef_construction=200,
        ef_search=50,
        refine=None,
        max_tombstone_share=None,
    ):
        super().__init__(n_neighbors=n_neighbors, metric=metric, mode=mode, n_jobs=n_jobs,
                         refine=refine, max_tombstone_share=max_tombstone_share)
        self.method = method
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search

    def _init(self):
        return _nmslib().init(method=self._fitted("method"), space=_SPACES[self.metric_])

    def _index_params(self):
        threads = {"indexThreadQty": self._n_threads()}
        method, M, ef = (self._fitted(p) for p in ("method", "M", "ef_construction"))
        if method == "hnsw":
            return {"M": M, "efConstruction": ef, "post": 0, **threads}
        if method == "sw-graph":
            return {"NN": M, "efConstruction": ef, **threads}
        return {}

    def _build(self, X):
        index = self._init()
        index.addDataPointBatch(X)
        index.createIndex(self._index_params(), print_progress=False)
        return index

    def _query_params(self):
        return {} if self._fitted("method") == "seq_search" else {"ef_search": self.ef_search}

    def _apply_query_params(self):
        if self._query_params():  # a query-time knob: no rebuild needed
            self._index.setQueryTimeParams({"efSearch": self.ef_search})

    def _search(self, X, k):
        results = self._index.knnQueryBatch(X, k=k, num_threads=self._n_threads())
        dist, ind = stack_padded([r[0] for r in results], [r[1] for r in results], k)
        return dist, self._to_ids(ind)

    def _add(self, X):
        """nmslib cannot grow: rebuild from the live rows."""
        self._rebuild_native(X)

    # the bytes a loaded index came from (see _serialize)
    _transient_attrs = ("_loaded_from",)

    def _serialize(self):
        if self._fitted("method") == "seq_search":  # nothing to save: rebuilt on unpickling
            return None
        loaded = getattr(self, "_loaded_from", None)
        if loaded is not None and loaded[0] is self._index:
            # nmslib saves a loaded hnsw index without its graph (a file that
            # crashes on load): an unchanged loaded index is saved as it was read
            return loaded[1]
        return save_to_bytes(
            lambda path: self._index.saveIndex(path, save_data=True), suffixes=(".dat",)
        )

    def _deserialize(self, payload):
        index = self._init()
        load_from_bytes(
            payload, lambda path: index.loadIndex(path, load_data=True), suffixes=(".dat",)
        )
        self._loaded_from = (index, payload)
        return index

    def _vectors_in_native(self):
        return self._fitted("method") != "seq_search"  # saved with its data

    def _check_native_bytes(self, payload):
        """The data file's records, then hnsw's graph file, in numpy (see Notes)."""
        X = self._native_vectors(payload)
        if self._fitted("method") != "hnsw":
            return
        dist = 4 if self.metric_ == "inner_product" else (1 if X.shape[1] % 16 == 0 else 2)
        problem = _hnsw_file_problem(file_parts(payload, (".dat",))[0], X,
                                     int(self._fitted("M")), dist)
        if problem:
            raise CorruptIndexError(
                f"NMSLibIndex: the nmslib hnsw file is not a graph over the saved "
                f"{X.shape[0]} items ({problem}); nothing was passed to nmslib."
            )

    def _vectors_from_bytes(self, payload):
        """The indexed rows in id order (zeros for items compacted away)."""
        return self._rows_by_id(self._native_vectors(payload))

    def _native_vectors(self, payload):
        """The rows nmslib holds, from its data file: a u64 count, then per item a u64
        size, its position (i32), label (i32), data length (u64) and the float32 row."""
        n, d = self._n_native(), self.n_features_in_
        try:
            data = file_parts(payload, (".dat",))[1]
        except ValueError as exc:
            raise CorruptIndexError(f"NMSLibIndex: {exc}") from None
        record = 8 + 16 + 4 * d
        if data.size != 8 + n * record or int(data[:8].view("<u8")[0]) != n:
            raise CorruptIndexError(
                f"NMSLibIndex: the nmslib data holds {data.size} bytes, not {n} items of "
                f"{d} features."
            )
        records = data[8:].reshape(n, record)
        head = records[:, :24].copy()
        if not (np.array_equal(head[:, :8].view("<u8").ravel(), np.full(n, 16 + 4 * d))
                and np.array_equal(head[:, 8:12].view("<i4").ravel(), np.arange(n))
                and np.array_equal(head[:, 16:24].view("<u8").ravel(), np.full(n, 4 * d))):
            raise CorruptIndexError("NMSLibIndex: the nmslib data records are malformed.")
        return records[:, 24:].copy().view(np.float32)

    def _native_shape(self, index):
        return len(index), (len(index[0]) if len(index) else None)


# nmslib's optimized hnsw file: a 68-byte header (u32 flag, u32 count, u64
# bytes per item, u64 offset of the level-0 links, u64 offset of the data,
# i32 top level, i32 entry point, u64 maxM, u64 maxM0, i32 distance, i32
# search method, u32 0), every item (id i32, label i32, length u64, row, then
# its level-0 links: count i32 and maxM0 ids), then per item a u32 byte count
# and its upper-level links (per level: count i32 and maxM ids)
_HEADER = np.dtype([("flag", "<u4"), ("count", "<u4"), ("per_item", "<u8"), ("links0", "<u8"),
                    ("data", "<u8"), ("top", "<i4"), ("entry", "<i4"), ("max_m", "<u8"),
                    ("max_m0", "<u8"), ("dist", "<i4"), ("search", "<i4"), ("pad", "<u4")])


def _links_problem(lists, width, count, levels=None, level=0):
    """What is wrong with link lists (rows: count i32, then ``width`` ids), or None."""
    sizes = lists[:, 0]
    ids = lists[:, 1:1 + width]
    used = np.arange(width) < sizes[:, None]
    if (sizes < 0).any() or (sizes > width).any():
        return "a link count is out of range"
    linked = ids[used]
    if ((linked < 0) | (linked >= count)).any():
        return "a link names an item that does not exist"
    if levels is not None and (levels[linked] < level).any():
        return f"a level-{level} link names an item below that level"
    return None


def _hnsw_file_problem(main, X, M, dist):
    """What makes nmslib's hnsw file ``main`` unsafe for the rows ``X``, or None."""
    n, d = X.shape
    if main.size < _HEADER.itemsize:
        return "it is truncated"
    head = main[:_HEADER.itemsize].view(_HEADER)[0]
    per_item, links0 = 16 + 4 * d + 4 * (2 * M + 1), 16 + 4 * d
    expected = dict(flag=1, count=n, per_item=per_item, links0=links0, data=0, max_m=M,
                    max_m0=2 * M, dist=dist, search=3, pad=0)
    wrong = [k for k, v in expected.items() if int(head[k]) != v]
    top, entry = int(head["top"]), int(head["entry"])
    if wrong or not (0 <= entry < n and top >= 0):
        return f"header fields {wrong or ['top', 'entry']}"
    start = _HEADER.itemsize
    items = main[start:start + n * per_item]
    if items.size != n * per_item:
        return "it is truncated"
    items = items.reshape(n, per_item)
    head_i = np.ascontiguousarray(items[:, :16])
    if not (np.array_equal(head_i[:, :4].view("<i4").ravel(), np.arange(n))
            and (head_i[:, 8:16].view("<u8").ravel() == 4 * d).all()
            and np.array_equal(items[:, 16:links0], X.view(np.uint8).reshape(n, 4 * d))):
        return "an item's record differs from the data file"
    problem = _links_problem(np.ascontiguousarray(items[:, links0:]).view("<i4"), 2 * M, n)
    if problem:
        return f"level 0: {problem}"
    rest, pos, level_bytes = main[start + n * per_item:], 0, 4 * (M + 1)
    levels, upper = np.zeros(n, dtype=np.int64), []
    for i in range(n):
        if pos + 4 > rest.size:
            return "the upper-level links are truncated"
        size = int(rest[pos:pos + 4].view("<u4")[0])
        if size % level_bytes or pos + 4 + size > rest.size:
            return f"item {i} has upper-level links of {size} bytes"
        levels[i] = size // level_bytes
        upper.append((i, pos + 4, levels[i]))
        pos += 4 + size
    if pos != rest.size or levels.max() > top or levels[entry] != top:
        return "the levels do not match the file's top level and entry point"
    for i, at, n_levels in upper:
        lists = rest[at:at + n_levels * level_bytes].view("<i4").reshape(n_levels, M + 1)
        for level in range(1, n_levels + 1):
            problem = _links_problem(lists[level - 1:level], M, n, levels, level)
            if problem:
                return f"item {i}, level {level}: {problem}"
    return None
