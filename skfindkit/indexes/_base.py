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
``_keeps_vectors()`` / ``_get_vectors(ids)`` (backends that store vectors)
    a backend whose native store returns the indexed vectors (a Milvus
    collection; hnswlib ``get_items``, faiss ``reconstruct``, annoy
    ``get_item_vector``) may return False from ``_keeps_vectors``: the base
    then keeps no float32 copy of the collection (only an 8-byte hash per
    row, for the item-itself rule) and reads the rows it needs
    (``kneighbors(X=None)``, the exact path, recomputed distances, an item
    found in its own results) through ``_get_vectors``, block by block; such
    a backend grows natively (``_add``) and serializes its store (``_serialize``);
``_serialize()`` / ``_deserialize(payload)`` (native backends)
    native index <-> bytes; the base seals the whole pickled state (data,
    labels, keys, dimensions, parameters and the native bytes) with XXH3-128
    checksums (:mod:`skfindkit.utils._persist`) and verifies them before the
    native library sees a byte;
``_check_native_bytes(payload)`` / ``_native_shape(index)`` (optional)
    the native header checked before loading, and the loaded index's size
    checked against ``n_samples_fit_`` / ``n_features_in_``.
``_vectors_in_native()`` and ``_vectors_from_bytes``/``_vectors_from_index`` (optional)
    ``_fit_X`` is saved once, in the native bytes (see ``_pickling``).

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
import weakref
from abc import ABCMeta, abstractmethod
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from joblib import cpu_count, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import (
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ..utils._sklearn_compat import (Integer, Interval, StrOptions, _fit_context,
                                     validate_parameter_constraints)
from ._pickling import SealedIndexState
from . import _distances, _sparse
from ._graph import NeighborsGraphMixin
from ._lock import runtime_state
from ._prepared import PreparedSearchMixin
from ._query import KNeighborsQueryMixin
from ._removal import RemovalMixin
from ._self import row_keys

__all__ = ["BaseIndex", "METRICS"]

#: Metrics an index can be asked for; each backend declares the subset it has.
METRICS = ("euclidean", "cosine", "inner_product")


class BaseIndex(
    SealedIndexState, RemovalMixin, KNeighborsQueryMixin, PreparedSearchMixin,
    NeighborsGraphMixin, TransformerMixin, BaseEstimator,
    metaclass=ABCMeta,
):
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
        ``-1`` means all processors. More threads than the processors this
        process may use (:func:`joblib.cpu_count`) are clamped to that number.

    Attributes
    ----------
    metric_ : str
        The metric the index was fitted with. The fitted state answers every
        query: ``set_params(metric=...)`` (or any parameter the native index
        is built with) takes effect at the next ``fit``; query-time knobs
        (``ef_search``, ``nprobe``, ``search_k``) apply at once.
    n_samples_fit_ : int
        Number of ids assigned: indexed items, removed ones included.
    n_items_ : int
        Number of live items (``n_samples_fit_`` minus the removed ones).
    live_mask_ : ndarray of bool of shape (n_samples_fit_,)
        True for the ids of live items.

    Notes
    -----
    **Threads.** An index may be queried from several threads at once
    (results are those of serial calls); ``fit`` and ``partial_fit`` wait for
    running queries, run alone, and hold new queries until they finish.
    Pickling, ``joblib.dump`` and :func:`skfindkit.io.save` save a snapshot:
    they wait for a running ``fit``/``partial_fit`` (which waits for them),
    so a file saved from any thread holds one consistent state.

    **Magnitudes.** Items are stored and searched as float32: values beyond
    the float32 range (``|x| > 3.4e38``) are refused with an error naming
    ``X``. With ``metric="euclidean"``, a collection whose largest magnitude
    is outside ``2**±40`` (e.g. data scaled by 1e-30 or 1e20, where float32
    squared distances underflow or overflow) is multiplied by a power of two
    chosen so that no stored value changes a bit (none leaves float32's
    normal range); distances are reported in the original units. Queries far
    outside the collection's magnitude that overflow after this scaling are
    refused with the same error. Cosine and inner-product data are never
    rescaled. Sparse rows (kept float64) are refused beyond the same range.
    A query whose backend distances are not finite (e.g. at 1e20 from
    unit-scale data, squared distances overflow float32) or whose squared
    norm comes within a factor 4 of float32's largest value is answered by
    the exact path (:meth:`exact_kneighbors`), as rows the backend left short
    are completed: never ``inf`` distances or arbitrary ids.

    **The item itself.** When the queries are the indexed items (``transform``
    of the fitted data, ``kneighbors(X=None)``) or a query equals an indexed
    item, that item is in the query's results at its exact distance (0,
    except ``1 - |x|^2`` for the inner product and 1 for an all-zero row
    with cosine), as scikit-learn's brute force finds it, even where an
    approximate search missed it. ``kneighbors(X=None)`` then drops the item
    itself by id, or the farthest of its ``n_neighbors + 1`` results when
    the item is not among them (inner product), never a true neighbour.
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
        "n_jobs": [None, Integer],
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

    def _query_params(self):
        """Values of the query-time knobs (e.g. ``{"ef_search": 50}``); none by default."""
        return {}

    def _apply_query_params(self):
        """Give ``_query_params()`` to the native index (called only when they changed)."""

    def _add(self, X):
        """Add prepared rows; the default rebuilds the native index from all data."""
        self._index = self._build(self._fit_X)

    def _keeps_vectors(self):
        """Whether the base keeps a prepared float32 copy of the indexed rows.

        True (the default) keeps ``_fit_X``; a backend returning False stores
        the vectors itself and implements ``_get_vectors``, ``_add`` and
        ``_serialize``. Backends with a ``keep_vectors`` parameter follow its
        value at the last ``fit``.
        """
        params = getattr(self, "_fit_params", None)
        if params is None:
            return getattr(self, "keep_vectors", True)
        return params.get("keep_vectors", True)

    def _get_vectors(self, ids):
        """Prepared float32 rows of the indexed items ``ids`` (a 1-D array, in order)."""
        return self._fit_X[ids]

    @property
    def _data(self):
        """The prepared indexed rows, indexable by id arrays like ``_fit_X``."""
        return self._fit_X if self._keeps_vectors() else _StoredRows(self)

    def _vector_blocks(self):
        """``(first_id, rows)`` blocks covering every indexed item in id order
        (``batch_size`` rows each, or 4096, when the backend stores them)."""
        if self._keeps_vectors():
            yield 0, self._fit_X
            return
        block_size = getattr(self, "batch_size", None) or 4096
        for start in range(0, self.n_samples_fit_, block_size):
            stop = min(start + block_size, self.n_samples_fit_)
            yield start, self._get_vectors(np.arange(start, stop))

    def _serialize(self):
        """Native index -> bytes; None (the default) rebuilds it on unpickling."""
        return None

    def _deserialize(self, payload):
        """bytes -> native index (backends whose ``_serialize`` returns bytes)."""
        return self._build(self._fit_X)

    # ------------------------------------------------------- shared helpers
    def _n_threads(self):
        """Threads ``n_jobs`` asks for (joblib's convention), at most the CPUs this
        process may use: every backend's thread count comes from here."""
        n_jobs = effective_n_jobs(self.n_jobs)
        # one thread needs no CPU count (joblib reads cgroup files for it, on every call)
        return 1 if n_jobs == 1 else max(1, min(n_jobs, cpu_count()))

    def _fitted(self, name):
        """A parameter's value at the last ``fit`` (``metric``: ``metric_``): what the
        native structure was built with. Before the first fit, the value the next fit uses."""
        if not hasattr(self, "_fit_params"):
            return getattr(self, name)
        return self.metric_ if name == "metric" else self._fit_params[name]

    def _prepare(self, X, name="X"):
        """float32, C-contiguous, rescaled if needed, unit rows for cosine: what backends index.

        Sparse rows (backends with ``_accepts_sparse``) stay sparse: float64
        canonical CSR (:func:`~skfindkit.indexes._sparse.prepare_sparse`).
        """
        if sp.issparse(X):
            return _sparse.prepare_sparse(X, self.metric_, name)
        X = _distances.to_stored(X, self._scale, name)
        if self.metric_ == "cosine":
            X = _distances.normalize_rows(np.array(X, dtype=np.float32, copy=True))
        return X

    # ------------------------------------------------------- thread safety
    def _writing(self):
        """Exclusive section: fit and partial_fit (waits for running queries)."""
        return runtime_state(self).lock.write()

    def _reading(self, wait=True):
        """Shared section for queries; applies changed query-time knobs first.

        With ``wait=False``: BlockingIOError instead of waiting for a writer (or
        for the knobs to be applied)."""
        state = runtime_state(self)
        if not state.lock.holds_read() and hasattr(self, "_index"):
            wanted = self._query_params()
            if state.applied_query_params != wanted:
                if not wait:
                    raise BlockingIOError("the index's query-time settings must be applied")
                # set after fit (fit validated the others): refused by name, not by the library
                validate_parameter_constraints(
                    {k: self._parameter_constraints[k] for k in wanted
                     if k in self._parameter_constraints},
                    wanted, caller_name=type(self).__name__)
                with state.lock.write():  # once per change, never during a query
                    self._apply_query_params()
                    state.applied_query_params = wanted
        return state.lock.read(wait)

    def _changed_native_index(self):
        """After a write: the native index must be given the query-time knobs again."""
        state = runtime_state(self)
        state.applied_query_params = None
        state.row_lookup = None
        state.max_norm = None
        state.brute_matrix = None
        state.allowed_rows = None

    def _data_scale(self, X):
        """The power of two the data are multiplied by (1 for sparse rows, kept float64)."""
        return 1.0 if sp.issparse(X) else _distances.power_of_two_scale(X, self.metric_)

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
        with self._writing():
            if y is None:
                X = self._validate(X)
                fit_y = None
            else:
                X, y = self._validate(X, y)
                fit_y = column_or_1d(y)
            if not sp.issparse(X):
                _distances.check_float32_range(X)
            # the fitted state answers every query, whatever set_params says later
            self._fit_params = self.get_params(deep=False)
            self.metric_ = self.metric
            self._scale = self._data_scale(X)
            self._fit_y = fit_y
            Xp = self._prepare(X)
            keep = self._keeps_vectors()
            self._fit_X = Xp if keep else None
            self._fit_keys = None if keep else row_keys(Xp)
            self.n_samples_fit_ = Xp.shape[0]
            self._zero_rows = _sparse.empty_rows(Xp)
            self._removed = None
            vars(self).pop("_native_ids", None)  # positions are the ids again
            runtime_state(self).owns_rows = False
            self._index = self._build(Xp)
            self._changed_native_index()
        return self

    def partial_fit(self, X, y=None):
        """Add items to the index (fit it if it is not fitted yet).

        New items get ids ``n_samples_fit_, n_samples_fit_ + 1, ...`` after
        the existing ones (and after removed ones: ids are never reused).
        Backends that can grow natively do so; the others rebuild from all
        items (documented per backend).

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
        with self._writing():
            if not hasattr(self, "n_samples_fit_"):
                return self.fit(X, y)
            self._partial_fit(X, y)
        return self

    def _partial_fit(self, X, y):
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
        # may refuse X: nothing is changed before it passed
        Xp = self._prepare(_sparse.like_fitted(X, self._fit_X))
        if y is not None:
            self._fit_y = np.concatenate([self._fit_y, column_or_1d(y)])
        self._zero_rows = np.concatenate(
            [self._zero_rows, self.n_samples_fit_ + _sparse.empty_rows(Xp)]
        )
        self._grow_removed(Xp.shape[0])
        self._append(Xp)
        if hasattr(self, "item_keys_"):
            warnings.warn(
                "partial_fit added items: the item keys attached with "
                "skfindkit.attach_keys no longer match and were removed; "
                "attach the full list again.",
                UserWarning,
            )
            del self.item_keys_
        if hasattr(self, "item_metadata_"):
            warnings.warn(
                "partial_fit added items: the metadata attached with "
                "skfindkit.attach_metadata no longer match and were removed; "
                "attach all rows again.",
                UserWarning,
            )
            del self.item_metadata_

    def _append(self, Xp):
        """Store prepared new rows after the fitted ones and add them to the index.

        ``partial_fit``'s one storage step; an index that keeps its rows
        elsewhere (:class:`~skfindkit.ShardedIndex`: in its shards) overrides it
        so that adding a few rows does not copy the whole collection.
        """
        if self._keeps_vectors():
            self._fit_X = _sparse.stack_rows(self._fit_X, Xp)
        else:
            self._fit_keys = np.concatenate([self._fit_keys, row_keys(Xp)])
        self.n_samples_fit_ += Xp.shape[0]
        self._add(Xp)
        self._changed_native_index()

    # ------------------------------------------------------------- scoring
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
        with self._reading():  # labels and ids from the same fitted state
            if self._fit_y is None:
                raise ValueError(
                    f"{type(self).__name__}.score needs the labels of the indexed "
                    "items: fit the index with fit(X, y)."
                )
            ind = self.kneighbors(X, return_distance=False)
            return precision_at_k(y, self.labels_of(ind))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self._accepts_sparse
        tags.requires_fit = True
        return tags


class _StoredRows:
    """``index._fit_X[ids]`` for a backend that stores the vectors itself:
    rows read back through ``_get_vectors`` (each distinct id once)."""

    def __init__(self, index):
        # weak: the index's runtime state (keyed weakly by the index) keeps
        # this object in its row lookup
        self._index = weakref.ref(index)
        self.shape = (index.n_samples_fit_, index.n_features_in_)

    def __getitem__(self, ids):
        ids = np.asarray(ids, dtype=np.intp)
        wanted, positions = np.unique(ids, return_inverse=True)
        rows = self._index()._get_vectors(wanted)
        return rows[positions.reshape(ids.shape)]
