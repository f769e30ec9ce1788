"""The public seam an index made of indexes drives its parts through.

A composite (:class:`~skfindkit.ShardedIndex`) prepares its queries once and
merges its parts' answers; each part must search rows that are already
prepared, in the composite's units, and hand back distances in those units.
These methods are that contract, mixed into :class:`BaseIndex`: a composite
uses them, ``fit``/``partial_fit`` and ``set_params``, and nothing private of
its parts (as scikit-learn's meta-estimators use their children only through
public methods).

"Prepared" rows are float32, C-contiguous, unit rows for the cosine metric, in
the units of the data given to ``fit`` (an index's internal power-of-two
rescaling of tiny or huge magnitudes is applied and undone inside).
"""

import numpy as np
import scipy.sparse as sp

from . import _distances
from ._self import insert_self

__all__ = ["PreparedSearchMixin"]


class PreparedSearchMixin:
    """``prepare_queries``, ``prepared_rows``, ``kneighbors_prepared``, ``identical_items``,
    ``query_params`` and ``is_exact`` of :class:`BaseIndex`."""

    def is_exact(self):
        """Whether this configured index returns the exact neighbours.

        Returns
        -------
        exact : bool
        """
        return self._is_exact()

    def query_params(self):
        """The query-time parameters (applied without refitting), e.g. ``{"ef_search": 50}``.

        Returns
        -------
        params : dict
        """
        return self._query_params()

    def prepare_queries(self, X, *, prepared=False):
        """Queries in the form :meth:`kneighbors_prepared` takes.

        Parameters
        ----------
        X : ndarray of shape (n_queries, n_features)
            Finite float rows with the fitted number of features.
        prepared : bool, default=False
            Whether ``X`` is already prepared (e.g. another index's
            :meth:`prepared_rows`, same metric): then only this index's
            rescaling is applied, cosine rows are not normalized again.

        Returns
        -------
        Q : ndarray of float32 of shape (n_queries, n_features)
        """
        if not prepared:
            return self._prepare(X)
        if self._scale == 1.0 or self.metric_ == "cosine":  # cosine rows are unit rows
            return np.require(X, dtype=np.float32, requirements=["C"])
        # a power of two (in float64: it may lie beyond float32): exact
        return np.multiply(X, self._scale, dtype=np.float64).astype(np.float32)

    def prepared_rows(self):
        """The indexed rows, prepared (unit rows for cosine), in the units of ``fit``'s data.

        Returns
        -------
        rows : ndarray of float32 of shape (n_samples_fit_, n_features_in_)
        """
        self._check_fitted()
        rows = self._fit_X if self._keeps_vectors() else self._data[np.arange(self.n_samples_fit_)]
        if sp.issparse(rows) or self._scale == 1.0 or self.metric_ == "cosine":
            return rows
        # a power of two (in float64: it may lie beyond float32): exact
        return np.divide(rows, self._scale, dtype=np.float64).astype(np.float32)

    def identical_items(self, Q):
        """Id of an indexed row equal to each query of ``prepare_queries``' form, -1 if none.

        Parameters
        ----------
        Q : ndarray of float32 of shape (n_queries, n_features)

        Returns
        -------
        ids : ndarray of int of shape (n_queries,)
        """
        with self._reading():
            return self._row_lookup().find(Q)

    def kneighbors_prepared(self, Q, n_neighbors, *, exact=False, own_ids=None, allowed=None):
        """The nearest indexed items of queries already in :meth:`prepare_queries`' form.

        No validation, no ``X=None`` self-exclusion: what a composite asks of
        its parts. Distances are in the units of ``fit``'s data, ascending.

        Parameters
        ----------
        Q : ndarray of float32 of shape (n_queries, n_features)
            Queries from :meth:`prepare_queries`.
        n_neighbors : int
            Number of neighbours, at most ``n_samples_fit_``.
        exact : bool, default=False
            Brute force over the stored data (as :meth:`exact_kneighbors`)
            instead of the backend's search.
        own_ids : ndarray of int of shape (n_queries,), default=None
            Each query's own indexed item (-1: none), put in its row at its
            exact distance where the search missed it (as ``kneighbors``
            does for the indexed items themselves).
        allowed : ndarray of int, default=None
            The only items that may be returned (sorted ids), None for all live
            items; slots fewer allowed items could fill hold -1 at ``inf``.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors)
        neigh_ind : ndarray of shape (n_queries, n_neighbors)
        """
        with self._reading():  # applies changed query-time parameters first
            search = self._exact_search if exact else self._search_complete
            masks = self._allowed_masks(allowed, Q.shape[0])
            if masks is None:
                dist, ind = search(Q, n_neighbors)
            else:
                dist, ind = self._search_allowed(search, Q, n_neighbors, masks)
                if own_ids is not None:  # an item not allowed is not put in
                    own_ids = np.where(masks[np.maximum(own_ids, 0)], own_ids, -1)
            if own_ids is not None:
                dist, ind = insert_self(Q, self._data, dist, ind, own_ids, self.metric_)
        return _distances.unscale(dist, self._scale, self.metric_), ind
