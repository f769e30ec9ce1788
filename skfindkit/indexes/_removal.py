"""Removal and filtered search, shared by every index.

An index's items keep their ids for life: ``remove(ids)`` marks them removed
(a boolean tombstone per id, ``_removed``), later ``partial_fit`` calls number
new items after the largest id ever assigned, and no removed id is reused.
Every query path of :class:`~skfindkit.indexes.BaseIndex` then searches only
*allowed* items -- live ones, intersected with the query's ``filter`` -- in one
of three ways (:func:`search_allowed`):

* **pre-filter**: exact searches (exact indexes, ``exact_kneighbors``) and
  small allowed sets compute distances to the allowed rows only
  (``_search_among``), so a 1 % filter costs about 1 % of a full scan;
* **native filter**: hnswlib's own filtered graph walk (removed items are
  marked deleted in its graph), rows it leaves short answered exactly;
* **adaptive over-fetch**: the other approximate searches ask the backend for
  enough candidates to hold ``k`` allowed ones (:func:`first_fetch`: ``k / share``
  plus two binomial standard deviations, ``share`` being the allowed fraction of
  the items the native structure holds, so a compacted index fetches just ``k``),
  and widen the native search in proportion (:meth:`RemovalMixin._widened_params`:
  annoy inspects ``search_k / share`` nodes), so that as many allowed candidates
  are ranked as in an index of the allowed items alone. Queries left with fewer
  than ``k`` allowed items are asked again, twice as wide, at most
  :data:`MAX_ROUNDS` times in all; the rows still short then are answered exactly
  among the allowed rows.

The over-fetch gives way to an exact scan of the allowed rows (pre-filter) when
that is the cheaper choice: when there are at most
:data:`SCAN_ROWS_PER_CANDIDATE` allowed rows per candidate the search would fetch
(a tree or graph search spends, per candidate it returns, about what a BLAS scan
spends on hundreds of rows; measured in ``benchmarks/results/lifecycle.md``). With
``k = 10`` over 100k items that is a filter passing less than about 20 % of them,
and every filter or removal on a small index (a few thousand items).

A query row gets fewer than ``k`` results only when fewer than ``k`` items
pass its filter; the missing slots hold id ``-1`` at distance ``inf`` (the
graphs of ``kneighbors_graph``/``transform`` leave them out).
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._brute import brute_force_kneighbors
from ._brute_matrix import BruteForceMatrix
from ._lock import runtime_state
from . import _sparse

__all__ = ["DEFAULT_TOMBSTONE_SHARE", "RemovalMixin", "UnknownItemError", "first_fetch",
           "search_allowed"]

#: Share of removed ids past which an approximate index compacts by default.
DEFAULT_TOMBSTONE_SHARE = 0.2
#: Rounds of over-fetch (each twice as wide) before the short rows are answered exactly.
MAX_ROUNDS = 3
#: The allowed rows are scanned exactly when there are at most this many per candidate
#: the over-fetching search would fetch (an exact scan costs that much less per row).
SCAN_ROWS_PER_CANDIDATE = 256
#: An exact search that leaves out at most this many items (and at most 1/8 of them)
#: scans everything and drops them, instead of gathering the allowed rows.
FEW_EXCLUDED = 1024


class UnknownItemError(ValueError):
    """An id given to ``remove`` (or a filter) that is not a live item of the index."""


def _as_ids(ids, n_ids, what):
    """``ids`` as a 1-D intp array of existing ids (``0 <= id < n_ids``), or a clear error."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"{what} must be a 1-D array of integer item ids, got dtype "
                         f"{arr.dtype} and shape {arr.shape}.")
    arr = arr.astype(np.intp, copy=False)
    bad = arr[(arr < 0) | (arr >= n_ids)]
    if bad.size:
        raise UnknownItemError(
            f"{what}: unknown item ids {bad[:10].tolist()}; ids run from 0 to {n_ids - 1}.")
    return arr


_FILTER_KINDS = ("a boolean mask over ids, an array of ids, or a list of those (one per "
                 "query)")


def _filter_array(value, what):
    """``np.asarray(value)``, with a ragged (inhomogeneous) nesting refused by name."""
    try:
        return np.asarray(value)
    except ValueError:
        raise ValueError(f"{what} must be {_FILTER_KINDS}; got a ragged nested list.") from None


def _one_mask(value, n_ids, what):
    """A boolean mask over ids, or an array of allowed ids -> a boolean mask of length ``n_ids``."""
    arr = _filter_array(value, what)
    if arr.dtype == bool:
        if arr.shape != (n_ids,):
            raise ValueError(
                f"{what}: a boolean filter must have one entry per id ({n_ids}), "
                f"got shape {arr.shape}.")
        return arr
    ids = _as_ids(arr, n_ids, what)
    mask = np.zeros(n_ids, dtype=bool)
    mask[ids] = True
    if np.count_nonzero(mask) != ids.size:
        unique, counts = np.unique(ids, return_counts=True)
        raise ValueError(
            f"{what}: repeated item ids {unique[counts > 1][:10].tolist()}; an id array names "
            "each allowed item once. For a 0/1 column over all items, pass a boolean mask "
            "(e.g. column.astype(bool)).")
    return mask


def parse_filter(filter, n_ids, n_queries):
    """``kneighbors``' ``filter`` -> None, a shared mask (``(n_ids,)``) or one mask per query
    (``(n_queries, n_ids)``)."""
    if filter is None:
        return None
    if callable(filter):
        raise TypeError(f"filter must be {_FILTER_KINDS}, not a callable.")
    per_query = (isinstance(filter, (list, tuple)) and len(filter)
                 and all(_filter_array(f, "filter").ndim == 1 for f in filter))
    if not per_query and _filter_array(filter, "filter").ndim == 2:
        per_query = True
    if not per_query:
        return _one_mask(filter, n_ids, "filter")
    if len(filter) != n_queries:
        raise ValueError(
            f"filter: {len(filter)} per-query filters given for {n_queries} queries; give "
            "one mask or id array per query row, or one shared by all.")
    return np.stack([_one_mask(f, n_ids, f"filter[{r}]") for r, f in enumerate(filter)])


def _take_allowed(dist, ind, ok, k):
    """The first ``k`` allowed entries (``ok``) of each sorted row, -1/inf where fewer."""
    order = np.argsort(~ok, axis=1, kind="stable")[:, :k]
    d = np.take_along_axis(np.where(ok, dist, np.inf), order, axis=1)
    i = np.take_along_axis(np.where(ok, ind, -1), order, axis=1)
    return d, i


def first_fetch(k, share):
    """Candidates to fetch so that ``k`` are allowed when a share ``share`` of them is:
    ``k / share`` plus two standard deviations of that binomial count (``k`` at share 1)."""
    return int(np.ceil((k + 2.0 * np.sqrt(k * (1.0 - share))) / share))


def search_allowed(index, search, X, k, mask, exact):
    """``k`` nearest allowed items (``mask`` over ids) of each query, padded with -1/inf.

    ``search(X, k)`` is the index's search (complete rows of ``k`` valid ids);
    ``exact``: it is exact, so pre-filtering gives the same answer for less work.
    The rule that chooses between over-fetch and an exact scan of the allowed
    rows is the module's (see its docstring).
    """
    n_q, n = X.shape[0], mask.size
    dist = np.full((n_q, k), np.inf)
    ind = np.full((n_q, k), -1, dtype=np.intp)
    allowed = np.flatnonzero(mask)
    m = min(k, allowed.size)
    if n_q == 0 or m == 0:
        return dist, ind
    if allowed.size == n:
        dist[:], ind[:] = search(X, k)
        return dist, ind
    if exact and n - allowed.size <= min(FEW_EXCLUDED, n // 8):
        # a few items left out (removals): the full scan's first k + few hold the answer,
        # cheaper than gathering the allowed rows
        d, i = search(X, min(n, k + n - allowed.size))
        ok = (i >= 0) & mask[np.maximum(i, 0)]
        dist[:, :m], ind[:, :m] = _take_allowed(d, i, ok, m)
        return dist, ind
    held = index._n_held()
    share = allowed.size / max(held, allowed.size)
    fetch = first_fetch(m, share)
    todo = np.arange(n_q)
    if not exact and allowed.size > SCAN_ROWS_PER_CANDIDATE * fetch:
        if hasattr(index, "_search_masked"):
            # the backend filters natively: k allowed items, short rows searched exactly
            dist[:, :m], ind[:, :m] = index._search_complete(X, m, warn=False, mask=mask)
            return dist, ind
        widen = 1.0 / share
        for _ in range(MAX_ROUNDS):
            if fetch >= held:
                break
            if search == index._search_complete:  # asked for more than k: short rows expected
                d, i = search(X[todo], fetch, warn=False,
                              native_params=index._widened_params(m, widen))
            else:
                d, i = search(X[todo], fetch)
            ok = (i >= 0) & mask[np.maximum(i, 0)]
            done = ok.sum(axis=1) >= m
            dist[todo[done], :m], ind[todo[done], :m] = _take_allowed(
                d[done], i[done], ok[done], m)
            todo = todo[~done]
            if not todo.size:
                return dist, ind
            fetch, widen = 2 * fetch, 2 * widen
    # exact, the cheaper choice, or rows the over-fetch left short: scan the allowed rows
    dist[todo, :m], ind[todo, :m] = index._search_among(X[todo], m, allowed)
    return dist, ind


class RemovalMixin:
    """``remove``, ``compact``, ``n_items_`` and the allowed-item query path of every index."""

    # ------------------------------------------------------------ state
    def _removed_mask(self):
        """Boolean tombstones over ids, or None when nothing was ever removed."""
        return getattr(self, "_removed", None)

    @property
    def n_items_(self):
        """Number of live items (indexed and not removed)."""
        check_is_fitted(self, "n_samples_fit_")
        return self._n_live()

    def _n_live(self):
        removed = self._removed_mask()
        return self.n_samples_fit_ - (0 if removed is None else int(np.count_nonzero(removed)))

    @property
    def live_mask_(self):
        """Boolean mask over ids (``n_samples_fit_`` entries): True for live items."""
        check_is_fitted(self, "n_samples_fit_")
        removed = self._removed_mask()
        return np.ones(self.n_samples_fit_, dtype=bool) if removed is None else ~removed

    def is_live(self, ids):
        """Whether each of ``ids`` is a live item (False for removed ids).

        Parameters
        ----------
        ids : array-like of int
            Item ids (as returned by ``kneighbors``).

        Returns
        -------
        live : ndarray of bool of the same shape
        """
        ids = np.asarray(ids, dtype=np.intp)
        self._check_fitted()
        ok = (ids >= 0) & (ids < self.n_samples_fit_)
        live = self.live_mask_
        return ok & live[np.where(ok, ids, 0)]

    def _grow_removed(self, n_new):
        """``partial_fit`` added ``n_new`` live items after the existing ids."""
        removed = self._removed_mask()
        if removed is not None:
            self._removed = np.concatenate([removed, np.zeros(n_new, dtype=bool)])

    # --------------------------------------------------------- removal
    def remove(self, ids):
        """Remove items from the index; the other items keep their ids.

        Removed items never appear again in any result (``kneighbors``,
        ``transform``, graphs, metrics) and stay removed through pickling and
        :func:`skfindkit.io.save`. Their ids are never reused: ``partial_fit``
        numbers new items after the largest id ever assigned.

        Parameters
        ----------
        ids : int or array-like of int
            Ids of live items, as returned by :meth:`kneighbors`.

        Returns
        -------
        self : object
            The index.

        Raises
        ------
        UnknownItemError
            If an id is not a live item (unknown, already removed, or given
            twice); nothing is removed then.
        ValueError
            If the call would remove every item.
        """
        self._check_fitted()
        with self._writing():
            n = self.n_samples_fit_
            ids = _as_ids(ids, n, "remove")
            uniq, counts = np.unique(ids, return_counts=True)
            if (counts > 1).any():
                raise UnknownItemError(
                    f"remove: ids given more than once: {uniq[counts > 1][:10].tolist()}.")
            removed = self._removed_mask()
            removed = np.zeros(n, dtype=bool) if removed is None else removed.copy()
            gone = uniq[removed[uniq]]
            if gone.size:
                raise UnknownItemError(f"remove: items already removed: {gone[:10].tolist()}.")
            removed[uniq] = True
            if removed.all():
                raise ValueError(
                    f"remove: removing {uniq.size} items would leave the index empty; fit "
                    "a new index instead.")
            self._removed = removed
            self._removed_items(uniq)
            self._changed_native_index()
            held = self._held_tombstones()
            if held and held > self._tombstone_share() * (held + self._n_live()):
                self._compact()
        return self

    def _tombstone_share(self):
        """Share of removed ids past which ``remove`` compacts: ``max_tombstone_share``
        where the index has it, 0 for exact indexes (they remove for real at once),
        else :data:`DEFAULT_TOMBSTONE_SHARE`."""
        share = getattr(self, "_fit_params", {}).get("max_tombstone_share")
        if share is not None:
            return share
        return 0.0 if self._is_exact() else DEFAULT_TOMBSTONE_SHARE

    def _held_tombstones(self):
        """Removed items the native structure still holds (all of them, unless the
        backend's ``_compact`` drops them)."""
        return int(np.count_nonzero(self._removed_mask()))

    def _n_held(self):
        """Items the native search ranks: the live ones and the tombstones it still holds."""
        return self._n_live() + (0 if self._removed_mask() is None else self._held_tombstones())

    def _removed_items(self, ids):
        """Backend hook: ``ids`` were just marked removed (e.g. hnswlib's ``mark_deleted``)."""

    def _widened_params(self, k, widen):
        """Backend hook: keyword arguments of ``_search`` that make a search for ``k``
        items rank ``widen`` times as many candidates (an over-fetch among tombstones or a
        filter passing ``1 / widen`` of the items). None where the backend has no such
        per-query knob (its search then widens only with the number it is asked for)."""
        return None

    def compact(self):
        """Rebuild the index without its removed items; ids do not change.

        Exact indexes answer as a fresh fit on the live items would (with the
        same ids). Approximate indexes call this automatically once the share
        of removed ids passes ``max_tombstone_share``.

        Returns
        -------
        self : object
            The index.
        """
        self._check_fitted()
        with self._writing():
            if self._removed_mask() is not None:
                self._compact()
        return self

    def _compact(self):
        """Backend hook (under the write lock): drop what removed items cost.

        The default keeps the tombstones: every query path leaves removed
        items out already.
        """

    # ---------------------------------------------------- query support
    def _allowed_masks(self, filter, n_queries):
        """Live items intersected with ``filter``: None (everything), one mask, or one per query."""
        masks = parse_filter(filter, self.n_samples_fit_, n_queries)
        removed = self._removed_mask()
        if removed is not None:
            masks = ~removed if masks is None else masks & ~removed
        return masks

    def _search_among(self, X, k, allowed):
        """Exact ``k`` nearest among the items ``allowed`` (sorted ids): distances to those
        rows only (the pre-filter of exact search)."""
        state = runtime_state(self)
        cached = state.allowed_rows
        if cached is not None and np.array_equal(cached[0], allowed):
            rows, matrix = cached[1], cached[2]
        else:
            data = self._data
            rows = data[allowed] if hasattr(data, "__getitem__") else np.asarray(data)[allowed]
            matrix = None
            if not sp.issparse(rows):
                rows = np.ascontiguousarray(rows, dtype=np.float32)
                matrix = BruteForceMatrix(rows, self.metric_)
            state.allowed_rows = (allowed, rows, matrix)  # the next query likely asks the same
        batch_size = getattr(self, "batch_size", None)
        if sp.issparse(rows):
            d, i = _sparse.sparse_kneighbors(rows, X, k, self.metric_, batch_size=batch_size)
        else:
            d, i = brute_force_kneighbors(rows, X, k, self.metric_, batch_size=batch_size,
                                          n_threads=self._n_threads(), matrix=matrix)
        return d, allowed[i]

    def _search_allowed(self, search, X, k, masks):
        """``search`` restricted to the allowed items: ``masks`` is one mask over ids
        shared by every query, or one per query row."""
        exact = search == self._exact_search or (
            self._is_exact() and getattr(self, "refine", None) is None)
        if masks.ndim == 1:
            return search_allowed(self, search, X, k, masks, exact)
        dist = np.empty((X.shape[0], k))
        ind = np.empty((X.shape[0], k), dtype=np.intp)
        groups, which = np.unique(masks, axis=0, return_inverse=True)
        which = which.ravel()
        for g, mask in enumerate(groups):  # queries sharing a filter are searched together
            r = np.flatnonzero(which == g)
            dist[r], ind[r] = search_allowed(self, search, X[r], k, mask, exact)
        return dist, ind

    def _erase_removed(self):
        """Overwrite the stored rows of removed items with zeros (exact indexes, whose
        rows are only ever read from ``_fit_X``): their data leave memory and files."""
        removed = self._removed_mask()
        X = self._fit_X
        if sp.issparse(X):
            keep = np.repeat(~removed, np.diff(X.indptr))
            X = sp.csr_matrix((X.data[keep], X.indices[keep],
                               np.concatenate([[0], np.cumsum((~removed) * np.diff(X.indptr))])),
                              shape=X.shape)
        else:
            state = runtime_state(self)
            if not state.owns_rows:  # the rows may be the caller's array: never written
                X = np.array(X, dtype=np.float32, order="C")
                state.owns_rows = True
            X[removed] = 0.0
        self._fit_X = X
