"""The base of the approximate indexes: the parameters they share.

:class:`ApproximateIndex` owns ``random_state``, ``refine`` and
``keep_vectors``: their constraints, the ``__init__`` tail and their shared
documentation; and the compaction of backends whose native structure numbers
its items itself (annoy, nmslib, faiss: ``_maps_native_ids``). Backend hooks read every constructor parameter through
``BaseIndex._fitted`` (its value at the last ``fit``), except the query-time
knobs named in ``_query_time_params`` (read live: they apply at once); a test
scans the backends for any other ``self.<parameter>`` read.
"""

from numbers import Integral, Real

import numpy as np

from ..utils._persist import CorruptIndexError
from ..utils._sklearn_compat import Interval
from ._base import BaseIndex

__all__ = ["ApproximateIndex", "NativeIdMap"]

# parameter -> the shared description inserted under its line in a backend's docstring
_SHARED_DOC = {
    "random_state": """\
Seed of the native build's random choices:""",
    "refine": """\
Exact re-ranking: fetch ``refine * n_neighbors`` candidates from the
native index and return the ``n_neighbors`` nearest of them by exact
distance over the stored data (faiss's ``IndexRefine`` idea). None
keeps the native ranking. It raises recall where the native ranking
is approximate (faiss PQ/SQ codes) or where asking for more items
widens the search (hnswlib, faiss HNSW: ``ef = max(ef_search, k)``),
at the cost of one exact distance per candidate; where the native
distances are exact and the search does not grow with ``k`` (faiss
IVF-Flat, annoy with a fixed ``search_k``, nmslib) the answer is
unchanged (measured in ``benchmarks/results/ann.md``).""",
    "keep_vectors": """\
Keep the prepared float32 copy of the indexed rows beside the native
index (``4 * n_samples * n_features`` bytes). False drops it: the rows
a feature needs -- ``kneighbors(X=None)``, ``refine``, exact
completion of short rows, ``exact_kneighbors``, recomputed
distances, a rebuild where the library cannot grow -- are read back
from the native index, with the same answers, slower where many rows
are read.""",
    "max_tombstone_share": """\
Share of the items the native structure holds that may be removed
items (tombstones) before ``remove`` compacts it (rebuilds it
without them, see :meth:`compact`); None: 0.2, or 0 (compact at
every removal) for an exact configuration. Its value at the last
``fit`` applies.""",
}


def _with_shared_doc(doc, names):
    """``doc`` with each shared description inserted under its parameter's line."""
    lines = doc.splitlines(keepends=True)
    out = []
    for line in lines:
        out.append(line)
        name = line.strip().split(" : ")[0]
        if name in names and line.startswith("    ") and " : " in line:
            indent = line[:len(line) - len(line.lstrip())] + "    "
            out += [indent + text + "\n" for text in _SHARED_DOC[name].splitlines()]
    return "".join(out)


class ApproximateIndex(BaseIndex):
    """Base class of the approximate indexes (not to be used directly).

    Adds to :class:`BaseIndex` the parameters every approximate backend
    shares: ``random_state``, ``refine``, ``keep_vectors`` and
    ``max_tombstone_share``, each where the backend's ``__init__`` takes it.
    """

    #: Parameters read live by the query hooks (they apply at the next query).
    _query_time_params = ()

    _parameter_constraints: dict = {
        **BaseIndex._parameter_constraints,
        "random_state": ["random_state"],
        # exact re-ranking of refine * k candidates (KNeighborsQueryMixin._search_complete)
        "refine": [None, Interval(Integral, 1, None, closed="left")],
        "keep_vectors": ["boolean"],
        "max_tombstone_share": [None, Interval(Real, 0, 1, closed="both")],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__doc__:
            cls.__doc__ = _with_shared_doc(cls.__doc__, set(_SHARED_DOC))

    def __init__(self, n_neighbors=5, *, metric="euclidean", mode="distance", n_jobs=None,
                 random_state=None, refine=None, keep_vectors=True, max_tombstone_share=None):
        super().__init__(n_neighbors=n_neighbors, metric=metric, mode=mode, n_jobs=n_jobs)
        taken = self._get_param_names()
        for name, value in (("random_state", random_state), ("refine", refine),
                            ("keep_vectors", keep_vectors),
                            ("max_tombstone_share", max_tombstone_share)):
            if name in taken:  # each backend takes those its library supports
                setattr(self, name, value)


class NativeIdMap:
    """Compaction by rebuild for backends whose native positions are not the ids.

    A backend that numbers its items ``0, 1, ...`` in the order they were
    added (annoy, nmslib, faiss) cannot drop an item and keep the others'
    numbers. Its compaction rebuilds the native structure from the live rows
    (``_rebuild_native``) and keeps ``_native_ids``: the id of each native
    position, ascending (None while positions and ids agree). Each backend
    maps what its search returns with ``_to_ids`` and reads rows by id with
    ``_native_rows``; the rest (which rows, the map, growth) is here.
    """

    _native_ids = None

    def _n_native(self):
        """Items the native structure holds (live ones and held tombstones)."""
        ids = self._native_ids
        return self.n_samples_fit_ if ids is None else ids.size

    def _held_ids(self):
        """The id of each native position."""
        ids = self._native_ids
        return np.arange(self.n_samples_fit_) if ids is None else ids

    def _native_held_rows(self):
        return self._fit_X[self._held_ids()]

    def _held_tombstones(self):
        removed = self._removed_mask()
        return int(np.count_nonzero(removed[self._held_ids()]))

    def _to_ids(self, ind):
        """Native positions (as a search returns them) -> ids; -1 stays -1."""
        ids = self._native_ids
        ind = np.asarray(ind)
        if ids is None:
            return ind
        ok = (ind >= 0) & (ind < ids.size)
        return np.where(ok, ids[np.where(ok, ind, 0)], -1)

    def _native_rows(self, ids, read):
        """Rows of ``ids`` read by native position (``read(positions)``); zeros for the
        ids the native structure no longer holds (removed and compacted away)."""
        ids = np.asarray(ids, dtype=np.intp)
        held = self._native_ids
        if held is None:
            return read(ids)
        pos = np.minimum(np.searchsorted(held, ids), held.size - 1)
        found = held[pos] == ids
        rows = np.zeros((ids.size, self.n_features_in_), dtype=np.float32)
        if found.any():
            rows[found] = read(pos[found])
        return rows

    def _rows_by_id(self, native_rows):
        """The rows of every id from the native structure's rows (zeros where not held)."""
        ids = self._native_ids
        if ids is None or native_rows is None:
            return native_rows
        X = np.zeros((self.n_samples_fit_, native_rows.shape[1]), dtype=np.float32)
        X[ids] = native_rows
        return X

    def _check_native_ids(self):
        """A loaded id map: ascending ids, every live item among them (else corrupt)."""
        ids = vars(self).get("_native_ids")
        if ids is None:
            return
        n = self.n_samples_fit_
        removed = self._removed_mask()
        live = np.ones(n, dtype=bool) if removed is None else ~removed
        ok = (isinstance(ids, np.ndarray) and ids.ndim == 1 and ids.dtype == np.intp
              and ids.size and ids[0] >= 0 and ids[-1] < n and (np.diff(ids) > 0).all())
        if not ok or np.count_nonzero(live[ids]) != np.count_nonzero(live):
            raise CorruptIndexError(
                f"{type(self).__name__}: the native id map is not ascending item ids "
                "holding every live item.")

    def _append(self, Xp):
        if self._native_ids is not None:  # the native structure adds after its last item
            start = self.n_samples_fit_
            self._native_ids = np.concatenate(
                [self._native_ids, np.arange(start, start + Xp.shape[0])])
        super()._append(Xp)

    def _rebuild_native(self, new_rows=None):
        """Rebuild the native structure from the live items it holds (and ``new_rows``,
        the items just added, already in the map): removed items leave it."""
        n_new = 0 if new_rows is None else new_rows.shape[0]
        held = self._held_ids()
        old, new = held[:held.size - n_new], held[held.size - n_new:]
        removed = self._removed_mask()
        if removed is not None:
            old = old[~removed[old]]
        ids = np.concatenate([old, new])
        if self._keeps_vectors():
            if removed is not None:
                self._erase_removed()  # the saved rows come from the native bytes: zeros
            rows = self._fit_X[ids]
        else:
            rows = self._get_vectors(old)
            if n_new:
                rows = np.vstack([rows, new_rows])
        self._install_native(self._build(rows), ids)

    def _install_native(self, index, ids):
        """``index`` holds the rows of ``ids`` (ascending) at positions 0, 1, ..."""
        self._index = index
        self._native_ids = None if ids.size == self.n_samples_fit_ else ids.astype(np.intp)
        self._changed_native_index()

    def _compact(self):
        self._rebuild_native()
