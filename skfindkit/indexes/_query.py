"""The query side of every index: ``kneighbors`` and what it guarantees.

One path serves :meth:`~KNeighborsQueryMixin.kneighbors` (the backend's
search) and :meth:`~KNeighborsQueryMixin.exact_kneighbors` (brute force over
the stored data): validate and prepare the queries, search, convert the
backend's distances into the metric's units, complete rows the backend left
short, put each query's own indexed item into its row (:mod:`._self`), apply
``kneighbors(X=None)``'s self-exclusion and undo the magnitude rescaling --
all inside the index's read lock. Mixed into :class:`BaseIndex` (as
scikit-learn's ``KNeighborsMixin`` is into its neighbours estimators).
"""

import warnings
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from . import _distances, _sparse
from ._brute import brute_force_kneighbors, rerank_exact, verify_flat_scan
from ._brute_matrix import BruteForceMatrix
from ._lock import runtime_state
from ._self import RowLookup, drop_self, insert_self, row_keys

__all__ = ["KNeighborsQueryMixin"]


def _valid_ids(ind, n_samples):
    """A backend's ids as intp, -1 wherever one is not an indexed item's."""
    ind = np.asarray(ind)
    if ind.dtype.kind == "u":  # hnswlib's uint64 labels: no wrap-around into valid ids
        ind = np.where(ind < n_samples, ind, n_samples).astype(np.intp)
    ind = np.asarray(ind, dtype=np.intp)
    return np.where((ind >= 0) & (ind < n_samples), ind, -1)


def _overflowed(native, ind, X):
    """Rows whose native (float32) distances overflowed: an answer the backend could not rank.

    A distance at a returned id that is not finite or reaches float32's
    largest value (faiss's "nothing found" marker), or a dense query whose
    squared norm is within a factor 4 of it (its squared distances overflow
    float32 in every backend, which may then return no id at all).
    """
    rows = np.zeros(ind.shape[0], dtype=bool)
    if native is not None:
        native = np.asarray(native, dtype=np.float64)
        if native.shape == ind.shape:
            rows |= (~(np.abs(native) < _distances.FLOAT32_MAX) & (ind >= 0)).any(axis=1)
    if not sp.issparse(X):
        rows |= np.einsum("ij,ij->i", X, X, dtype=np.float64) >= _distances.FLOAT32_MAX / 4
    return rows


class KNeighborsQueryMixin:
    """``kneighbors``, ``exact_kneighbors`` and ``labels_of`` of :class:`BaseIndex`."""

    def _candidate_scorer(self):
        """``(scores, scores_error)``: a native kernel scoring ``refine``'s
        candidates and the relative error bound of its squared distances (see
        ``rerank_exact``), or None for numpy's; backends with one override this."""
        return None

    def _flat_scan_unit(self):
        """For a configuration that is another library's float32 flat scan
        (declared exact), the unit of its native values (``"sqeuclidean"`` or
        ``"dot"``) so that the base can prove its answers; None otherwise."""
        return None

    def _verified_flat_search(self, X, k, unit):
        """A flat scan's answers, proven exact row by row (:func:`verify_flat_scan`);
        rows it cannot prove (far queries, near-ties within float32's error)
        are searched exactly by brute force over the stored data."""
        n_native = self._n_native()  # fewer than the ids once removed items left it
        kk = min(n_native, 2 * k)
        native, cand = self._search(X, kk)
        state = runtime_state(self)
        if state.max_norm is None:
            state.max_norm = max(
                (float(np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64).max()))
                 for _, rows in self._vector_blocks() if rows.shape[0]), default=0.0)
        dist, ind, proven = verify_flat_scan(
            X, self._data, native, np.asarray(cand, dtype=np.intp), k, self.metric_, unit,
            state.max_norm)
        if kk == n_native:  # nothing left out: only invalid rows need more
            proven |= (np.asarray(cand) >= 0).all(axis=1) & np.isfinite(native).all(axis=1)
        if not proven.all():
            dist[~proven], ind[~proven] = self._exact_search(X[~proven], k)
        return dist, ind

    def _native_unit(self):
        unit = self._native_distance
        return unit[self.metric_] if isinstance(unit, dict) else unit

    def _to_metric_units(self, native, X, ind):
        """The backend's distances -> the metric's units, -1 ids at ``inf``."""
        unit = self._native_unit()
        if unit == "recompute":
            return _distances.exact_distances(X, self._data, ind, self.metric_)
        dist = _distances.from_native(native, unit, self.metric_)
        dist[ind < 0] = np.inf
        return dist

    def _exact_search(self, X, k):
        """Brute force over the stored data: the one exact path of every index.

        Where the backend stores the vectors, they are read back block by
        block and the best ``k`` of each block merged (ties by id, as one scan).
        """
        batch_size = getattr(self, "batch_size", None)
        if sp.issparse(self._fit_X):
            matrix = self._index if isinstance(self._index, _sparse.SparseBruteForce) else None
            return _sparse.sparse_kneighbors(
                self._fit_X, X, k, self.metric_, batch_size=batch_size, matrix=matrix,
            )
        if self._keeps_vectors():
            matrix = self._index if isinstance(self._index, BruteForceMatrix) else None
            if matrix is None:  # built once per fitted state, like the row lookup
                state = runtime_state(self)
                if state.brute_matrix is None:
                    state.brute_matrix = BruteForceMatrix(self._fit_X, self.metric_)
                matrix = state.brute_matrix
            return brute_force_kneighbors(
                self._fit_X, X, k, self.metric_, batch_size=batch_size,
                n_threads=self._n_threads(), matrix=matrix,
            )
        dist = np.empty((X.shape[0], 0))
        ind = np.empty((X.shape[0], 0), dtype=np.intp)
        for start, rows in self._vector_blocks():
            d, i = brute_force_kneighbors(
                rows, X, min(k, rows.shape[0]), self.metric_, batch_size=batch_size,
                n_threads=self._n_threads(),
            )
            dist, ind = np.hstack([dist, d]), np.hstack([ind, i + start])
            order = np.lexsort((ind, dist), axis=1)[:, :k]
            dist = np.take_along_axis(dist, order, axis=1)
            ind = np.take_along_axis(ind, order, axis=1)
        return dist, ind

    def _own_items(self, X, is_fit_X, first_id=0, exact=False):
        """Each query's own indexed item (its row number, or an identical row), -1 if none.

        ``exact``: the search is exact (brute force over the stored rows),
        which finds identical rows by itself, ties by id.
        """
        if sp.issparse(X):  # sparse search is exact: each item finds itself
            return None
        if is_fit_X:
            return np.arange(first_id, first_id + X.shape[0])
        if exact or self._is_exact():  # exact search finds identical rows by itself
            return None
        return self._row_lookup().find(X)

    def _row_lookup(self):
        """The indexed rows by their values (built by the first query after a write)."""
        state = runtime_state(self)
        lookup = state.row_lookup
        if lookup is None:  # readers agree: any of them may build it
            lookup = state.row_lookup = RowLookup(self._data, getattr(self, "_fit_keys", None))
        return lookup

    def _is_fit_X(self, X):
        """Whether the queries are the indexed rows, in order."""
        if X.shape[0] != self.n_samples_fit_ or sp.issparse(X):
            return False
        if self._keeps_vectors():
            return np.array_equal(X, self._fit_X)
        # by the rows' hashes: a collision only makes insert_self compare an
        # item's exact distance with the list, which is always correct
        return bool((row_keys(X) == self._fit_keys).all())

    def _check_query(self, X):
        """Validate and prepare queries.

        A well-formed float ndarray (the common case in a pipeline) takes a
        fast path with the same checks -- 2-D, non-empty, the fitted number of
        features, finite -- because ``validate_data`` alone costs more than a
        whole small batch of approximate queries; anything else, and every
        failure, goes through ``validate_data`` for scikit-learn's messages.
        """
        if (
            isinstance(X, np.ndarray)
            and X.dtype in (np.float32, np.float64)
            and X.ndim == 2
            and X.shape[0] > 0
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
            and np.isfinite(X).all()
            and not sp.issparse(self._fit_X)
        ):
            return self._prepare(X)  # checks the float32 range
        return self._prepare(_sparse.like_fitted(self._validate(X, reset=False), self._fit_X))

    def _default_n_neighbors(self):
        """The number of neighbours of a query that does not say (``n_neighbors``)."""
        return self.n_neighbors

    def _check_fitted(self):
        if not hasattr(self, "n_samples_fit_"):  # cheap in the fitted case
            check_is_fitted(self)

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True, *, filter=None):
        """Find the nearest indexed items of each query.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Queries. If None, the neighbours of each indexed item are
            returned, the item itself excluded.
        n_neighbors : int, default=None
            Number of neighbours; defaults to the constructor's value.
        return_distance : bool, default=True
            Whether to return distances.
        filter : array-like or list of array-like, default=None
            Items each query may return: a boolean mask over ids (length
            ``n_samples_fit_``, dtype bool: a 0/1 integer column is read as
            ids), an array of allowed ids (each once), or a list of those
            with one entry per query row. Removed items are never returned,
            filter or not.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors)
            Distances in the metric's true units, ascending; only if
            ``return_distance=True``. ``inf`` in the slots of a row that fewer
            than ``n_neighbors`` allowed items could fill.
        neigh_ind : ndarray of shape (n_queries, n_neighbors)
            Ids (row numbers in the fitted data) of the neighbours; ``-1`` in
            unfilled slots. With ``X=None``, the rows of removed items are
            all unfilled.
        """
        with self._reading():
            return self._kneighbors(X, n_neighbors, return_distance, self._search_complete,
                                    filter)

    def exact_kneighbors(self, X=None, n_neighbors=None, return_distance=True, *, filter=None):
        """The exact nearest indexed items, by brute force over the stored data.

        The same contract as :meth:`kneighbors` (validation, units,
        ``X=None``), but the answer is exact whatever the backend: the
        reference an approximate index is measured against (it is what
        ``make_retrieval_scorer("recall")`` compares with), at the cost of a
        scan of every indexed item per query.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Queries; None means the indexed items, each excluded from its own
            neighbours.
        n_neighbors : int, default=None
            Number of neighbours; defaults to the constructor's value.
        return_distance : bool, default=True
            Whether to return distances.
        filter : array-like or list of array-like, default=None
            Items each query may return: a boolean mask over ids (length
            ``n_samples_fit_``, dtype bool: a 0/1 integer column is read as
            ids), an array of allowed ids (each once), or a list of those
            with one entry per query row. Removed items are never returned,
            filter or not.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors)
            Exact distances, ascending (ties by id); only if
            ``return_distance=True``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors)
            Ids of the exact neighbours.

        Examples
        --------
        >>> import numpy as np
        >>> from skfindkit import HNSWIndex
        >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
        >>> HNSWIndex(n_neighbors=2).fit(X).exact_kneighbors([[0.1, 0.0]], return_distance=False)
        array([[0, 1]])
        """
        with self._reading():
            return self._kneighbors(X, n_neighbors, return_distance, self._exact_search, filter)

    def labels_of(self, ind):
        """Labels given to :meth:`fit` (``y``) of the indexed items ``ind``.

        Parameters
        ----------
        ind : array-like of int
            Ids of indexed items (e.g. what :meth:`kneighbors` returns).

        Returns
        -------
        labels : ndarray of the same shape as ``ind``

        Examples
        --------
        >>> from skfindkit import ExactIndex
        >>> index = ExactIndex(n_neighbors=1).fit([[0.0], [1.0], [5.0]], ["a", "b", "c"])
        >>> index.labels_of(index.kneighbors([[4.0]], return_distance=False))
        array([['c']], dtype='<U1')
        """
        self._check_fitted()
        if self._fit_y is None:
            raise ValueError(
                f"{type(self).__name__} was fitted without labels: fit it with "
                "fit(X, y) to get the labels of retrieved items."
            )
        return self._fit_y[np.asarray(ind, dtype=np.intp)]

    def _checked_n_neighbors(self, n_neighbors=None):
        """``n_neighbors`` (None: the parameter, checked too since ``set_params``
        after ``fit`` skips fit's checks) as an int; floats and bools refused."""
        if n_neighbors is None:
            n_neighbors = self._default_n_neighbors()
        if not isinstance(n_neighbors, Integral) or isinstance(n_neighbors, bool):
            raise TypeError(
                f"n_neighbors does not take {type(n_neighbors)} value, enter integer value"
            )
        if n_neighbors <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {n_neighbors}")
        return int(n_neighbors)

    def _kneighbors(self, X, n_neighbors, return_distance, search, filter=None):
        """``kneighbors`` with ``search(prepared_X, k) -> (dist, ind)``."""
        self._check_fitted()
        n_neighbors = self._checked_n_neighbors(n_neighbors)

        query_is_train = X is None
        if query_is_train:
            n_neighbors += 1
        else:
            X = self._check_query(X)
        n_items = self._n_live()
        masks = self._allowed_masks(filter, self.n_samples_fit_ if query_is_train else X.shape[0])

        if n_neighbors > n_items:
            if query_is_train:
                n_neighbors -= 1
                inequality_str = "n_neighbors < n_samples_fit"
            else:
                inequality_str = "n_neighbors <= n_samples_fit"
            raise ValueError(
                f"Expected {inequality_str}, but n_neighbors = {n_neighbors}, "
                f"n_samples_fit = {n_items}, "
                f"n_samples = {n_items if query_is_train else X.shape[0]}"
                + ("" if n_items == self.n_samples_fit_ else " (live items)")
            )

        if query_is_train:  # the indexed rows, block by block where the backend stores them
            parts = [self._search_with_self(
                rows, n_neighbors, search, True, start, True,
                masks if masks is None or masks.ndim == 1 else masks[start:start + rows.shape[0]])
                for start, rows in self._vector_blocks()]
            dist, ind = (np.concatenate(p) for p in zip(*parts))
            removed = self._removed_mask()
            if removed is not None:  # a removed item has no row of neighbours
                dist[removed], ind[removed] = np.inf, -1
        else:
            # the query set is the indexed set: each row's own item must be in
            # it (as sklearn's brute force finds it), which a graph search may miss
            dist, ind = self._search_with_self(X, n_neighbors, search, self._is_fit_X(X),
                                               masks=masks)
        dist = _distances.unscale(dist, self._scale, self.metric_)
        return (dist, ind) if return_distance else ind

    def _search_with_self(self, X, k, search, is_fit_X, first_id=0, drop=False, masks=None):
        """``search``, with each query's own item put in (and dropped if ``drop``);
        ``masks``: the allowed items (see ``_allowed_masks``), None for all."""
        if masks is None:
            dist, ind = search(X, k)
        else:
            dist, ind = self._search_allowed(search, X, k, masks)
        own = self._own_items(X, is_fit_X, first_id, exact=search == self._exact_search)
        if own is not None and masks is not None:  # an item not allowed is not put in
            ok = own >= 0
            allowed = masks[np.maximum(own, 0)] if masks.ndim == 1 else (
                masks[np.arange(own.size), np.maximum(own, 0)])
            own = np.where(ok & allowed, own, -1)
        if own is not None:
            dist, ind = insert_self(X, self._data, dist, ind, own, self.metric_)
        if drop:
            dist, ind = drop_self(dist, ind, first_id)
        return dist, ind

    def _search_complete(self, X, k, warn=True, mask=None, native_params=None):
        """Run the backend and guarantee k valid, sorted results per row.

        With ``refine`` (approximate backends), the backend is asked for
        ``refine * k`` candidates, re-ranked by exact distance over the
        stored data. ``warn``: say when the backend left rows short (not for
        a filtered search's over-fetch, which asks for more than ``k``).
        ``mask``: the allowed items, for a backend with a native filter
        (``_search_masked``); rows it leaves short are searched exactly among them.
        ``native_params``: keyword arguments for the backend's ``_search`` (see
        ``_widened_params``), None for its defaults.
        """
        if X.shape[0] == 0:
            return np.empty((0, k)), np.empty((0, k), dtype=np.intp)
        refine = getattr(self, "refine", None)
        flat = self._flat_scan_unit() if self._is_exact() and refine is None else None
        if flat is not None:  # another library's flat scan: proven, or searched exactly
            return self._verified_flat_search(X, k, flat)
        fetch = k if refine is None else min(self.n_samples_fit_, refine * k)
        if mask is None:
            native, ind = self._search(X, fetch, **(native_params or {}))
            exact_search = self._exact_search
        else:
            native, ind = self._search_masked(X, fetch, mask)
            allowed = np.flatnonzero(mask)

            def exact_search(Q, kk):
                return self._search_among(Q, kk, allowed)
        ind = _valid_ids(ind, self.n_samples_fit_)
        if mask is not None:  # what the native filter let through, checked
            ind = np.where(mask[np.maximum(ind, 0)], ind, -1)
        # an exact backend (its own float64 distances) never overflows float32
        overflowed = (np.zeros(X.shape[0], dtype=bool) if self._native_unit() == "exact"
                      else _overflowed(native, ind, X))
        if refine is None:
            dist = self._to_metric_units(native, X, ind)
        else:
            scores, error = self._candidate_scorer() or (None, None)
            dist, ind = rerank_exact(X, self._data, ind, k, self.metric_,
                                     scores=scores, scores_error=error,
                                     zero_rows=getattr(self, "_zero_rows", None))
        if self.metric_ == "cosine" and not sp.issparse(X):  # sparse search does it itself
            _distances.zero_vectors_at_distance_one(dist, ind, X, self._zero_rows)
        missing = (ind < 0).any(axis=1) & ~overflowed
        if missing.any() and warn:
            warnings.warn(
                f"{type(self).__name__}: the {self._backend} search returned fewer "
                f"than {k} neighbours for {int(missing.sum())} of {X.shape[0]} "
                "queries (search parameters too small for k); those rows were "
                "completed by exact search. Increase the search parameters.",
                UserWarning,
            )
        redo = missing | overflowed  # the backend's float32 distances overflowed: exact
        if redo.any():
            dist[redo], ind[redo] = exact_search(X[redo], k)
        if (dist[:, 1:] < dist[:, :-1]).any():
            order = np.argsort(dist, axis=1, kind="stable")
            dist = np.take_along_axis(dist, order, axis=1)
            ind = np.take_along_axis(ind, order, axis=1)
        return dist, ind

