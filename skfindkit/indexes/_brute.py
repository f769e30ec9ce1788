"""Exact (brute-force) k nearest neighbours: arrays in, arrays out.

For a block of queries the scores against every item come from one float32
matrix product (for euclidean, ``<q, y> - |y|^2 / 2`` through an augmented
column, so no extra pass is needed). The top ``k`` of each row are found
without sorting or partitioning the whole row: the row is cut into ``g``
interleaved groups, the maximum of each group is taken (one vectorized pass),
and only the ``k`` groups with the largest maxima can hold the ``k`` best
items -- so a partition over ``k * g`` candidates replaces one over all ``n``
items. The ``k`` best groups are found the same way, recursively (groups of
group maxima), until the rows are short enough for a plain partition. The
best ``2k`` candidates are then re-ranked by exact float64 distances
computed from differences, which makes distances exact (0 between identical
vectors) and immune to float32 cancellation.

Nothing here knows about estimators: :class:`~skfindkit.ExactIndex` searches
with it, and every index uses it for its exact path
(:meth:`~skfindkit.indexes.BaseIndex.exact_kneighbors`, completion of rows a
backend left short).
"""

import threading

import numpy as np
from sklearn import get_config
from threadpoolctl import ThreadpoolController

from ._distances import exact_distances, gather_rows

__all__ = ["BruteForceMatrix", "brute_force_kneighbors", "rerank_exact"]

_GROUP = 32  # items per group in the top-k prefilter
_controller = None


def _blas_limits(n_threads):
    """Context manager limiting BLAS threads (restores the previous setting)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=n_threads, user_api="blas")


class BruteForceMatrix:
    """The matrix a block of queries is multiplied with, per metric.

    Building it costs one pass over the data; an index keeps it between
    queries (it is :class:`~skfindkit.ExactIndex`'s native structure). It is
    built at the first query, so that loading a saved index costs no more
    than loading its data.
    """

    def __init__(self, data, metric):
        self.data = data
        self.metric = metric
        self._matrix = None
        self._center = None
        self._lock = threading.Lock()

    @property
    def matrix(self):
        if self._matrix is None:
            with self._lock:  # concurrent first queries build it once
                if self._matrix is None:
                    self._matrix = self._build()
        return self._matrix

    def _build(self):
        data = self.data
        if self.metric != "euclidean":
            return data
        # centred on the data's mean (distances do not move): in float32,
        # <q, y> - |y|^2 / 2 of rows far from the origin loses the distances to
        # cancellation (|y|^2 ~ 1e7 against distances ~ 1: every score ties)
        n, d = data.shape
        center = (data.mean(axis=0, dtype=np.float64) if n else np.zeros(d)).astype(np.float32)
        matrix = np.empty((n, d + 1), dtype=np.float32)
        np.subtract(data, center, out=matrix[:, :d])
        matrix[:, d] = -0.5 * np.einsum("ij,ij->i", matrix[:, :d], matrix[:, :d],
                                        dtype=np.float64)
        self._center = center
        return matrix

    def scores(self, queries, out):
        """Scores (larger is nearer) of queries against every item, into ``out``."""
        matrix = self.matrix
        if self.metric == "euclidean":
            queries = np.hstack([queries - self._center,
                                 np.ones((queries.shape[0], 1), dtype=np.float32)])
        return np.matmul(queries, matrix.T, out=out)


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
    # the m best groups, found the same way (groups of groups): a partition
    # over n / 32 maxima per row cost more than the rest of the selection
    best_groups = _top_candidates(group_max, m)
    cols = (best_groups[:, :, None] + n_groups * np.arange(group)).reshape(n_q, -1)
    if full < n:  # leftover columns are always candidates
        cols = np.hstack([cols, np.broadcast_to(np.arange(full, n), (n_q, n - full))])
    cand = np.take_along_axis(S, cols, axis=1)
    keep = np.argpartition(cand, cand.shape[1] - m, axis=1)[:, cand.shape[1] - m:]
    return np.take_along_axis(cols, keep, axis=1)


def _default_batch_size(n_queries, n_samples):
    budget = get_config()["working_memory"] * 2**20  # bytes, as sklearn's chunking
    return int(max(1, min(n_queries, 512, budget // (4 * n_samples))))


def brute_force_kneighbors(
    data, queries, k, metric, *, batch_size=None, n_threads=1, matrix=None
):
    """Exact k nearest rows of ``data`` for each row of ``queries``.

    Parameters
    ----------
    data : ndarray of shape (n_samples, n_features), float32, C-contiguous
        Items, prepared as indexes store them (unit rows for ``"cosine"``).
    queries : ndarray of shape (n_queries, n_features), float32
        Queries, prepared the same way.
    k : int
        Number of neighbours, at most ``n_samples``.
    metric : {"euclidean", "cosine", "inner_product"}
        Distance, in skfindkit's units (see :mod:`skfindkit.indexes._distances`).
    batch_size : int, default=None
        Queries per block; memory grows as ``4 * batch_size * n_samples``
        bytes. None chooses it from scikit-learn's ``working_memory``.
    n_threads : int, default=1
        BLAS threads for the matrix products (restored afterwards).
    matrix : BruteForceMatrix, default=None
        The search matrix of ``data`` for ``metric`` if already built.

    Returns
    -------
    dist : ndarray of shape (n_queries, k), float64
        Distances in the metric's units, ascending (ties by id).
    ind : ndarray of shape (n_queries, k), intp
        Row numbers in ``data``.

    Examples
    --------
    >>> import numpy as np
    >>> data = np.array([[0, 0], [1, 0], [5, 5]], dtype=np.float32)
    >>> dist, ind = brute_force_kneighbors(data, data[:1], 2, "euclidean")
    >>> ind, dist
    (array([[0, 1]]), array([[0., 1.]]))
    """
    if matrix is None:
        matrix = BruteForceMatrix(data, metric)
    n = data.shape[0]
    m = min(n, 2 * k)  # candidates re-ranked exactly
    step = batch_size or _default_batch_size(queries.shape[0], n)
    dist = np.empty((queries.shape[0], k))
    ind = np.empty((queries.shape[0], k), dtype=np.intp)
    if queries.shape[0] == 0:
        return dist, ind
    # one score buffer reused by every block: fresh arrays of this size cost
    # page faults that slow the matrix product by up to 2x
    buffer = np.empty((min(step, queries.shape[0]), n), dtype=np.float32)
    with _blas_limits(n_threads):
        for start in range(0, queries.shape[0], step):
            Qb = queries[start:start + step]
            cand = _top_candidates(matrix.scores(Qb, buffer[: Qb.shape[0]]), m)
            d = exact_distances(Qb, data, cand, metric)
            order = np.lexsort((cand, d), axis=1)[:, :k]  # by distance, then id
            dist[start:start + step] = np.take_along_axis(d, order, axis=1)
            ind[start:start + step] = np.take_along_axis(cand, order, axis=1)
    return dist, ind


def _candidate_scores(Yb, Qb, metric):
    """float32 scores (larger is nearer) of gathered candidates ``Yb`` (q, c, d)."""
    if metric == "euclidean":  # -|q - y|^2 from the differences: no cancellation
        diff = Yb - Qb[:, None, :]
        return -np.einsum("qcd,qcd->qc", diff, diff)
    return np.matmul(Yb, Qb[:, :, None])[:, :, 0]


def _within_error(neg_sqdist, k, rel_error):
    """How many candidates per row the exact step needs: the most, over the
    rows, whose squared distance is within ``rel_error`` of the row's k-th
    (a candidate farther than that is farther than k others, exactly too)."""
    c = neg_sqdist.shape[1]
    kth = -np.partition(neg_sqdist, c - k, axis=1)[:, c - k]
    # both sides err by rel_error: 2x, doubled again for safety, plus the
    # absolute error of float32 sums near the subnormal range
    limit = kth * (1 + 4 * rel_error) + 1e-30
    return max(k, int((-neg_sqdist <= limit[:, None]).sum(axis=1).max()))


def rerank_exact(queries, data, cand, k, metric, scores=None, scores_error=None):
    """The ``k`` nearest of each query's candidates, by exact distance.

    As the brute force, in two steps: float32 scores of every candidate (one
    gather of its row and a batched product), then exact float64 distances
    for the best ``2k`` of them.

    Parameters
    ----------
    queries : ndarray of shape (n_queries, n_features), float32
        Prepared queries.
    data : ndarray of shape (n_samples, n_features), float32
        Prepared items.
    cand : ndarray of shape (n_queries, n_candidates), intp
        Candidate ids from an approximate search; ``-1`` where missing.
    k : int
        Number of neighbours kept, at most ``n_candidates``.
    metric : str
        Distance, in skfindkit's units.
    scores : callable, default=None
        ``scores(queries_block, cand_block)`` -> float32 scores of shape
        ``(n, n_candidates)``, larger is nearer, ``-inf`` for ``-1`` ids: a
        backend's native kernel for the first step (e.g. faiss's
        ``fvec_L2sqr_by_idx``, which reads the rows in place instead of
        gathering them). None computes them with numpy.
    scores_error : float, default=None
        With ``scores`` that are minus float32 squared distances computed
        from the differences (as faiss's kernel does), a bound on their
        relative error: the exact step then takes only the candidates within
        that error of each row's k-th (usually about ``k``), a set that
        provably holds the exact ``k`` nearest of the candidates, instead of
        the best ``2k``.

    Returns
    -------
    dist : ndarray of shape (n_queries, k), float64
        Exact distances, ascending (ties by id); ``inf`` where fewer than
        ``k`` candidates were given.
    ind : ndarray of shape (n_queries, k), intp
        Their ids (``-1`` with the ``inf`` distances).
    """
    n_q, c = cand.shape
    m = min(c, 2 * k)
    dist = np.empty((n_q, k))
    ind = np.empty((n_q, k), dtype=np.intp)
    # blocks whose gathered candidate rows stay in cache (about 2 MiB)
    gathered = m if scores is not None else c
    step = max(1, (2 * 2**20) // max(1, 4 * gathered * data.shape[1]))
    for start in range(0, n_q, step):
        cb, Qb = cand[start:start + step], queries[start:start + step]
        if m < c:
            if scores is None:
                s = _candidate_scores(gather_rows(data, np.maximum(cb, 0)), Qb, metric)
                s[cb < 0] = -np.inf
            else:
                s = scores(Qb, cb)
            mb = m if scores_error is None else _within_error(s, k, scores_error)
            if mb < c:
                keep = np.argpartition(s, c - mb, axis=1)[:, c - mb:]
                cb = np.take_along_axis(cb, keep, axis=1)
        d = exact_distances(Qb, data, cb, metric)
        order = np.lexsort((cb, d), axis=1)[:, :k]
        dist[start:start + step] = np.take_along_axis(d, order, axis=1)
        ind[start:start + step] = np.take_along_axis(cb, order, axis=1)
    return dist, ind
