"""Exact k nearest neighbours of sparse (CSR) rows: arrays in, arrays out.

The sparse counterpart of :mod:`skfindkit.indexes._brute`, for text
features (TF-IDF, term counts) whose dense form would not fit in memory. The
collection stays sparse: it is kept as CSR rows plus its transpose (CSR of the
terms, built once), and each block of queries is scored against every item by
one sparse x sparse product -- whose cost follows the terms the queries
contain, not the vocabulary size. Only the block's score matrix
(``batch_size x n_samples``) is dense; its top candidates are found with the
same grouped-maximum prefilter as the dense brute force, and the best ``2k``
are re-ranked with float64 distances computed from the block's float64
scores, as scikit-learn's (near-identical pairs recomputed from the rows'
differences, so identical rows are exactly 0 apart).

Distances are in skfindkit's units (L2; ``1 - cos`` with zero rows at 1, as
scikit-learn; ``1 - <x, y>``), equal to what
:class:`sklearn.neighbors.KNeighborsTransformer` reports on the same data.
"""

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.preprocessing import normalize

from ._brute import _top_candidates

__all__ = ["SparseBruteForce", "empty_rows", "prepare_sparse", "sparse_kneighbors", "stack_rows"]


def prepare_sparse(X, metric):
    """float64 canonical CSR (sorted, summed duplicates), unit rows for cosine."""
    X = sp.csr_matrix(X, dtype=np.float64, copy=True)
    X.sum_duplicates()
    X.eliminate_zeros()
    if metric == "cosine":
        X = normalize(X, copy=False)
    return X


def empty_rows(X):
    """Ids of the all-zero rows of a dense or sparse matrix."""
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        return np.flatnonzero(np.diff(X.indptr) == 0 if X.has_canonical_format
                              else X.getnnz(axis=1) == 0)
    return np.flatnonzero(~X.any(axis=1))


def stack_rows(top, bottom):
    """Rows of ``top`` then ``bottom`` (both dense or both CSR)."""
    if sp.issparse(top):
        return sp.vstack([top, bottom], format="csr")
    return np.concatenate([top, bottom])


def like_fitted(X, fitted):
    """Queries in the fitted data's format (CSR for a sparse index, dense otherwise)."""
    if sp.issparse(fitted) and not sp.issparse(X):
        return sp.csr_matrix(X)
    if sp.issparse(X) and not sp.issparse(fitted):
        return X.toarray()
    return X


class SparseBruteForce:
    """A sparse collection prepared for scoring: its term-major transpose and norms.

    Built once (one pass over the data) and kept by
    :class:`~skfindkit.ExactIndex` as its native structure.
    """

    def __init__(self, data, metric):
        self.data = data
        self.metric = metric
        self.data_t = data.T.tocsr()  # terms x items: the product's right side
        self.half_sq = None
        if metric == "euclidean":
            self.half_sq = 0.5 * np.asarray(data.multiply(data).sum(axis=1)).ravel()

    def scores(self, queries, out):
        """Scores (larger is nearer) of CSR queries against every item, into ``out``."""
        out[:] = 0.0
        (queries @ self.data_t).toarray(out=out)  # csr -> dense adds into out
        if self.half_sq is not None:
            out -= self.half_sq  # <q, y> - |y|^2 / 2: the euclidean order
        return out


def _difference_sq(Q, data, rows, cols):
    """Exact ``|Q[r] - data[c]|^2`` for pairs of query rows and item ids."""
    diff = data[cols] - Q[rows]
    return np.asarray(diff.multiply(diff).sum(axis=1)).ravel()


def _exact_sparse_distances(Q, data, cand, metric, scores, q_sq, half_sq):
    """Distances between CSR queries and the candidate rows ``cand``.

    From the block's float64 scores (``|q|^2 + |y|^2 - 2 <q, y>``, as
    scikit-learn computes them), except for near-identical pairs, whose
    distances are recomputed from the rows' differences: the expansion loses
    every digit there, the difference gives exactly 0 for identical rows.
    """
    s = np.take_along_axis(scores, cand, axis=1)
    if metric == "inner_product":
        return 1.0 - s
    if metric == "euclidean":  # s = <q, y> - |y|^2 / 2
        d2 = np.maximum(q_sq[:, None] - 2.0 * s, 0.0)
        scale = q_sq[:, None] + 2.0 * half_sq[cand]
    else:  # unit rows: |q - y|^2 = 2 - 2 <q, y>
        d2 = np.maximum(2.0 - 2.0 * s, 0.0)
        scale = 2.0
    close = d2 <= 1e-6 * scale
    if close.any():
        rows, cols = np.nonzero(close)
        d2[rows, cols] = _difference_sq(Q, data, rows, cand[rows, cols])
    if metric == "euclidean":
        return np.sqrt(d2)
    dist = 0.5 * d2
    q_empty = np.diff(Q.indptr) == 0
    y_empty = np.diff(data.indptr)[cand] == 0
    dist[q_empty[:, None] | y_empty] = 1.0  # scikit-learn's rule for zero vectors
    return dist


def _default_batch_size(n_queries, n_samples):
    budget = get_config()["working_memory"] * 2**20 // 4  # a quarter: the block is float64
    return int(max(1, min(n_queries, 256, budget // (8 * n_samples))))


def sparse_kneighbors(data, queries, k, metric, *, batch_size=None, matrix=None):
    """Exact k nearest rows of sparse ``data`` for each sparse query.

    Parameters
    ----------
    data : CSR matrix of shape (n_samples, n_features), float64
        Items prepared by :func:`prepare_sparse`.
    queries : CSR matrix of shape (n_queries, n_features), float64
        Queries prepared the same way.
    k : int
        Number of neighbours, at most ``n_samples``.
    metric : {"euclidean", "cosine", "inner_product"}
        Distance, in skfindkit's units.
    batch_size : int, default=None
        Queries per block; the block's dense scores take
        ``8 * batch_size * n_samples`` bytes. None chooses it from
        scikit-learn's ``working_memory`` (at most 256).
    matrix : SparseBruteForce, default=None
        The prepared collection, if already built.

    Returns
    -------
    dist : ndarray of shape (n_queries, k), float64
        Distances, ascending (ties by id).
    ind : ndarray of shape (n_queries, k), intp

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> data = prepare_sparse(sp.csr_matrix([[1.0, 0, 0], [0, 2.0, 0], [1.0, 1.0, 0]]), "cosine")
    >>> dist, ind = sparse_kneighbors(data, data[:1], 2, "cosine")
    >>> ind
    array([[0, 2]])
    """
    if matrix is None:
        matrix = SparseBruteForce(data, metric)
    n = data.shape[0]
    m = min(n, 2 * k)
    n_q = queries.shape[0]
    step = batch_size or _default_batch_size(n_q, n)
    dist = np.empty((n_q, k))
    ind = np.empty((n_q, k), dtype=np.intp)
    buffer = np.empty((min(step, max(n_q, 1)), n))
    for start in range(0, n_q, step):
        Qb = queries[start:start + step]
        S = matrix.scores(Qb, buffer[: Qb.shape[0]])
        cand = _top_candidates(S, m)
        q_sq = np.asarray(Qb.multiply(Qb).sum(axis=1)).ravel()
        d = _exact_sparse_distances(Qb, data, cand, metric, S, q_sq, matrix.half_sq)
        order = np.lexsort((cand, d), axis=1)[:, :k]
        dist[start:start + step] = np.take_along_axis(d, order, axis=1)
        ind[start:start + step] = np.take_along_axis(cand, order, axis=1)
    return dist, ind
