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

The shards are driven only through the public seam of
:class:`~skfindkit.indexes.BaseIndex` (``fit``, ``partial_fit``,
``set_params``, ``prepare_queries``, ``prepared_rows``,
``kneighbors_prepared``, ``identical_items``, ``query_params``,
``is_exact``), and saved as the fitted estimators they are: ``shards_`` is an
ordinary fitted attribute, each shard sealing its own state, checked against
the sharded index's when loaded.
"""

import threading
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn import config_context
from sklearn.base import clone

from ..utils._persist import CorruptIndexError
from ..utils._sklearn_compat import Integer, Interval, StrOptions
from . import _distances
from ._base import BaseIndex
from ._exact import ExactIndex
from ._shards import _ShardRows, _Shards, _StoredRows, _local_ids, fill_evenly

__all__ = ["ShardedIndex"]


def _fit_shard(index, rows):
    # the sharded index's fit skips nested validation: each shard checks its
    # own parameters before any native library sees them
    with config_context(skip_parameter_validation=False):
        return index.fit(rows)


def _grow_shard(index, rows):
    return index.partial_fit(rows)


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
    ``mode`` is not used (this index's is), nor its ``n_neighbors`` unless
    this index's is None. This is the
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
    n_neighbors : int, default=None
        Number of neighbours of each query; None means the ``n_neighbors``
        of ``index`` (5 for ``ExactIndex()``).
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
        "n_neighbors": [Interval(Integral, 1, None, closed="left"), None],
        "mode": [StrOptions({"distance", "connectivity"})],
        "n_jobs": [None, Integer],
    }
    # the shards: fitted estimators, each sealing its own state
    _child_attrs = ("shards_",)

    def __init__(self, index=None, n_shards=2, *, n_neighbors=None, mode="distance",
                 n_jobs=None):
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
        return self._template().is_exact()

    def _default_n_neighbors(self):
        return self._template().n_neighbors if self.n_neighbors is None else self.n_neighbors

    @property
    def _index(self):
        """The fitted shards and their ids (``shards_``, ``shard_ids_``), as the base reads them."""
        try:
            return _Shards(self.__dict__["shards_"], self.__dict__["shard_ids_"])
        except KeyError:
            raise AttributeError("_index") from None

    @_index.setter
    def _index(self, shards):  # BaseIndex.fit stores what _build returned here
        self.shards_, self.shard_ids_ = shards.indexes, shards.ids

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
        return _ShardRows(self._index, (self.n_samples_fit_, self.n_features_in_))

    @_fit_X.setter
    def _fit_X(self, value):  # BaseIndex.fit stores the prepared rows here
        self.__dict__["_pending_X"] = value

    def _kneighbors(self, X, n_neighbors, return_distance, search, filter=None):
        if X is not None:
            return super()._kneighbors(X, n_neighbors, return_distance, search, filter)
        # the indexed rows are the queries: assemble them once for this call
        rows = getattr(_ASSEMBLED, "rows", None)
        if rows is None:
            rows = _ASSEMBLED.rows = {}
        self._check_fitted()
        rows[id(self)] = self._index.assemble(self.n_samples_fit_, self.n_features_in_)
        try:
            return super()._kneighbors(X, n_neighbors, return_distance, search, filter)
        finally:
            del rows[id(self)]

    def _prepare(self, X, name="X"):
        """Range-checked, rescaled float32 rows; each shard prepares them for the
        metric (unit rows for cosine) exactly as one index would."""
        return _distances.to_stored(X, self._scale, name)

    def _own_items(self, X, is_fit_X, first_id=0, exact=False):
        # the merge puts each query's own item in, in the shards' units
        return None

    def _own_global_ids(self, X, queries):
        """Each query's own indexed item (global id, -1: none), as the base finds it."""
        shards = self._index
        if isinstance(X, _StoredRows) or (
            X.shape[0] == self.n_samples_fit_
            and all(np.array_equal(Q[ids], shard.prepare_queries(shard.prepared_rows(),
                                                                 prepared=True))
                    for Q, shard, ids in zip(queries, shards.indexes, shards.ids))
        ):  # the fitted rows as queries
            return np.arange(X.shape[0])
        if self._is_exact():  # exact search finds identical rows by itself
            return None
        own = np.full(X.shape[0], -1)
        for Q, shard, ids in zip(queries, shards.indexes, shards.ids):
            local = shard.identical_items(Q)  # an identical row of this shard
            found = np.where(local >= 0, ids[np.maximum(local, 0)], -1)
            better = (found >= 0) & ((own < 0) | (found < own))
            own[better] = found[better]
        return own

    def _query_params(self):
        return self._template().query_params()

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

    def _removed_items(self, ids):
        """Each shard removes its own items (through its public ``remove``) and compacts
        by its own rule; a shard keeps an item that would be its last one (it stays a
        tombstone here: never returned)."""
        shards = self._index
        for shard, shard_ids in zip(shards.indexes, shards.ids):
            local = np.flatnonzero(np.isin(shard_ids, ids))
            if local.size and local.size < shard.n_items_:
                shard.remove(local)

    def _held_tombstones(self):
        return 0  # the shards compact themselves

    def _compact(self):
        for shard in self._index.indexes:
            shard.compact()

    def _search(self, X, k):
        return self._merge(X, k, exact=False)

    def _exact_search(self, X, k):
        return self._merge(X, k, exact=True)

    def _search_among(self, X, k, allowed):
        # each shard searches its own allowed rows (pre-filtered where it is exact)
        return self._merge(X, k, exact=True, allowed=allowed)

    def _merge(self, X, k, exact, allowed=None):
        """Every shard's k nearest, merged by (distance, own item first, global id);
        ``allowed``: the only global ids that may be returned."""
        shards = self._index
        # the shards' own rows (kneighbors(X=None)) are prepared already
        prepared = isinstance(X, _StoredRows)
        queries = [shard.prepare_queries(X.view(np.ndarray) if prepared else X, prepared=prepared)
                   for shard in shards.indexes]
        own = self._own_global_ids(X, queries)
        local = [None if allowed is None else np.flatnonzero(np.isin(ids, allowed))
                 for ids in shards.ids]
        found = self._map(
            (delayed(shard.kneighbors_prepared)(  # local ids, each query's own item put in
                Q, min(k, shard.n_samples_fit_), exact=exact, allowed=allowed_here,
                own_ids=None if own is None else _local_ids(own, ids))
             for shard, Q, ids, allowed_here in zip(shards.indexes, queries, shards.ids, local)),
            backend="threading",
        )
        dist = np.concatenate([d for d, _ in found], axis=1)
        ind = np.concatenate([np.where(i >= 0, ids[np.maximum(i, 0)], -1)
                              for (_, i), ids in zip(found, shards.ids)], axis=1)
        keys = (ind, dist) if own is None else (ind, ind != own[:, None], dist)
        order = np.lexsort(keys, axis=1)[:, :k]
        return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ind, order, axis=1)

    def _check_native_bytes(self, payload):
        raise CorruptIndexError(
            "ShardedIndex: the saved state holds native bytes, but a ShardedIndex stores "
            "its shards as indexes (shards_), never as bytes: the file was altered."
        )

    def _check_children(self, owner):
        """The loaded shards and their ids make up this index's collection, in order."""
        state = self.__dict__
        if "shards_" not in state and "shard_ids_" not in state and "n_samples_fit_" not in state:
            return  # not fitted
        self._check_fitted_scalars(owner)
        shards, ids = state.get("shards_"), state.get("shard_ids_")
        fit_params, problem = state.get("_fit_params"), None
        if "_pending_X" in state or not isinstance(shards, list) or not isinstance(ids, list):
            problem = "the shards or their ids are missing"
        elif len(shards) != len(ids) or len(shards) != (
                fit_params.get("n_shards") if isinstance(fit_params, dict) else None):
            problem = f"{len(shards)} shards, {len(ids)} lists of ids"
        elif not all(isinstance(shard, BaseIndex) and hasattr(shard, "n_samples_fit_")
                     for shard in shards):
            problem = "a shard is not a fitted index"
        elif any(not isinstance(i, np.ndarray) or i.ndim != 1 or i.dtype.kind not in "iu"
                 or len(i) != shard.n_samples_fit_ or shard.n_features_in_ != self.n_features_in_
                 or shard.metric_ != self.metric_ for shard, i in zip(shards, ids)):
            problem = "a shard's size, features or metric differ from its ids or this index"
        elif sum(len(i) for i in ids) != self.n_samples_fit_:  # before allocating anything
            problem = f"the shards hold {sum(len(i) for i in ids)} items, not {self.n_samples_fit_}"
        elif not np.array_equal(np.sort(np.concatenate(ids)), np.arange(self.n_samples_fit_)) or (
                any((np.diff(i) <= 0).any() for i in ids)):
            problem = f"the shards' ids are not the ascending ids 0..{self.n_samples_fit_ - 1}"
        if problem:
            raise CorruptIndexError(f"{owner}: {problem}; the shards do not belong to this state.")
