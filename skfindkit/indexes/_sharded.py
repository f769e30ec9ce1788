"""ShardedIndex: one collection split over several indexes, queried as one.

The collection is cut into ``n_shards`` parts, each indexed by its own clone
of an index; a query goes to every shard and the shards' top ``k`` are merged
exactly, ordered by (distance, global id) as :class:`ExactIndex` orders them.
This is how a collection larger than one machine is served (one shard per
machine or process); here the shards live in one process and are built and
queried with joblib.

Memory: the shards hold the only copy of the prepared rows. What the base
class reads as ``_fit_X`` is read from the shards on demand (assembled only
for the duration of a ``kneighbors(X=None)`` call, or when queries have the
collection's shape), and ``partial_fit`` hands new rows to the shards without
copying the collection.
"""

import threading
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import clone

from ..utils._sklearn_compat import Integer, Interval, StrOptions
from . import _distances
from ._base import BaseIndex
from ._self import insert_self
from ._exact import ExactIndex

__all__ = ["ShardedIndex"]


def _fit_shard(index, rows):
    return index.fit(rows)


def _grow_shard(index, rows):
    return index.partial_fit(rows)


def _search_shard(shard, Q, k, exact, own, metric):
    """One shard's k nearest of its prepared queries ``Q`` (local ids), each
    query's own item ``own`` (local id, -1: none) put in, distances in the
    sharded index's units."""
    with shard._reading():  # applies the shard's changed query-time knobs
        search = shard._exact_search if exact else shard._search_complete
        dist, ind = search(Q, k)
    if own is not None:
        dist, ind = insert_self(Q, shard._fit_X, dist, ind, own, metric)
    return _distances.unscale(dist, shard._scale, metric), ind


def _local_ids(global_ids, shard_ids):
    """Positions of ``global_ids`` among a shard's ids, -1 for those elsewhere."""
    pos = np.minimum(np.searchsorted(shard_ids, global_ids), shard_ids.size - 1)
    return np.where((global_ids >= 0) & (shard_ids[pos] == global_ids), pos, -1)


def fill_evenly(sizes, n_new):
    """How many of ``n_new`` items each shard gets, smallest shards first.

    Water-filling: the final sizes are as equal as possible; a shard already
    larger than that level gets nothing; leftover single items go to the
    smallest shards (lowest shard number among equals).

    Parameters
    ----------
    sizes : array-like of int
        Current size of each shard.
    n_new : int
        Number of new items.

    Returns
    -------
    counts : ndarray of int, one per shard, summing to ``n_new``
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    lo, hi = int(sizes.min()), int(sizes.max()) + int(n_new)
    while lo < hi:  # highest level the new items can fill every shard up to
        level = (lo + hi + 1) // 2
        if np.maximum(level - sizes, 0).sum() <= n_new:
            lo = level
        else:
            hi = level - 1
    counts = np.maximum(lo - sizes, 0)
    rest = int(n_new - counts.sum())  # < number of shards at the level
    at_level = np.flatnonzero(sizes + counts == lo)
    counts[at_level[:rest]] += 1
    return counts


class _StoredRows(np.ndarray):
    """Rows assembled from the shards: already prepared, not to be prepared again."""


class _Shards:
    """The fitted shards and, per shard, the global ids of its rows (ascending)."""

    def __init__(self, indexes, ids):
        self.indexes = indexes
        self.ids = ids

    def sizes(self):
        return np.array([len(i) for i in self.ids])

    def rows(self, shard, metric):
        """A shard's prepared rows in the sharded index's units (its own scale undone)."""
        X = shard._fit_X
        if shard._scale == 1.0 or metric == "cosine":  # cosine rows are unit rows
            return X
        return X / np.float32(shard._scale)  # a power of two: exact

    def assemble(self, n, d, metric):
        out = np.empty((n, d), dtype=np.float32)
        for shard, ids in zip(self.indexes, self.ids):
            out[ids] = self.rows(shard, metric)
        return out.view(_StoredRows)


class _ShardRows:
    """The shards' rows in global id order, read on demand: what ``_fit_X`` is
    for the base class between queries (its shape, or the whole array when
    the queries have the same shape), never kept as a copy."""

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, shards, shape, metric):
        self._shards, self.shape, self._metric = shards, shape, metric

    def __array__(self, dtype=None, copy=None):
        out = self._shards.assemble(*self.shape, self._metric).view(np.ndarray)
        return out if dtype is None else out.astype(dtype, copy=False)


# the rows assembled for the kneighbors(X=None) call running in this thread
_ASSEMBLED = threading.local()


class ShardedIndex(BaseIndex):
    """One collection split over ``n_shards`` indexes, queried as one index.

    ``fit`` cuts the rows into ``n_shards`` contiguous parts of (almost) equal
    size and builds one clone of ``index`` per part, in parallel with joblib
    (threads by default; a ``joblib.parallel_config(backend="dask")`` context
    builds them on a dask cluster). A query is searched in every shard and the
    shards' results are merged exactly: the ``k`` nearest by (distance,
    global id), as :class:`ExactIndex` orders ties. With ``ExactIndex`` shards
    the results equal one ``ExactIndex``; with approximate shards the recall is
    at least each shard's own (every shard contributes its ``k`` best).
    ``partial_fit`` gives new items to the smallest shards, so shards stay
    even; ids keep counting from ``n_samples_fit_``.

    The shards hold the only copy of the collection; each shard's own
    ``n_neighbors`` and ``mode`` are not used (this index's are). This is the
    single-process model of a collection served by several machines: see
    ``docs/scaling.md`` for per-shard figures and a capacity plan.

    Parameters
    ----------
    index : skfindkit index, default=None
        The index cloned for every shard (its metric is this index's metric);
        None means ``ExactIndex()``. Its parameters are tunable through
        ``index__<param>`` (e.g. in ``GridSearchCV``).
    n_shards : int, default=2
        Number of shards; ``fit`` needs at least one item per shard.
    n_neighbors : int, default=5
        Number of neighbours of each query.
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.
    n_jobs : int, default=None
        Shards built and queried at the same time (joblib; queries always use
        threads, since the shards live in this process). ``None`` means 1
        unless in a :func:`joblib.parallel_config` context; never more than
        the number of shards. Threads inside each shard are the shard index's
        own ``n_jobs`` (at most :func:`joblib.cpu_count`).

    Attributes
    ----------
    n_samples_fit_ : int
        Number of indexed items.
    n_features_in_ : int
        Number of features of the indexed items.
    shards_ : list of indexes
        The fitted shards.
    shard_ids_ : list of ndarray
        Global ids of each shard's items, ascending.

    See Also
    --------
    ExactIndex : The exact reference; sharded, its results are unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import ExactIndex, ShardedIndex
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    >>> index = ShardedIndex(ExactIndex(), n_shards=2, n_neighbors=2).fit(X)
    >>> [len(ids) for ids in index.shard_ids_]
    [2, 3]
    >>> dist, ind = index.kneighbors([[3.1, 3.0]])
    >>> ind
    array([[3, 4]])
    >>> index.partial_fit([[0.5, 0.5]]).shard_ids_[0]  # to the smaller shard
    array([0, 1, 5])
    """

    _backend = "sharded"
    # the shards' merged distances are already in the metric's units
    _native_distance = "exact"

    _parameter_constraints: dict = {
        "index": [BaseIndex, None],
        "n_shards": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions({"distance", "connectivity"})],
        "n_jobs": [None, Integer],
    }

    def __init__(self, index=None, n_shards=2, *, n_neighbors=5, mode="distance", n_jobs=None):
        self.index = index
        self.n_shards = n_shards
        self.n_neighbors = n_neighbors
        self.mode = mode
        self.n_jobs = n_jobs

    # ------------------------------------------------- derived from `index`
    def _template(self):
        return ExactIndex() if self.index is None else self.index

    @property
    def metric(self):
        """The metric of the sharded index (a parameter of ``index``)."""
        return self._template().metric

    def _is_exact(self):
        return self._template()._is_exact()

    @property
    def shards_(self):
        return list(self._index.indexes)

    @property
    def shard_ids_(self):
        return list(self._index.ids)

    # --------------------------------------------- rows live in the shards
    @property
    def _fit_X(self):
        """The prepared rows in global id order, as the base class reads them.

        The input while ``fit`` builds the shards; the rows assembled for a
        ``kneighbors(X=None)`` call in this thread; else a :class:`_ShardRows`
        that reads the shards on demand.
        """
        pending = self.__dict__.get("_pending_X")
        if pending is not None:
            return pending
        assembled = getattr(_ASSEMBLED, "rows", {}).get(id(self))
        if assembled is not None:
            return assembled
        return _ShardRows(self._index, (self.n_samples_fit_, self.n_features_in_), self.metric_)

    @_fit_X.setter
    def _fit_X(self, value):  # BaseIndex.fit stores the prepared rows here
        self.__dict__["_pending_X"] = value

    def _kneighbors(self, X, n_neighbors, return_distance, search):
        if X is not None:
            return super()._kneighbors(X, n_neighbors, return_distance, search)
        # the indexed rows are the queries: assemble them once for this call
        rows = getattr(_ASSEMBLED, "rows", None)
        if rows is None:
            rows = _ASSEMBLED.rows = {}
        self._check_fitted()
        rows[id(self)] = self._index.assemble(
            self.n_samples_fit_, self.n_features_in_, self.metric_
        )
        try:
            return super()._kneighbors(X, n_neighbors, return_distance, search)
        finally:
            del rows[id(self)]

    def _prepare(self, X, name="X"):
        """Range-checked, rescaled float32 rows; each shard prepares them for the
        metric (unit rows for cosine) exactly as one index would."""
        _distances.check_float32_range(X, name)
        if self._scale != 1.0:
            X = np.multiply(X, self._scale, dtype=np.float64)
            _distances.check_float32_range(X, f"{name} (scaled as the indexed data)")
        return np.require(X, dtype=np.float32, requirements=["C"])

    def _own_items(self, X, is_fit_X, first_id=0):
        # the merge puts each query's own item in, in the shards' units
        return None

    def _own_global_ids(self, X, queries):
        """Each query's own indexed item (global id, -1: none), as the base finds it."""
        shards = self._index
        if isinstance(X, _StoredRows) or (
            X.shape[0] == self.n_samples_fit_
            and all(np.array_equal(Q[ids], shard._fit_X)  # the fitted rows as queries
                    for Q, shard, ids in zip(queries, shards.indexes, shards.ids))
        ):
            return np.arange(X.shape[0])
        if self._is_exact():  # exact search finds identical rows by itself
            return None
        own = np.full(X.shape[0], -1)
        for Q, shard, ids in zip(queries, shards.indexes, shards.ids):
            local = shard._own_items(Q, False)  # an identical row of this shard
            found = np.where(local >= 0, ids[np.maximum(local, 0)], -1)
            better = (found >= 0) & ((own < 0) | (found < own))
            own[better] = found[better]
        return own

    def _query_params(self):
        return self._template()._query_params()

    def _apply_query_params(self):
        # the shards apply them on their next query (their own read section)
        for shard in self._index.indexes:
            shard.set_params(**self._query_params())

    def _map(self, tasks, **parallel_params):
        """Run joblib ``delayed`` tasks, in this thread when there is one job."""
        tasks = list(tasks)
        n_jobs = min(len(tasks), max(1, effective_n_jobs(self.n_jobs)))
        if n_jobs <= 1:  # a Parallel object costs ~1-10 ms: too much per query
            return [fn(*args, **kwargs) for fn, args, kwargs in tasks]
        return Parallel(n_jobs=n_jobs, **parallel_params)(tasks)

    # ---------------------------------------------------------------- hooks
    def _build(self, X):
        n = X.shape[0]
        if n < self.n_shards:
            raise ValueError(
                f"ShardedIndex needs at least one item per shard: n_shards={self.n_shards} "
                f"but X has {n} sample{'s' if n != 1 else ''}."
            )
        template = self._template()
        # fit skips the validation of nested estimators: check the shard's
        # parameters here, before any native library sees them
        template._validate_params()
        bounds = np.linspace(0, n, self.n_shards + 1).round().astype(np.intp)
        parts = list(zip(bounds[:-1], bounds[1:]))
        # each shard gets its own copy of its rows: a view would keep the whole
        # input alive once partial_fit has replaced some shards' rows
        indexes = self._map(
            (delayed(_fit_shard)(clone(template), np.array(X[a:b])) for a, b in parts),
            prefer="threads",
        )
        self.__dict__.pop("_pending_X", None)  # the shards now hold the rows
        return _Shards(list(indexes), [np.arange(a, b) for a, b in parts])

    def _append(self, Xp):
        shards = self._index
        counts = fill_evenly(shards.sizes(), Xp.shape[0])
        starts = np.concatenate([[0], np.cumsum(counts)])
        grow = [s for s in range(len(counts)) if counts[s]]
        grown = self._map(
            (delayed(_grow_shard)(shards.indexes[s], Xp[starts[s]:starts[s + 1]]) for s in grow),
            prefer="threads",
        )
        for s, index in zip(grow, grown):
            shards.indexes[s] = index
            new_ids = self.n_samples_fit_ + np.arange(starts[s], starts[s + 1])
            shards.ids[s] = np.concatenate([shards.ids[s], new_ids])
        self.n_samples_fit_ += Xp.shape[0]
        self._changed_native_index()

    def _search(self, X, k):
        return self._merge(X, k, exact=False)

    def _exact_search(self, X, k):
        return self._merge(X, k, exact=True)

    def _merge(self, X, k, exact):
        """Every shard's k nearest, merged by (distance, own item first, global id)."""
        shards = self._index
        if isinstance(X, _StoredRows):  # the shards' own rows: only their scale to redo
            queries = [
                X.view(np.ndarray) if s._scale == 1.0 or self.metric_ == "cosine"
                else X.view(np.ndarray) * np.float32(s._scale)
                for s in shards.indexes
            ]
        else:
            queries = [shard._prepare(X) for shard in shards.indexes]
        own = self._own_global_ids(X, queries)
        found = self._map(
            (delayed(_search_shard)(
                shard, Q, min(k, shard.n_samples_fit_), exact,
                None if own is None else _local_ids(own, ids), self.metric_)
             for shard, Q, ids in zip(shards.indexes, queries, shards.ids)),
            backend="threading",
        )
        dist = np.concatenate([d for d, _ in found], axis=1)
        ind = np.concatenate([ids[i] for (_, i), ids in zip(found, shards.ids)], axis=1)
        keys = (ind, dist) if own is None else (ind, ind != own[:, None], dist)
        order = np.lexsort(keys, axis=1)[:, :k]
        return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ind, order, axis=1)

    def _serialize(self):
        # each shard pickles its native index in its own checksummed envelope
        import pickle

        return pickle.dumps(self._index, protocol=pickle.HIGHEST_PROTOCOL)

    def _deserialize(self, payload):
        import pickle

        return pickle.loads(payload)
