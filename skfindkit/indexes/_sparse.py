"""Exact k nearest neighbours of sparse (CSR) rows: arrays in, arrays out.

The sparse counterpart of :mod:`skfindkit.indexes._brute`, for text
features (TF-IDF, term counts) whose dense form would not fit in memory. The
collection stays sparse (float32 CSR parts, built once, beside the float64
rows). Each block of queries is scored against every item in float32: terms
found in many documents by a csr x dense product, rare terms by a sparse x
sparse product, both into one reused ``n_samples x batch_size`` buffer --
the only dense array. Every candidate whose score can still reach the
``k``-th is then re-ranked with exact float64 distances from the rows
themselves, as scikit-learn computes them (near-identical pairs recomputed
from the rows' differences, so identical rows are exactly 0 apart).

**Which candidates can still reach the k-th: the bound.** The score of item
``y`` for query ``q`` is ``s = <q, y>`` (cosine: unit rows; inner product),
or ``s = <q, y> - |y|^2 / 2`` for euclidean (``|q - y|^2 = |q|^2 - 2 s``),
computed in float32 from the float32 roundings of ``q``, ``y`` and
``-|y|^2 / 2`` as one sum of at most ``n_q + 1`` products (``n_q``: the
query's stored terms) in any order. With :func:`~._fp_bounds.gamma`
(Higham's bound for a sum of products, any order, fused or not):

- rounding the inputs to float32 multiplies each product by at most
  ``(1 + u)^2`` and ``|y|^2 / 2`` by ``(1 + u)``, absorbed as three more terms:
  ``gamma(n_q + 4) (|q| |y| + h)``, ``h = |y|^2 / 2`` for euclidean, 0 otherwise,
  using ``sum |q_t y_t| <= |q| |y|`` (Cauchy-Schwarz);
- subnormal inputs and products err in absolute terms, at most ``TINY / 2``
  each: ``2 TINY (|q|_1 + |y|_1 + n_q + 2)``;
- ``|y|^2 / 2`` itself, and the float64 distances of the re-ranking, err by
  ``gamma_64(max(n_q, n_y) + 4) (h + (|q| + |y|)^2 + 1)`` (``u = 2**-53``,
  ``n_y`` the most terms of an item).

Every item whose upper bound ``score + error`` is below the ``k``-th largest
lower bound ``score - error`` (bounded below by the smallest lower bound of
the ``k`` best float32 scores) cannot be among the ``k`` nearest, not even
tied with the ``k``-th; all others are re-ranked exactly (ties by the lower
id). A query for which the bound keeps more than ``8 k`` (at least 64)
candidates, or whose products could overflow float32, is scored again in
float64 (a sparse x sparse product; the same bound with ``u = 2**-53``), and
every candidate that bound keeps is re-ranked, however many (in pieces):
no answer is returned that the bound has not proven. An empty query ties
every item at distance 1 for cosine and inner product: its answer is the
first ``k`` ids.

Distances are in skfindkit's units (L2; ``1 - cos`` with zero rows at 1, as
scikit-learn; ``1 - <x, y>``), equal to what
:class:`sklearn.neighbors.KNeighborsTransformer` reports on the same data.
"""

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.preprocessing import normalize

from ._distances import FLOAT32_MAX, check_float32_range
from ._fp_bounds import TINY, U64
from ._sparse_select import BestK, ScoreError, bounded_candidates

__all__ = ["SparseBruteForce", "empty_rows", "prepare_sparse", "sparse_kneighbors", "stack_rows"]


def prepare_sparse(X, metric, name="X"):
    """float64 canonical CSR (sorted, summed duplicates), unit rows for cosine.

    Values beyond float32's range are refused, as for dense data (their
    squares would overflow float64 soon after, and the float32 scores at once).
    """
    X = sp.csr_matrix(X, dtype=np.float64, copy=True)
    X.sum_duplicates()
    X.eliminate_zeros()
    check_float32_range(X.data, name)
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
        self.sq = np.asarray(data.multiply(data).sum(axis=1)).ravel()
        self.half_sq = None
        if metric == "euclidean":
            self.half_sq = 0.5 * self.sq
            with np.errstate(over="ignore"):  # inf beyond float32: float64 scores then
                column = sp.csr_matrix(-self.half_sq[:, None].astype(np.float32))
            frequent_part = sp.hstack([frequent_part, column], format="csr")
        self.frequent_part = frequent_part.tocsr()
        self.frequent_part.sort_indices()
        # what the rounding-error bound needs (see the module docstring)
        self.norms = np.sqrt(self.sq)
        self.l1 = np.asarray(abs(data).sum(axis=1)).ravel()
        self.h = self.half_sq if self.half_sq is not None else np.zeros(n)
        self.max_terms = int(np.diff(data.indptr).max()) if n else 0
        # |y|^2 / 2 beyond float32 (values ~1e19 and more): float64 scores only
        self.float32_ok = bool((self.h <= FLOAT32_MAX).all())

    def scores_t(self, queries, out):
        """float32 scores (larger is nearer) of every item (rows) for CSR queries (columns)."""
        rare_q = queries[:, ~self.frequent].astype(np.float32)
        (self.rare_part @ rare_q.T.tocsr()).toarray(out=out)  # overwrites out
        dense_q = queries[:, self.frequent].toarray().astype(np.float32)
        if self.half_sq is not None:
            dense_q = np.hstack([dense_q, np.ones((queries.shape[0], 1), dtype=np.float32)])
        _add_product(self.frequent_part, np.ascontiguousarray(dense_q.T), out)
        return out


def _pair_dots(Q, data, rows, cols):
    """Exact float64 ``<Q[r], data[c]>`` of pairs, summed in term order as scipy's product."""
    prod = Q[rows].multiply(data[cols])
    return np.asarray(prod.sum(axis=1)).ravel()


def _difference_sq(Q, data, rows, cols):
    """Exact ``|Q[r] - data[c]|^2`` for pairs of query rows and item ids."""
    diff = data[cols] - Q[rows]
    return np.asarray(diff.multiply(diff).sum(axis=1)).ravel()


def _exact_sparse_distances(Q, data, rows, cols, metric, half_sq):
    """Exact float64 distances of the pairs (query ``rows``, item ``cols``).

    From the pairs' float64 dot products (``|q|^2 + |y|^2 - 2 <q, y>``, as
    scikit-learn computes them), except for near-identical pairs, whose
    distances are recomputed from the rows' differences: the expansion loses
    every digit there, the difference gives exactly 0 for identical rows.
    """
    s = _pair_dots(Q, data, rows, cols)
    if metric == "inner_product":
        return 1.0 - s
    if metric == "euclidean":
        q_sq = np.asarray(Q.multiply(Q).sum(axis=1)).ravel()[rows]
        d2 = np.maximum(q_sq - 2.0 * (s - half_sq[cols]), 0.0)
        scale = q_sq + 2.0 * half_sq[cols]
    else:  # unit rows: |q - y|^2 = 2 - 2 <q, y>
        d2 = np.maximum(2.0 - 2.0 * s, 0.0)
        scale = 2.0
    close = np.flatnonzero(d2 <= 1e-6 * scale)
    if close.size:
        d2[close] = _difference_sq(Q, data, rows[close], cols[close])
    if metric == "euclidean":
        return np.sqrt(d2)
    dist = 0.5 * d2
    empty = (np.diff(Q.indptr) == 0)[rows] | (np.diff(data.indptr) == 0)[cols]
    dist[empty] = 1.0  # scikit-learn's rule for zero vectors
    return dist


def _float64_scores(matrix, Q):
    """Item-major float64 scores of queries ``Q`` (sparse x sparse, then dense)."""
    S = (matrix.data @ Q.T).toarray()
    if matrix.half_sq is not None:
        S -= matrix.half_sq[:, None]
    return np.ascontiguousarray(S)


# pairs re-ranked at once (each costs a copy of its two rows); float64
# scores of at most this many (item, query) values at once
_PAIRS = 2**18
_FLOAT64_SCORES = 2**22


def _block_candidates(matrix, Q, S, k, metric):
    """Candidate ``(items, queries)`` pairs of one block, proven by the float32 or the
    float64 bound, in pieces of at most about ``_PAIRS`` pairs (a generator)."""
    b = Q.shape[0]
    q_norm = np.sqrt(np.asarray(Q.multiply(Q).sum(axis=1)).ravel())
    # all items tie at distance 1 for an empty cosine or inner-product query
    trivial = (np.diff(Q.indptr) == 0) & (metric != "euclidean")
    largest = matrix.norms.max(initial=0.0) * q_norm + matrix.h.max(initial=0.0)
    float64 = ~trivial & ((largest > FLOAT32_MAX / 4) | (not matrix.float32_ok))
    fast = np.flatnonzero(~(float64 | trivial))
    if fast.size < b:  # only the columns the float32 bound may answer
        S = np.ascontiguousarray(S[:, fast])
    items, queries = bounded_candidates(S, k, ScoreError(matrix, Q[fast], 2.0**-24, TINY))
    queries = fast[queries]
    float64 |= ~trivial & (np.bincount(queries, minlength=b) > max(8 * k, 64))  # too many
    keep = ~float64[queries]
    yield items[keep], queries[keep]
    first = np.flatnonzero(trivial)
    yield np.tile(np.arange(k), first.size), np.repeat(first, k)
    redo = np.flatnonzero(float64)
    tiny64 = float(np.finfo(np.float64).smallest_subnormal)
    step = max(1, _FLOAT64_SCORES // max(matrix.data.shape[0], 1))
    for chunk in np.array_split(redo, -(-redo.size // step)) if redo.size else []:
        Qr = Q[chunk]
        items, queries = bounded_candidates(_float64_scores(matrix, Qr), k,
                                             ScoreError(matrix, Qr, U64, tiny64))
        for piece in range(0, items.size, _PAIRS):  # exact ties: possibly every item
            yield items[piece:piece + _PAIRS], chunk[queries[piece:piece + _PAIRS]]


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
    n_q = queries.shape[0]
    step = batch_size or _default_batch_size(n_q, n, itemsize=4, largest=512)
    dist = np.empty((n_q, k))
    ind = np.empty((n_q, k), dtype=np.intp)
    # one item-major score buffer reused by every block (fresh ones page-fault)
    buffer = np.empty(min(step, max(n_q, 1)) * n, dtype=np.float32)
    for start in range(0, n_q, step):
        Qb = queries[start:start + step]
        S = matrix.scores_t(Qb, buffer[: n * Qb.shape[0]].reshape(n, Qb.shape[0]))
        best = BestK(Qb.shape[0], k)
        for items, rows in _block_candidates(matrix, Qb, S, k, metric):
            if items.size:
                    best.add(rows, items, _exact_sparse_distances(Qb, data, rows, items, metric,
                                                              matrix.half_sq))
        dist[start:start + step], ind[start:start + step] = best.result()
    return dist, ind
