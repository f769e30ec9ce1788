"""The indexed item itself in its own neighbour list.

When the queries are the indexed items, scikit-learn's brute force finds each
item at distance 0 from itself. An approximate search may miss it (a graph
walk among many identical rows; HNSW's greedy descent), and for the inner
product an item need not be its own nearest neighbour at all. Two rules fix
both, for every backend:

* :func:`insert_self`: an item missing from its own list is put in at its
  exact distance when that distance is within the list (dropping the last
  entry) -- always correct, duplicates included: it only replaces an entry
  that is no nearer. The item of a query is its row number when the queries
  are the indexed rows, else an indexed row identical to the query, found
  by :class:`RowLookup` (a hash of each row's bits);
* :func:`drop_self`: ``kneighbors(X=None)`` removes the item by id, or the
  last of its ``k + 1`` results when it is not among them (never a true
  neighbour).
"""

import numpy as np

from ._distances import exact_distances

__all__ = ["RowLookup", "drop_self", "insert_self", "row_keys"]

_CHUNK = 4096


_MULTIPLIERS = {}  # width -> fixed odd 64-bit multipliers, one per column


def row_keys(X):
    """A 64-bit hash of each float32 row's bits (-0.0 counted as 0.0)."""
    mult = _MULTIPLIERS.get(X.shape[1])
    if mult is None:
        rng = np.random.RandomState(0)
        mult = _MULTIPLIERS[X.shape[1]] = rng.randint(1, 2**62, X.shape[1], dtype=np.uint64) | 1
    keys = np.empty(X.shape[0], dtype=np.uint64)
    for start in range(0, X.shape[0], _CHUNK):
        bits = np.add(X[start:start + _CHUNK], np.float32(0)).view(np.uint32)
        # sum of products modulo 2**64 (any order gives the same key), one pass
        keys[start:start + _CHUNK] = np.dot(bits, mult)
    return keys


class RowLookup:
    """Find, for each query, an indexed row with exactly the same values."""

    def __init__(self, data, keys=None):
        # ``data`` may read rows back from a backend (it is indexed by ids
        # only); ``keys``: the rows' hashes when they were computed at fit
        keys = row_keys(data) if keys is None else keys
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]
        self._data = data

    def find(self, Q):
        """Id of an indexed row equal to each query, -1 where there is none."""
        if not self._sorted.size:
            return np.full(Q.shape[0], -1, dtype=np.intp)
        keys = row_keys(Q)
        pos = np.minimum(np.searchsorted(self._sorted, keys), self._sorted.size - 1)
        found = np.full(Q.shape[0], -1, dtype=np.intp)
        hit = np.flatnonzero(self._sorted[pos] == keys)
        if hit.size:  # rows compared only where the hashes agree (new queries: none)
            ids = self._order[pos[hit]]
            same = (self._data[ids] == Q[hit]).all(axis=1)
            found[hit[same]] = ids[same]
        return found


def insert_self(Q, data, dist, ind, self_ids, metric):
    """Put query ``r``'s own item ``self_ids[r]`` into its sorted row where it belongs.

    ``Q`` are the prepared queries, ``data`` the prepared indexed rows,
    ``dist``/``ind`` the sorted results (changed in place and returned);
    ``self_ids`` -1 for queries that have no item of their own. Among equal
    distances the item itself comes first.
    """
    has_own = self_ids >= 0
    if not has_own.any():  # the usual case for new queries: nothing to do
        return dist, ind
    missing = np.flatnonzero(has_own & ~(ind == self_ids[:, None]).any(axis=1))
    if missing.size == 0:
        return dist, ind
    own = self_ids[missing, None]
    d_self = exact_distances(Q[missing], data, own, metric)
    inside = d_self[:, 0] <= dist[missing, -1]
    rows = missing[inside]
    if rows.size:
        new_d = np.hstack([d_self[inside], dist[rows, :-1]])
        new_i = np.hstack([own[inside], ind[rows, :-1]])
        order = np.argsort(new_d, axis=1, kind="stable")  # self first among ties
        dist[rows] = np.take_along_axis(new_d, order, axis=1)
        ind[rows] = np.take_along_axis(new_i, order, axis=1)
    return dist, ind


def drop_self(dist, ind, first_id=0):
    """Remove each item (row ``r`` is item ``first_id + r``) from its own ``k + 1`` results.

    Where the item is not in its row (it is farther than all of them), the
    last entry goes instead, so the ``k`` nearest others are kept.
    """
    n, k1 = ind.shape
    keep = ind != np.arange(first_id, first_id + n)[:, None]
    absent = keep.all(axis=1)
    keep[absent, -1] = False
    return (np.reshape(dist[keep], (n, k1 - 1)), np.reshape(ind[keep], (n, k1 - 1)))
