"""Exact k nearest neighbours of sparse (CSR) rows: arrays in, arrays out.

The sparse counterpart of :mod:`skfindkit.indexes._brute`, for text
features (TF-IDF, term counts) whose dense form would not fit in memory. The
collection stays sparse (float32 CSR parts, built once, beside the float64
rows). Each block of queries is scored against every item in float32: terms
found in many documents by a csr x dense product, rare terms by a sparse x
sparse product, both into one reused ``n_samples x batch_size`` buffer --
the only dense array. Its top candidates are found with the same
grouped-maximum prefilter as the dense brute force, and the best ``2k`` are
re-ranked with exact float64 distances from the rows themselves, as
scikit-learn computes them (near-identical pairs recomputed from the rows'
differences, so identical rows are exactly 0 apart).

Distances are in skfindkit's units (L2; ``1 - cos`` with zero rows at 1, as
scikit-learn; ``1 - <x, y>``), equal to what
:class:`sklearn.neighbors.KNeighborsTransformer` reports on the same data.
"""

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.preprocessing import normalize

from ._brute import _GROUP, _top_candidates

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


try:  # the kernel behind scipy's csr @ dense, which adds into a given output
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - private in scipy; fall back to the public product
    _csr_matvecs = None

# terms in at least this fraction of the documents are scored with a
# csr x dense product (their postings are long and most query blocks hold
# them); rarer terms with a sparse x sparse product, whose output stays sparse
_FREQUENT_TERM = 0.01


def _add_product(A, B, out):
    """``out += A @ B`` for CSR ``A`` and C-contiguous dense ``B``, all float32."""
    if A.shape[1] == 0:
        return
    if _csr_matvecs is None:
        out += A @ B
        return
    _csr_matvecs(A.shape[0], A.shape[1], B.shape[1], A.indptr, A.indices, A.data,
                 B.ravel(), out.ravel())


class SparseBruteForce:
    """A sparse collection prepared for scoring, built once (one pass over the data).

    The float32 scores of the prefilter come in two parts: terms found in at
    least 1 % of the documents (few, but most of the work: text is Zipfian)
    by a csr x dense product of the items' frequent columns with the block's
    dense frequent columns, rare terms by a sparse x sparse product whose
    output is mostly empty. Both write an ``n_samples x batch_size`` block,
    so the collection is kept item-major in two float32 CSR parts (together
    smaller than its float64 CSR form), never densified. For euclidean a last
    frequent column holds ``-|y|^2 / 2`` (the queries' value there is 1).
    Kept by :class:`~skfindkit.ExactIndex` as its native structure.
    """

    def __init__(self, data, metric):
        self.data = data
        self.metric = metric
        n, n_terms = data.shape
        frequent = np.bincount(data.indices, minlength=n_terms) >= _FREQUENT_TERM * n
        self.frequent = frequent
        data32 = data.astype(np.float32)
        self.rare_part = data32[:, ~frequent].tocsr()
        frequent_part = data32[:, frequent]
        self.half_sq = None
        if metric == "euclidean":
            self.half_sq = 0.5 * np.asarray(data.multiply(data).sum(axis=1)).ravel()
            column = sp.csr_matrix(-self.half_sq[:, None].astype(np.float32))
            frequent_part = sp.hstack([frequent_part, column], format="csr")
        self.frequent_part = frequent_part.tocsr()
        self.frequent_part.sort_indices()

    def scores_t(self, queries, out):
        """float32 scores (larger is nearer) of every item (rows) for CSR queries (columns)."""
        rare_q = queries[:, ~self.frequent].astype(np.float32)
        (self.rare_part @ rare_q.T.tocsr()).toarray(out=out)  # overwrites out
        dense_q = queries[:, self.frequent].toarray().astype(np.float32)
        if self.half_sq is not None:
            dense_q = np.hstack([dense_q, np.ones((queries.shape[0], 1), dtype=np.float32)])
        _add_product(self.frequent_part, np.ascontiguousarray(dense_q.T), out)
        return out


def _top_rows(S, m):
    """Row ids (one row of the result per column of ``S``) of each column's ``m`` largest.

    :func:`~skfindkit.indexes._brute._top_candidates` for an item-major
    score block: the first level of groups is reduced along the rows (long
    contiguous slabs), the rest as the dense brute force.
    """
    n, b = S.shape
    if m >= n:
        return np.broadcast_to(np.arange(n), (b, n))
    group = min(_GROUP, n // (8 * m))
    if group < 4:
        return _top_candidates(np.ascontiguousarray(S.T), m)
    n_groups = n // group
    full = n_groups * group
    # group r holds rows r, r + n_groups, ...: the max of `group` slabs
    group_max = S[:full].reshape(group, n_groups, b).max(axis=0)
    best_groups = _top_candidates(np.ascontiguousarray(group_max.T), m)
    rows = (best_groups[:, :, None] + n_groups * np.arange(group)).reshape(b, -1)
    if full < n:  # leftover rows are always candidates
        rows = np.hstack([rows, np.broadcast_to(np.arange(full, n), (b, n - full))])
    cand = S.reshape(-1)[rows * b + np.arange(b)[:, None]]
    keep = np.argpartition(cand, cand.shape[1] - m, axis=1)[:, cand.shape[1] - m:]
    return np.take_along_axis(rows, keep, axis=1)


def _pair_dots(Q, data, cand):
    """Exact float64 ``<Q[r], data[cand[r, j]]>``, summed in term order as scipy's product."""
    rows = np.repeat(np.arange(Q.shape[0]), cand.shape[1])
    prod = Q[rows].multiply(data[cand.ravel()])
    return np.asarray(prod.sum(axis=1)).reshape(cand.shape)


def _difference_sq(Q, data, rows, cols):
    """Exact ``|Q[r] - data[c]|^2`` for pairs of query rows and item ids."""
    diff = data[cols] - Q[rows]
    return np.asarray(diff.multiply(diff).sum(axis=1)).ravel()


def _exact_sparse_distances(Q, data, cand, metric, half_sq):
    """Exact float64 distances between CSR queries and the candidate rows ``cand``.

    From the pairs' float64 dot products (``|q|^2 + |y|^2 - 2 <q, y>``, as
    scikit-learn computes them), except for near-identical pairs, whose
    distances are recomputed from the rows' differences: the expansion loses
    every digit there, the difference gives exactly 0 for identical rows.
    """
    s = _pair_dots(Q, data, cand)
    if metric == "inner_product":
        return 1.0 - s
    if metric == "euclidean":
        q_sq = np.asarray(Q.multiply(Q).sum(axis=1)).ravel()
        d2 = np.maximum(q_sq[:, None] - 2.0 * (s - half_sq[cand]), 0.0)
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


def _default_batch_size(n_queries, n_samples, itemsize=8, largest=256):
    """Queries per block: a quarter of scikit-learn's ``working_memory`` for the scores."""
    budget = get_config()["working_memory"] * 2**20 // 4
    return int(max(1, min(n_queries, largest, budget // (itemsize * n_samples))))


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
        Queries per block; the block's dense float32 scores take
        ``4 * batch_size * n_samples`` bytes. None chooses it from
        scikit-learn's ``working_memory`` (at most 512).
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
    step = batch_size or _default_batch_size(n_q, n, itemsize=4, largest=512)
    dist = np.empty((n_q, k))
    ind = np.empty((n_q, k), dtype=np.intp)
    # one item-major score buffer reused by every block (fresh ones page-fault)
    buffer = np.empty(min(step, max(n_q, 1)) * n, dtype=np.float32)
    for start in range(0, n_q, step):
        Qb = queries[start:start + step]
        S = matrix.scores_t(Qb, buffer[: n * Qb.shape[0]].reshape(n, Qb.shape[0]))
        cand = _top_rows(S, m)
        d = _exact_sparse_distances(Qb, data, cand, metric, matrix.half_sq)
        order = np.lexsort((cand, d), axis=1)[:, :k]
        dist[start:start + step] = np.take_along_axis(d, order, axis=1)
        ind[start:start + step] = np.take_along_axis(cand, order, axis=1)
    return dist, ind
