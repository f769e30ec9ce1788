"""The index contract: one base class, ``KNeighborsTransformer`` semantics.

Every index (exact or approximate) subclasses :class:`BaseIndex` and
implements a few backend hooks:

``_build(X)``
    build the native index from prepared float32 data and return it;
``_search(X, k)``
    return ``(distances, indices)`` of shape ``(n_queries, k)`` for prepared
    queries, distances in the backend's own units (declared once in
    ``_native_distance``; the base converts them), ids ``-1`` where the
    backend found fewer than ``k`` items;
``_add(X)`` (optional)
    add prepared rows to the native index; the default rebuilds;
``_serialize()`` / ``_deserialize(payload)`` (native backends)
    native index <-> bytes; the base wraps the bytes in a versioned,
    checksummed envelope (:mod:`skfindkit._persist`) and verifies it before
    the native library sees them.

Two declarations complete a backend: ``_native_distance`` (what its search
returns: one of :data:`~skfindkit.indexes._distances.NATIVE_UNITS`, or a dict
by metric) and ``_is_exact()`` (whether this configured instance returns the
exact neighbours, which the contract suite then compares with scikit-learn).

Everything else -- validation, the self-exclusion rule of
``kneighbors(X=None)``, the sparse graphs of ``transform`` and
``kneighbors_graph``, ``partial_fit``, ``score`` and pickling -- lives here, so
a backend is a small module and all backends behave identically.
"""

import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .._persist import pack_blob, unpack_blob
from . import _distances
from . import _sparse
from ._brute import BruteForceMatrix, brute_force_kneighbors, rerank_exact
from ._graph import NeighborsGraphMixin

__all__ = ["BaseIndex", "METRICS"]

#: Metrics an index can be asked for; each backend declares the subset it has.
METRICS = ("euclidean", "cosine", "inner_product")


class BaseIndex(NeighborsGraphMixin, TransformerMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of all skfindkit indexes (not to be used directly).

    Behaves exactly like :class:`sklearn.neighbors.KNeighborsTransformer`:
    ``transform`` returns a CSR graph of shape ``(n_queries, n_samples_fit)``
    with ``n_neighbors + 1`` entries per row in ``mode="distance"`` (the
    indexed item itself at distance 0 when transforming the fitted data) and
    ``n_neighbors`` entries in ``mode="connectivity"``;
    ``kneighbors(X=None)`` excludes each indexed item from its own neighbours.

    Distances are in the metric's true units: ``"euclidean"`` is the L2
    distance (not squared), ``"cosine"`` is ``1 - cos(x, y)`` as in
    :func:`sklearn.metrics.pairwise.cosine_distances`, ``"inner_product"``
    is ``1 - <x, y>`` (it equals the cosine distance on unit vectors; it can be
    negative, so its graphs are not valid ``metric="precomputed"`` input, and
    an item is not necessarily its own nearest neighbour).

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours of each query.
    metric : {"euclidean", "cosine", "inner_product"}, default="euclidean"
        Distance; each backend lists those it supports in ``supported_metrics``.
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.
    n_jobs : int, default=None
        Threads for building and querying, where the backend can use them.
        ``None`` means 1 unless in a :func:`joblib.parallel_config` context,
        ``-1`` means all processors.
    """

    #: Name of the backend, used in error messages and serialized blobs.
    _backend = "base"
    #: Metrics this backend implements (a subset of ``METRICS``).
    supported_metrics = METRICS
    #: What ``_search`` returns: one of ``_distances.NATIVE_UNITS``, or a dict
    #: metric -> unit (a property where it depends on other parameters).
    _native_distance = "recompute"
    #: Whether the backend searches sparse (CSR) rows; the others refuse them.
    _accepts_sparse = False

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions(set(METRICS))],
        "mode": [StrOptions({"distance", "connectivity"})],
        "n_jobs": [None, Integral],
        # approximate backends' exact re-ranking (see _search_complete)
        "refine": [None, Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_neighbors=5, *, metric="euclidean", mode="distance", n_jobs=None):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.mode = mode
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _build(self, X):
        """Build and return the native index of prepared rows ``X``."""

    @abstractmethod
    def _search(self, X, k):
        """Return ``(distances, ids)`` of the ``k`` nearest items of each query."""

    def _is_exact(self):
        """Whether this configured instance returns the exact neighbours.

        Exact backends (brute force, flat scans) return True; the contract
        suite compares each of them with ``KNeighborsTransformer``.
        """
        return False

    def _add(self, X):
        """Add prepared rows; the default rebuilds the native index from all data."""
        self._index = self._build(self._fit_X)

    def _serialize(self):
        """Native index -> bytes; None (the default) rebuilds it on unpickling."""
        return None

    def _deserialize(self, payload):
        """bytes -> native index (backends whose ``_serialize`` returns bytes)."""
        return self._build(self._fit_X)

    # ------------------------------------------------------- shared helpers
    def _n_threads(self):
        """Number of threads ``n_jobs`` asks for (joblib's convention)."""
        return max(1, effective_n_jobs(self.n_jobs))

    def _prepare(self, X):
        """float32, C-contiguous, unit rows for cosine: what backends index.

        Sparse rows (backends with ``_accepts_sparse``) stay sparse:
        float64 canonical CSR (:func:`~skfindkit.indexes._sparse.prepare_sparse`).
        """
        if sp.issparse(X):
            return _sparse.prepare_sparse(X, self.metric)
        X = np.require(X, dtype=np.float32, requirements=["C"])
        if self.metric == "cosine":
            X = _distances.normalize_rows(np.array(X, dtype=np.float32, copy=True))
        return X

    def _native_unit(self):
        unit = self._native_distance
        return unit[self.metric] if isinstance(unit, dict) else unit

    def _to_metric_units(self, native, X, ind):
        """The backend's distances -> the metric's units, -1 ids at ``inf``."""
        unit = self._native_unit()
        if unit == "recompute":
            return _distances.exact_distances(X, self._fit_X, ind, self.metric)
        dist = _distances.from_native(native, unit, self.metric)
        dist[ind < 0] = np.inf
        return dist

    def _exact_search(self, X, k):
        """Brute force over the stored data: the one exact path of every index."""
        if sp.issparse(self._fit_X):
            matrix = self._index if isinstance(self._index, _sparse.SparseBruteForce) else None
            return _sparse.sparse_kneighbors(
                self._fit_X, X, k, self.metric, batch_size=getattr(self, "batch_size", None),
                matrix=matrix,
            )
        matrix = self._index if isinstance(self._index, BruteForceMatrix) else None
        return brute_force_kneighbors(
            self._fit_X, X, k, self.metric, batch_size=getattr(self, "batch_size", None),
            n_threads=self._n_threads(), matrix=matrix,
        )

    def _validate(self, X, y=None, reset=True):
        """``validate_data`` with this backend's sparse policy (CSR in, or a clear refusal)."""
        if sp.issparse(X) and not self._accepts_sparse:
            raise TypeError(
                f"{type(self).__name__} ({self._backend}) does not accept sparse input X. "
                "Use ExactIndex (exact search over sparse rows: euclidean, cosine, "
                "inner_product) or BM25Index (term counts) for sparse data, or reduce it "
                "to dense vectors first (e.g. sklearn.decomposition.TruncatedSVD)."
            )
        kwargs = dict(dtype=(np.float64, np.float32), order="C", reset=reset,
                      accept_sparse="csr" if self._accepts_sparse else False)
        if y is None:
            return validate_data(self, X, **kwargs)
        return validate_data(self, X, y, **kwargs)

    def _check_backend_metric(self):
        if self.metric not in self.supported_metrics:
            raise ValueError(
                f"{type(self).__name__} ({self._backend}) does not support "
                f"metric={self.metric!r}; it supports {list(self.supported_metrics)}."
            )

    # ------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Index the rows of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Items to index (sparse input only where the backend accepts it:
            :class:`~skfindkit.ExactIndex`, :class:`~skfindkit.BM25Index`).
        y : array-like of shape (n_samples,), default=None
            Labels of the items, kept so that :meth:`score` can measure
            retrieval precision (and ``GridSearchCV`` tune on it).

        Returns
        -------
        self : object
            The fitted index.
        """
        self._check_backend_metric()
        if y is None:
            X = self._validate(X)
            self._fit_y = None
        else:
            X, y = self._validate(X, y)
            self._fit_y = column_or_1d(y)
        self._fit_X = self._prepare(X)
        self.n_samples_fit_ = self._fit_X.shape[0]
        self._zero_rows = _sparse.empty_rows(self._fit_X)
        self._index = self._build(self._fit_X)
        return self

    def partial_fit(self, X, y=None):
        """Add items to the index (fit it if it is not fitted yet).

        New items get ids ``n_samples_fit_, n_samples_fit_ + 1, ...`` after
        the existing ones. Backends that can grow natively do so; the others
        rebuild from all items (documented per backend).

        Parameters
        ----------
        X : array-like of shape (n_new, n_features)
            Items to add.
        y : array-like of shape (n_new,), default=None
            Their labels; required if, and only if, the index was fitted with
            labels.

        Returns
        -------
        self : object
            The updated index.
        """
        if not hasattr(self, "n_samples_fit_"):
            return self.fit(X, y)
        has_labels = self._fit_y is not None
        if has_labels != (y is not None):
            raise ValueError(
                "partial_fit: the index was fitted "
                + ("with labels, so y is required" if has_labels else "without labels, so y must be None")
                + " to keep items and labels aligned."
            )
        if y is None:
            X = self._validate(X, reset=False)
        else:
            X, y = self._validate(X, y, reset=False)
            self._fit_y = np.concatenate([self._fit_y, column_or_1d(y)])
        Xp = self._prepare(_sparse.like_fitted(X, self._fit_X))
        self._zero_rows = np.concatenate(
            [self._zero_rows, self.n_samples_fit_ + _sparse.empty_rows(Xp)]
        )
        self._fit_X = _sparse.stack_rows(self._fit_X, Xp)
        self.n_samples_fit_ = self._fit_X.shape[0]
        self._add(Xp)
        if hasattr(self, "item_keys_"):
            warnings.warn(
                "partial_fit added items: the item keys attached with "
                "skfindkit.search.attach_keys no longer match and were removed; "
                "attach the full list again.",
                UserWarning,
            )
            del self.item_keys_
        return self

    # ------------------------------------------------------------ querying
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
            return self._prepare(X)
        return self._prepare(_sparse.like_fitted(self._validate(X, reset=False), self._fit_X))

    def _check_fitted(self):
        if not hasattr(self, "n_samples_fit_"):  # cheap in the fitted case
            check_is_fitted(self)

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
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

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors)
            Distances in the metric's true units, ascending; only if
            ``return_distance=True``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors)
            Ids (row numbers in the fitted data) of the neighbours.
        """
        return self._kneighbors(X, n_neighbors, return_distance, self._search_complete)

    def exact_kneighbors(self, X=None, n_neighbors=None, return_distance=True):
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
        return self._kneighbors(X, n_neighbors, return_distance, self._exact_search)

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

    def _kneighbors(self, X, n_neighbors, return_distance, search):
        """``kneighbors`` with ``search(prepared_X, k) -> (dist, ind)``."""
        self._check_fitted()
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        elif not isinstance(n_neighbors, Integral) or isinstance(n_neighbors, bool):
            raise TypeError(
                f"n_neighbors does not take {type(n_neighbors)} value, enter integer value"
            )
        elif n_neighbors <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {n_neighbors}")
        n_neighbors = int(n_neighbors)

        query_is_train = X is None
        if query_is_train:
            X = self._fit_X
            n_neighbors += 1
        else:
            X = self._check_query(X)

        if n_neighbors > self.n_samples_fit_:
            if query_is_train:
                n_neighbors -= 1
                inequality_str = "n_neighbors < n_samples_fit"
            else:
                inequality_str = "n_neighbors <= n_samples_fit"
            raise ValueError(
                f"Expected {inequality_str}, but n_neighbors = {n_neighbors}, "
                f"n_samples_fit = {self.n_samples_fit_}, n_samples = {X.shape[0]}"
            )

        dist, ind = search(X, n_neighbors)

        if query_is_train:
            # sklearn's rule: drop each item from its own list; if it is not
            # there (duplicates), drop the first neighbour instead.
            sample_mask = ind != np.arange(X.shape[0])[:, None]
            dup_gr_nbrs = np.all(sample_mask, axis=1)
            sample_mask[:, 0][dup_gr_nbrs] = False
            n_neighbors -= 1
            ind = np.reshape(ind[sample_mask], (X.shape[0], n_neighbors))
            dist = np.reshape(dist[sample_mask], (X.shape[0], n_neighbors))
        return (dist, ind) if return_distance else ind

    def _search_complete(self, X, k):
        """Run the backend and guarantee k valid, sorted results per row.

        With ``refine`` (approximate backends), the backend is asked for
        ``refine * k`` candidates, re-ranked by exact distance over the
        stored data.
        """
        if X.shape[0] == 0:
            return np.empty((0, k)), np.empty((0, k), dtype=np.intp)
        refine = getattr(self, "refine", None)
        if refine is None:
            native, ind = self._search(X, k)
            ind = np.asarray(ind, dtype=np.intp)
            dist = self._to_metric_units(native, X, ind)
        else:
            _, cand = self._search(X, min(self.n_samples_fit_, refine * k))
            dist, ind = rerank_exact(X, self._fit_X, np.asarray(cand, dtype=np.intp), k,
                                     self.metric)
        if self.metric == "cosine" and not sp.issparse(X):  # sparse search does it itself
            _distances.zero_vectors_at_distance_one(dist, ind, X, self._zero_rows)
        if ind.size and ind.min() < 0:
            missing = (ind < 0).any(axis=1)
            warnings.warn(
                f"{type(self).__name__}: the {self._backend} search returned fewer "
                f"than {k} neighbours for {int(missing.sum())} of {X.shape[0]} "
                "queries (search parameters too small for k); those rows were "
                "completed by exact search. Increase the search parameters.",
                UserWarning,
            )
            dist[missing], ind[missing] = self._exact_search(X[missing], k)
        if (dist[:, 1:] < dist[:, :-1]).any():
            order = np.argsort(dist, axis=1, kind="stable")
            dist = np.take_along_axis(dist, order, axis=1)
            ind = np.take_along_axis(ind, order, axis=1)
        return dist, ind

    def score(self, X, y):
        """Mean precision@n_neighbors of the retrieved items' labels.

        For each query, the fraction of its ``n_neighbors`` retrieved items
        whose label (from ``fit``'s ``y``) equals the query's label; averaged
        over queries. This is what ``GridSearchCV`` maximizes by default.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Queries.
        y : array-like of shape (n_queries,)
            Their labels.

        Returns
        -------
        score : float
        """
        from ..metrics import precision_at_k

        check_is_fitted(self)
        if self._fit_y is None:
            raise ValueError(
                f"{type(self).__name__}.score needs the labels of the indexed "
                "items: fit the index with fit(X, y)."
            )
        ind = self.kneighbors(X, return_distance=False)
        return precision_at_k(y, self.labels_of(ind))

    # ------------------------------------------------------------ pickling
    def __getstate__(self):
        state = dict(super().__getstate__())
        if state.get("_index") is not None:
            payload = self._serialize()
            state["_index"] = None
            # None: the index is cheap to rebuild from the stored data
            state["_index_blob"] = None if payload is None else pack_blob(self._backend, payload)
        return state

    def __setstate__(self, state):
        state = dict(state)
        rebuild = "_index_blob" in state
        blob = state.pop("_index_blob", None)
        super().__setstate__(state)
        if blob is not None:
            self._index = self._deserialize(unpack_blob(blob, self._backend))
        elif rebuild:
            self._index = self._build(self._fit_X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self._accepts_sparse
        tags.requires_fit = True
        return tags

