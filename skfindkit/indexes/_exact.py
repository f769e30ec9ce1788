"""Exact (brute-force) search: blocked float32 GEMM, fast top-k, float64 refinement.

For a block of queries the scores against every indexed item come from one
float32 matrix product (for euclidean, ``<q, y> - |y|^2 / 2`` through an
augmented column, so no extra pass is needed). The top ``k`` of each row are
found without sorting or partitioning the whole row: the row is cut into
``g`` interleaved groups, the maximum of each group is taken (one vectorized
pass), and only the ``k`` groups with the largest maxima can hold the ``k``
best items -- so a partition over ``k * g`` candidates replaces one over all
``n`` items. The best ``2k`` candidates are then re-ranked by exact float64
distances computed from differences, which makes distances exact (0 between
identical vectors) and immune to float32 cancellation.
"""

from numbers import Integral

import numpy as np
from sklearn import get_config
from threadpoolctl import ThreadpoolController

from ..utils._sklearn_compat import Interval
from ._base import BaseIndex

__all__ = ["ExactIndex", "exact_search"]

_GROUP = 32  # items per group in the top-k prefilter
_controller = None


def _blas_limits(n_threads):
    """Context manager limiting BLAS threads (restores the previous setting)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=n_threads, user_api="blas")


class _BruteForce:
    """The matrix a block of queries is multiplied with, per metric."""

    def __init__(self, X, metric):
        self.metric = metric
        if metric == "euclidean":
            half_sq = 0.5 * np.einsum("ij,ij->i", X, X, dtype=np.float64)
            self.matrix = np.hstack([X, -half_sq[:, None].astype(np.float32)])
        else:
            self.matrix = X

    def scores(self, Q, out):
        """Scores (larger is nearer) of queries against every item, into ``out``."""
        if self.metric == "euclidean":
            Q = np.hstack([Q, np.ones((Q.shape[0], 1), dtype=np.float32)])
        return np.matmul(Q, self.matrix.T, out=out)


def _top_candidates(S, m):
    """Column ids of the ``m`` largest scores of each row (unordered)."""
    n_q, n = S.shape
    if m >= n:
        return np.broadcast_to(np.arange(n), (n_q, n))
    # groups of up to 32 columns, at least 8 m groups (fewer make the final
    # partition over m * group columns dearer than a plain one)
    group = min(_GROUP, n // (8 * m))
    if group < 4:  # short rows: a plain partition is cheaper
        return np.argpartition(S, n - m, axis=1)[:, n - m:]
    n_groups = n // group
    full = n_groups * group
    # group r holds columns r, r + n_groups, r + 2 n_groups, ... (a view, no copy)
    group_max = S[:, :full].reshape(n_q, group, n_groups).max(axis=1)
    best_groups = np.argpartition(group_max, n_groups - m, axis=1)[:, n_groups - m:]
    cols = (best_groups[:, :, None] + n_groups * np.arange(group)).reshape(n_q, -1)
    if full < n:  # leftover columns are always candidates
        cols = np.hstack([cols, np.broadcast_to(np.arange(full, n), (n_q, n - full))])
    cand = np.take_along_axis(S, cols, axis=1)
    keep = np.argpartition(cand, cand.shape[1] - m, axis=1)[:, cand.shape[1] - m:]
    return np.take_along_axis(cols, keep, axis=1)


def _batch_size(index, n_queries, n_samples):
    if getattr(index, "batch_size", None) is not None:
        return index.batch_size
    budget = get_config()["working_memory"] * 2**20  # bytes, as sklearn's chunking
    return int(max(1, min(n_queries, 512, budget // (4 * n_samples))))


def exact_search(index, Q, k, brute=None):
    """Exact k nearest neighbours of prepared queries ``Q`` in ``index``'s data.

    Parameters
    ----------
    index : BaseIndex
        A fitted index (its ``_fit_X`` and ``metric`` are used).
    Q : ndarray of shape (n_queries, n_features), float32
        Prepared queries (as ``index._prepare`` returns them).
    k : int
        Number of neighbours.
    brute : _BruteForce, default=None
        Precomputed search matrix; built on the fly when None.

    Returns
    -------
    dist, ind : ndarrays of shape (n_queries, k)
    """
    if brute is None:
        brute = _BruteForce(index._fit_X, index.metric)
    n = index._fit_X.shape[0]
    m = min(n, 2 * k)  # candidates re-ranked exactly
    step = _batch_size(index, Q.shape[0], n)
    dist = np.empty((Q.shape[0], k))
    ind = np.empty((Q.shape[0], k), dtype=np.intp)
    # one score buffer reused by every block: fresh arrays of this size cost
    # page faults that slow the matrix product by up to 2x
    buffer = np.empty((min(step, Q.shape[0]), n), dtype=np.float32)
    with _blas_limits(index._n_threads()):
        for start in range(0, Q.shape[0], step):
            Qb = Q[start:start + step]
            cand = _top_candidates(brute.scores(Qb, buffer[: Qb.shape[0]]), m)
            d = index._exact_distances(Qb, cand)
            order = np.lexsort((cand, d), axis=1)[:, :k]  # by distance, then id
            dist[start:start + step] = np.take_along_axis(d, order, axis=1)
            ind[start:start + step] = np.take_along_axis(cand, order, axis=1)
    return dist, ind


class ExactIndex(BaseIndex):
    """Exact nearest-neighbour index: the reference for approximate indexes.

    Brute force done fast: queries are processed in blocks of ``batch_size``
    with one float32 matrix product each, the top candidates of each row are
    found with a grouped-maximum prefilter instead of a full partition, and
    the best ``2 * k`` candidates are re-ranked with exact float64 distances.
    Results equal :class:`sklearn.neighbors.NearestNeighbors` with
    ``algorithm="brute"`` (up to the order of tied distances), with distances
    exactly 0 between identical items.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours of each query.
    metric : {"euclidean", "cosine", "inner_product"}, default="euclidean"
        Distance (see :class:`~skfindkit.indexes.BaseIndex` for the units).
    mode : {"distance", "connectivity"}, default="distance"
        Values stored in the graph returned by ``transform``.
    n_jobs : int, default=None
        BLAS threads for the matrix products (restored afterwards). ``None``
        means 1 unless in a :func:`joblib.parallel_config` context; ``-1``
        means all processors.
    batch_size : int, default=None
        Queries per block; memory grows as ``4 * batch_size * n_samples_fit``
        bytes. None chooses it from scikit-learn's ``working_memory`` setting
        (at most 512; the block's score buffer is reused).

    Attributes
    ----------
    n_samples_fit_ : int
        Number of indexed items.
    n_features_in_ : int
        Number of features of the indexed items.

    See Also
    --------
    sklearn.neighbors.KNeighborsTransformer : The estimator whose behaviour
        every skfindkit index reproduces.

    Examples
    --------
    >>> import numpy as np
    >>> from skfindkit import ExactIndex
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> index = ExactIndex(n_neighbors=2).fit(X)
    >>> dist, ind = index.kneighbors([[0.1, 0.0]])
    >>> ind
    array([[0, 1]])
    >>> np.round(dist, 2)
    array([[0.1, 0.9]])
    >>> index.transform(X).shape
    (4, 4)
    """

    _backend = "exact"

    _parameter_constraints: dict = {
        **BaseIndex._parameter_constraints,
        "batch_size": [None, Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self, n_neighbors=5, *, metric="euclidean", mode="distance", n_jobs=None, batch_size=None
    ):
        super().__init__(n_neighbors=n_neighbors, metric=metric, mode=mode, n_jobs=n_jobs)
        self.batch_size = batch_size

    def _build(self, X):
        return _BruteForce(X, self.metric)

    def _search(self, X, k):
        return exact_search(self, X, k, brute=self._index)
