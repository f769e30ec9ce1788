"""The sparse-graph outputs of an index, as ``KNeighborsTransformer``'s.

``kneighbors_graph``, ``transform`` and ``fit_transform`` only shape what
``kneighbors`` returns (as scikit-learn's ``KNeighborsMixin`` does), and the
graph's columns are named ``<classname><id>`` like sklearn's.
"""

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.base import ClassNamePrefixFeaturesOutMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["NeighborsGraphMixin"]


class NeighborsGraphMixin(ClassNamePrefixFeaturesOutMixin):
    """Graph outputs over ``kneighbors`` (mixed into :class:`BaseIndex`)."""

    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity", *, filter=None):
        """Sparse graph of the k nearest neighbours of each query.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Queries; None means the indexed items, each excluded from its own
            neighbours.
        n_neighbors : int, default=None
            Number of neighbours; defaults to the constructor's value.
        mode : {"connectivity", "distance"}, default="connectivity"
            Ones, or distances in the metric's units.
        filter : array-like or list of array-like, default=None
            Items each query may return, as in :meth:`kneighbors`.

        Returns
        -------
        A : sparse matrix of shape (n_queries, n_samples_fit)
            CSR graph, each row sorted by distance; columns are ids, removed
            items' columns are empty, and with ``X=None`` so are their rows.
        """
        check_is_fitted(self)
        with self._reading():  # ids and n_samples_fit_ of the same fitted state
            return self._graph(X, n_neighbors, mode, filter)

    def _graph(self, X, n_neighbors, mode, filter=None):
        if n_neighbors is None:
            n_neighbors = self._default_n_neighbors()
        if mode == "connectivity":
            A_ind = self.kneighbors(X, n_neighbors, return_distance=False, filter=filter)
            A_data = np.ones(A_ind.size)
        elif mode == "distance":
            A_data, A_ind = self.kneighbors(X, n_neighbors, return_distance=True, filter=filter)
            A_data = np.ravel(A_data)
        else:
            raise ValueError(
                'Unsupported mode, must be one of "connectivity", '
                f'or "distance" but got "{mode}" instead'
            )
        n_queries = A_ind.shape[0]
        found = A_ind >= 0  # slots no allowed item filled (removed rows, filters) are left out
        A_indptr = np.concatenate([[0], np.cumsum(found.sum(axis=1))])
        return csr_matrix(
            (np.reshape(A_data, A_ind.shape)[found], A_ind[found], A_indptr),
            shape=(n_queries, self.n_samples_fit_),
        )

    def transform(self, X):
        """Graph of neighbours of each query, as ``KNeighborsTransformer``.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        Xt : sparse matrix of shape (n_queries, n_samples_fit)
            CSR graph with ``n_neighbors + 1`` entries per row in distance
            mode (so that an indexed item finds itself plus ``n_neighbors``
            others), ``n_neighbors`` in connectivity mode.
        """
        check_is_fitted(self)
        add_one = self.mode == "distance"
        return self.kneighbors_graph(X, mode=self.mode,
                                     n_neighbors=self._checked_n_neighbors() + add_one)

    def fit_transform(self, X, y=None):
        """Fit to ``X`` and return its neighbour graph (itself included).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Items to index.
        y : array-like of shape (n_samples,), default=None
            Labels kept for :meth:`score`.

        Returns
        -------
        Xt : sparse matrix of shape (n_samples, n_samples)
            As :meth:`transform`.
        """
        return self.fit(X, y).transform(X)

    @property
    def _n_features_out(self):
        """Columns of ``transform``'s graph: one per indexed item (as KNeighborsTransformer)."""
        return self.n_samples_fit_
