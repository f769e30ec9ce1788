"""HNSW graph index backed by hnswlib."""

from numbers import Integral

import numpy as np

from ..utils._optional import Requirement
from ..utils._sklearn_compat import Interval
from ..utils._persist import CorruptIndexError
from ._ann_utils import native_seed
from ._approximate import ApproximateIndex

__all__ = ["HNSWIndex"]

# metric -> hnswlib space; cosine searches unit rows with l2 so that
# identical items are at distance exactly 0 (d2 / 2 = 1 - cos)
_SPACES = {"euclidean": "l2", "cosine": "l2", "inner_product": "ip"}


def _hnswlib():
    return HNSWIndex._requires.load()


class HNSWIndex(ApproximateIndex):
    """Approximate nearest neighbours with hnswlib's HNSW graph.

    Hierarchical navigable small-world graphs: the fastest index of the
    family at high recall. Grows natively with :meth:`partial_fit` (the graph
    is resized and the new items inserted).

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours of each query.
    metric : {"euclidean", "cosine", "inner_product"}, default="euclidean"
        Distance, reported in :class:`~skfindkit.ExactIndex`'s units
        (hnswlib's squared L2 is converted; cosine searches unit rows).
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.
    n_jobs : int, default=None
        Threads for inserting items and for batch queries. ``None`` means 1
        unless in a :func:`joblib.parallel_config` context. At most
        :func:`joblib.cpu_count` threads.
    M : int, default=16
        hnswlib's ``M``: graph out-degree. Larger is more accurate and slower.
    ef_construction : int, default=200
        hnswlib's ``ef_construction``: candidate list size while building.
    ef_search : int, default=50
        hnswlib's ``ef``: candidate list size while querying (at least the
        number of neighbours asked for). The recall/speed knob.
    random_state : int, RandomState instance or None, default=None
        the level generator. Builds are reproducible for a fixed seed with
        ``n_jobs=1``.
    refine : int, default=None
    keep_vectors : bool, default=True
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
    NMSLibIndex : The same algorithm through nmslib.
    FaissIndex : faiss indexes, including ``"HNSW32"``.

    Notes
    -----
    A saved index's hnswlib state is checked in numpy before hnswlib reads
    it: every size, offset and level against the saved dimensions, every
    link below the number of items, the rows against the sealed data
    (``docs/security.md``).

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import HNSWIndex
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> index = HNSWIndex(n_neighbors=2, random_state=0).fit(X)
    >>> dist, ind = index.kneighbors([[0.1, 0.0]])
    >>> ind
    array([[0, 1]])
    >>> np.round(dist, 2)
    array([[0.1, 0.9]])
    """

    _backend = "hnswlib"
    _cli_name = "hnsw"
    _requires = Requirement(library="hnswlib", import_name="hnswlib", extra="hnswlib")
    supported_metrics = ("euclidean", "cosine", "inner_product")
    # "l2" returns squared L2, "ip" returns 1 - <x, y>
    _native_distance = {"euclidean": "sqeuclidean", "cosine": "sqeuclidean",
                        "inner_product": "one_minus_dot"}

    _parameter_constraints: dict = {
        **ApproximateIndex._parameter_constraints,
        "M": [Interval(Integral, 2, None, closed="left")],
        "ef_construction": [Interval(Integral, 1, None, closed="left")],
        "ef_search": [Interval(Integral, 1, None, closed="left")],
    }
    _query_time_params = ("ef_search",)

    def __init__(
        self,
        n_neighbors=5,
        *,
        metric="euclidean",
        mode="distance",
        n_jobs=None,
        M=16,
        ef_construction=200,
        ef_search=50,
        random_state=None,
        refine=None,
        keep_vectors=True,
        max_tombstone_share=None,
    ):
        super().__init__(n_neighbors=n_neighbors, metric=metric, mode=mode, n_jobs=n_jobs,
                         random_state=random_state, refine=refine, keep_vectors=keep_vectors,
                         max_tombstone_share=max_tombstone_share)
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search

    def _build(self, X, ids=None):
        """A graph of rows ``X`` labelled ``ids`` (default: 0, 1, ...)."""
        index = _hnswlib().Index(space=_SPACES[self.metric_], dim=X.shape[1])
        index.init_index(
            max_elements=X.shape[0],
            ef_construction=self._fitted("ef_construction"),
            M=self._fitted("M"),
            random_seed=native_seed(self._fitted("random_state")),
        )
        index.add_items(X, np.arange(X.shape[0]) if ids is None else ids,
                        num_threads=self._n_threads())
        return index

    def _compact(self):
        """A new graph of the live items under their ids: the removed ones leave it."""
        live = np.flatnonzero(~self._removed_mask())
        if self._keeps_vectors():
            self._erase_removed()  # the saved rows are read back from the graph: zeros
            rows = self._fit_X[live]
        else:
            rows = self._get_vectors(live)
        self._index = self._build(rows, live)
        self._changed_native_index()

    def _query_params(self):
        return {"ef_search": self.ef_search}

    def _apply_query_params(self):
        self._index.set_ef(self.ef_search)  # a query-time knob: no rebuild needed

    def _add(self, X):
        """Native growth: resize the graph and insert the new rows."""
        start = self.n_samples_fit_ - X.shape[0]
        self._index.resize_index(self._index.get_current_count() + X.shape[0])
        self._index.add_items(X, np.arange(start, self.n_samples_fit_), num_threads=self._n_threads())

    def _search(self, X, k, filter=None):
        try:
            labels, native = self._index.knn_query(X, k=k, num_threads=self._n_threads(),
                                                   filter=filter)
        except RuntimeError:  # the graph walk found fewer than k items
            return np.full((X.shape[0], k), np.inf), np.full((X.shape[0], k), -1)
        return native, labels

    def _get_vectors(self, ids):
        removed = self._removed_mask()
        if removed is None or not removed[ids].any():
            return np.asarray(self._index.get_items(ids, return_type="numpy"), dtype=np.float32)
        # hnswlib refuses to read marked-deleted items: zeros (never a result) stand in
        rows = np.zeros((len(ids), self.n_features_in_), dtype=np.float32)
        live = ~removed[ids]
        if live.any():
            rows[live] = self._get_vectors(np.asarray(ids)[live])
        return rows

    def _held_tombstones(self):
        return self._index.get_current_count() - self._n_live()

    def _removed_items(self, ids):
        for i in ids:  # the graph walk skips them from now on
            self._index.mark_deleted(int(i))

    def _search_masked(self, X, k, mask):
        """hnswlib's own filter (a callable on each candidate's label, hnswlib >= 0.8);
        removed items are marked deleted, so a mask of the live items needs none."""
        removed = self._removed_mask()
        if removed is not None and np.array_equal(mask, ~removed):
            return self._search(X, k)
        allowed = mask.tolist()  # list lookups: the cheapest callable for hnswlib to call
        return self._search(X, k, lambda label: allowed[label])

    def _serialize(self):
        # hnswlib's own state: a dict of its arrays (one copy, no file round trip)
        (state,) = self._index.__getstate__()
        return state

    def _check_native_bytes(self, state):
        """Check hnswlib's state before hnswlib reads it: every size, offset and
        level against the others and the saved dimensions, every link below the
        number of items (hnswlib follows them without checking)."""
        try:
            self._check_hnswlib_state(state)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise CorruptIndexError(f"HNSWIndex: the hnswlib state is malformed ({exc!r}).")

    def _check_hnswlib_state(self, state):
        count, dim = int(state["cur_element_count"]), int(state["dim"])
        removed = self._removed_mask()
        n_removed = 0 if removed is None else int(removed.sum())
        # a compacted graph holds the live items and some removed ones (marked deleted)
        if not self.n_samples_fit_ - n_removed <= count <= self.n_samples_fit_ or (
                dim != self.n_features_in_):
            raise CorruptIndexError(
                f"HNSWIndex: the hnswlib index holds {count} items of {dim} features but "
                f"the saved state has {self.n_samples_fit_} of {self.n_features_in_}; "
                "the index does not belong to this state."
            )
        m, m0 = int(state["max_M"]), int(state["max_M0"])
        capacity, levels = int(state["max_elements"]), state["element_levels"]
        entry, top = int(state["enterpoint_node"]), int(state["max_level"])
        links0, per_element = 4 + 4 * m0, int(state["size_data_per_element"])
        arrays = ("data_level0", "link_lists", "element_levels", "label_lookup_external",
                  "label_lookup_internal")
        dtypes = (np.int8, np.int8, np.int32, np.uint64, np.uint32)
        flags = ("index_inited", "ep_added", "normalize", "has_deletions",
                 "allow_replace_deleted")
        consistent = (
            state["ser_version"] == 1
            and state["space"] == _SPACES[self.metric_]
            # scalars hnswlib trusts as they are: a fitted index, deletions only of removed items
            and all(isinstance(state[f], (bool, np.bool_)) for f in flags)
            and state["index_inited"] and state["ep_added"] and not state["allow_replace_deleted"]
            and (removed is not None or not state["has_deletions"])
            and bool(state["normalize"]) == (state["space"] == "cosine")
            and 1 <= int(state["num_threads"]) <= 4096
            and 1 <= int(state["ef"]) < 2**63  # size_t in hnswlib; a query bounds it by the items
            and 1 <= int(state["ef_construction"]) < 2**63
            and all(isinstance(state[a], np.ndarray) and state[a].ndim == 1
                    and state[a].dtype == t for a, t in zip(arrays, dtypes))
            and 2 <= m <= 1 << 16 and m0 == 2 * m and m == int(state["M"])
            and abs(float(state["mult"]) * np.log(m) - 1) < 1e-6  # level draws on insert
            and int(state["offset_level0"]) == 0 and int(state["offset_data"]) == links0
            and int(state["label_offset"]) == links0 + 4 * dim
            and per_element == links0 + 4 * dim + 8
            and int(state["size_links_per_element"]) == 4 + 4 * m
            and count <= capacity and state["data_level0"].size == capacity * per_element
            and levels.size == capacity
            and state["label_lookup_external"].size == count
            and state["label_lookup_internal"].size == count
            and 0 <= entry < count and 0 <= top == levels[entry]
        )
        if not consistent:
            raise CorruptIndexError("HNSWIndex: the hnswlib state is inconsistent.")
        levels = levels[:count]
        if (levels < 0).any() or (levels > top).any():
            raise CorruptIndexError("HNSWIndex: the hnswlib element levels are out of range.")
        upper = state["link_lists"]
        if upper.size != (4 + 4 * m) * int(levels.sum(dtype=np.int64)):
            raise CorruptIndexError("HNSWIndex: the hnswlib upper-level links have the "
                                    "wrong size.")
        internal = state["label_lookup_internal"]
        if (internal >= count).any():
            raise CorruptIndexError("HNSWIndex: the hnswlib label table is out of range.")
        level0 = state["data_level0"].reshape(capacity, per_element)[:count, :links0]
        for lists, width, where in ((level0, m0, "level 0"),
                                    (upper.reshape(-1, 4 + 4 * m), m, "upper levels")):
            sizes = np.ascontiguousarray(lists[:, :2]).view("<u2").ravel()
            ids = np.ascontiguousarray(lists[:, 4:4 + 4 * width]).view("<u4")
            used = np.arange(width) < sizes[:, None]
            if (sizes > width).any() or (ids[used] >= count).any():
                raise CorruptIndexError(
                    f"HNSWIndex: the hnswlib graph ({where}) links to items that do not "
                    f"exist; nothing was passed to hnswlib.")
        self._check_deleted_marks(level0, state["label_lookup_external"], internal)

    def _check_deleted_marks(self, level0, labels, internal):
        """The graph holds every live item, and marks deleted (a flag beside each
        level-0 link count) exactly the removed items it still holds."""
        n = self.n_samples_fit_
        labels = labels.astype(np.uint64)
        if (labels >= n).any() or np.unique(labels).size != labels.size:
            raise CorruptIndexError("HNSWIndex: the hnswlib labels are not the item ids.")
        labels = labels.astype(np.intp)
        present = np.zeros(n, dtype=bool)
        present[labels] = True
        marked = np.zeros(n, dtype=bool)
        marked[labels[(level0[:, 2].view(np.uint8) & 1).astype(bool)[internal]]] = True
        removed = self._removed_mask()
        removed = np.zeros(n, dtype=bool) if removed is None else removed
        if (~present & ~removed).any() or not np.array_equal(marked, removed & present):
            raise CorruptIndexError(
                "HNSWIndex: the items hnswlib holds and marks deleted are not the "
                "live and removed items.")

    def _vectors_in_native(self):
        return True  # spaces "l2" and "ip" keep the rows as given (cosine: unit rows, "l2")

    def _vectors_from_bytes(self, state):
        """The indexed rows in id order, from hnswlib's level-0 array (checked above)."""
        count, dim = int(state["cur_element_count"]), int(state["dim"])
        elements = state["data_level0"].reshape(int(state["max_elements"]), -1)[:count]
        data, label = int(state["offset_data"]), int(state["label_offset"])
        labels = elements[:, label:label + 8].copy().view("<u8").ravel()
        n = self.n_samples_fit_
        if (labels >= n).any() or np.unique(labels).size != count:
            raise CorruptIndexError("HNSWIndex: the hnswlib labels are not the item ids.")
        X = np.zeros((n, dim), dtype=np.float32)  # removed items compacted away: zeros
        X[labels.astype(np.intp)] = elements[:, data:data + 4 * dim].view(np.float32)
        return X

    def _deserialize(self, state):
        index = _hnswlib().Index.__new__(_hnswlib().Index)
        index.__setstate__((state,))
        return index

    def _native_shape(self, index):
        # after compaction the graph holds fewer items than ids (checked in the state)
        count = index.get_current_count() if self._removed_mask() is None else None
        return count, index.dim
