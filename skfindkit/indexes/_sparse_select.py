"""Choosing a block's candidates by a proven error bound (sparse exact search).

The mechanics behind :mod:`skfindkit.indexes._sparse` (whose docstring
derives the bound): the ``k`` best rows of each column of an item-major score
block, the error bound of each (item, query) score, the cut that keeps every
item whose score can still reach the ``k``-th, and the running best ``k`` of
the exactly re-ranked pairs.
"""

import numpy as np

from ._brute import _GROUP, _top_candidates
from ._fp_bounds import U64, gamma

__all__ = ["BestK", "ScoreError", "bounded_candidates", "top_rows"]


def top_rows(S, m):
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


class ScoreError:
    """The rounding-error bound of a block's scores, per (item, query) pair.

    Derived in :mod:`skfindkit.indexes._sparse`, from the collection's row
    norms, squared norms, L1 norms and ``|y|^2 / 2`` (``matrix``: a
    :class:`~skfindkit.indexes._sparse.SparseBruteForce`) and the queries':
    ``error(items, queries) = a_q |y| + b_q h + c_q |y|^2 + d_q + t |y|_1``,
    every coefficient rounded up a little (``1 + 1e-6``) so that the bound's
    own float64 evaluation (norms, products, sums) cannot make it smaller.
    """

    def __init__(self, matrix, Q, u, tiny):
        n_q = np.diff(Q.indptr)
        q_sq = np.asarray(Q.multiply(Q).sum(axis=1)).ravel()
        q_norm = np.sqrt(q_sq)
        q_l1 = np.asarray(abs(Q).sum(axis=1)).ravel()
        g = np.array([gamma(t + 4, u) for t in n_q])
        g64 = np.array([gamma(max(t, matrix.max_terms) + 4, U64) for t in n_q])
        slack = 1.0 + 1e-6
        self.a = slack * (g + 2.0 * g64) * q_norm
        self.b = slack * (g + g64)
        self.c = slack * g64
        self.d = slack * (g64 * (q_sq + 1.0) + 2.0 * tiny * (q_l1 + n_q + 2))
        self.t = slack * 2.0 * tiny
        self.matrix = matrix

    def _of(self, norms, h, sq, l1, queries):
        return (self.a[queries] * norms + self.b[queries] * h + self.c[queries] * sq
                + self.d[queries] + self.t * l1)

    def __call__(self, items, queries):
        m = self.matrix
        return self._of(m.norms[items], m.h[items], m.sq[items], m.l1[items], queries)

    def of_groups(self, group, n_groups):
        """``(n_groups, n_queries)``: the largest error in each group of rows
        ``g, g + n_groups, ...`` (the layout of :func:`top_rows`)."""
        m = self.matrix

        def largest(v):
            return v[: group * n_groups].reshape(group, n_groups).max(axis=0)[:, None]

        return self._of(largest(m.norms), largest(m.h), largest(m.sq), largest(m.l1),
                        slice(None))


def bounded_candidates(S, k, error):
    """(item, query) pairs whose score can still reach each query's ``k``-th.

    ``S`` holds item-major scores (one column per query) that err by at most
    ``error``: an item is dropped when its upper bound is below the smallest
    lower bound of the ``k`` best scores (a lower bound of the ``k``-th
    largest lower bound). Those ``k`` are kept, so each query has ``k`` or more.
    """
    b = S.shape[1]
    if b == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    top = top_rows(S, k).ravel()
    owner = np.repeat(np.arange(b), k)
    # float64 bounds, each rounded outwards (one rounding: one step)
    lower = np.nextafter(S[top, owner] - error(top, owner), -np.inf)
    kth_lower = lower.reshape(b, k).min(axis=1)
    items, queries = _groups_reaching(S, kth_lower, error)
    upper = np.nextafter(S[items, queries] + error(items, queries), np.inf)
    keep = upper >= kth_lower[queries]
    return items[keep], queries[keep]


def _groups_reaching(S, kth_lower, error):
    """The (item, query) pairs of every group of rows whose largest score plus largest
    error reaches the query's ``kth_lower`` (all pairs of a short collection):
    one pass over ``S`` for the group maxima, and a far-off row (large error)
    only brings its own group."""
    n, b = S.shape
    group = min(_GROUP, n // 64)
    if group < 4:
        items, queries = np.indices((n, b))
        return items.ravel(), queries.ravel()
    n_groups = n // group
    full = n_groups * group
    upper = S[:full].reshape(group, n_groups, b).max(axis=0) + error.of_groups(group, n_groups)
    groups, queries = np.nonzero(np.nextafter(upper, np.inf) >= kth_lower)
    items = (groups[:, None] + n_groups * np.arange(group)).ravel()
    queries = np.repeat(queries, group)
    if full < n:  # leftover rows: always examined
        rest, rest_q = np.indices((n - full, b))
        items = np.concatenate([items, rest.ravel() + full])
        queries = np.concatenate([queries, rest_q.ravel()])
    return items, queries


class BestK:
    """The ``k`` nearest of each query among the pairs added so far, by distance then id."""

    def __init__(self, n_queries, k):
        self.k = k
        self.n_queries = n_queries
        self.queries = np.empty(0, dtype=np.intp)
        self.items = np.empty(0, dtype=np.intp)
        self.dist = np.empty(0)

    def add(self, queries, items, dist):
        queries = np.concatenate([self.queries, queries])
        items = np.concatenate([self.items, items])
        dist = np.concatenate([self.dist, dist])
        order = np.lexsort((items, dist, queries))
        queries, items, dist = queries[order], items[order], dist[order]
        keep = np.arange(queries.size) - np.searchsorted(queries, queries) < self.k
        self.queries, self.items, self.dist = queries[keep], items[keep], dist[keep]

    def result(self):
        """``(dist, ind)`` of shape ``(n_queries, k)``; every query has ``k`` pairs."""
        shape = (self.n_queries, self.k)
        return self.dist.reshape(shape), self.items.reshape(shape)
