"""ShardedIndex: one collection split over several indexes, queried as one.

The collection is cut into ``n_shards`` parts, each indexed by its own clone
of an index; a query goes to every shard and the shards' top ``k`` are merged
exactly, ordered by (distance, global id) as :class:`ExactIndex` orders them.
This is how a collection larger than one machine is served (one shard per
machine or process); here the shards live in one process and are built and
queried with joblib.

Memory: the shards hold the only copy of the prepared rows. The base class's
``_fit_X`` is a view assembled from them on demand (``kneighbors(X=None)``
only), and ``partial_fit`` hands new rows to the shards without copying the
collection.
"""

from numbers import Integral

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import clone
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseIndex
from ._exact import ExactIndex

__all__ = ["ShardedIndex"]


def _fit_shard(index, rows):
    return index.fit(rows)


def _grow_shard(index, rows):
    return index.partial_fit(rows)


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
        unless in a :func:`joblib.parallel_config` context. Threads inside
        each shard are the shard index's own ``n_jobs``.

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
    [3, 2]
    >>> dist, ind = index.kneighbors([[3.1, 3.0]])
    >>> ind
    array([[3, 4]])
    >>> index.partial_fit([[0.5, 0.5]]).shard_ids_[1]
    array([3, 4, 5])
    """

    _backend = "sharded"

    _parameter_constraints: dict = {
        "index": [BaseIndex, None],
        "n_shards": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions({"distance", "connectivity"})],
        "n_jobs": [None, Integral],
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

    @property
    def _exact_on_small_data(self):
        inner = self._template()
        return isinstance(inner, ExactIndex) or getattr(inner, "_exact_on_small_data", False)

    @property
    def shards_(self):
        return list(self._index.indexes)

    @property
    def shard_ids_(self):
        return list(self._index.ids)

    # --------------------------------------------- rows live in the shards
    @property
    def _fit_X(self):
        """The prepared rows in global id order: the pending input during
        ``fit``, else a fresh array assembled from the shards."""
        pending = self.__dict__.get("_pending_X")
        if pending is not None:
            return pending
        shards = self._index
        out = np.empty((self.n_samples_fit_, self.n_features_in_), dtype=np.float32)
        for shard, ids in zip(shards.indexes, shards.ids):
            out[ids] = shard._fit_X
        return out.view(_StoredRows)

    @_fit_X.setter
    def _fit_X(self, value):  # BaseIndex.fit stores the prepared rows here
        self.__dict__["_pending_X"] = value

    def _prepare(self, X):
        """float32 rows; the shards prepare them for the metric (as one index would)."""
        return np.require(X, dtype=np.float32, requirements=["C"])

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

    def _search(self, X, k):
        shards = self._index
        if not isinstance(X, _StoredRows):  # queries, not the shards' own rows
            X = shards.indexes[0]._prepare(X)
        found = self._map(
            (delayed(index._search_complete)(X, min(k, index.n_samples_fit_))
             for index in shards.indexes),
            backend="threading",
        )
        dist = np.concatenate([d for d, _ in found], axis=1)
        ind = np.concatenate([ids[i] for (_, i), ids in zip(found, shards.ids)], axis=1)
        order = np.lexsort((ind, dist), axis=1)[:, :k]  # by distance, then global id
        return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ind, order, axis=1)

    def _serialize(self):
        # each shard pickles its native index in its own checksummed envelope
        import pickle

        return pickle.dumps(self._index, protocol=pickle.HIGHEST_PROTOCOL)

    def _deserialize(self, payload):
        import pickle

        return pickle.loads(payload)
