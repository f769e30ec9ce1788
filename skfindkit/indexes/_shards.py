"""The parts of a :class:`~skfindkit.ShardedIndex`: its shards, their ids and rows.

How new items are spread over the shards (:func:`fill_evenly`), the shards
with the global ids of their rows (:class:`_Shards`), and the collection's
rows read from the shards on demand instead of kept as a copy
(:class:`_ShardRows`, :class:`_StoredRows`).
"""

import numpy as np

__all__ = ["fill_evenly"]


def _local_ids(global_ids, shard_ids):
    """Positions of ``global_ids`` among a shard's ids, -1 for those elsewhere."""
    pos = np.minimum(np.searchsorted(shard_ids, global_ids), shard_ids.size - 1)
    return np.where((global_ids >= 0) & (shard_ids[pos] == global_ids), pos, -1)


def fill_evenly(sizes, n_new):
    """How many of ``n_new`` items each shard gets, smallest shards first.

    Water-filling: the final sizes are as equal as possible; a shard already
    larger than that level gets nothing; leftover single items go to the
    smallest shards (lowest shard number among equals).

    Parameters
    ----------
    sizes : array-like of int
        Current size of each shard.
    n_new : int
        Number of new items.

    Returns
    -------
    counts : ndarray of int, one per shard, summing to ``n_new``
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    lo, hi = int(sizes.min()), int(sizes.max()) + int(n_new)
    while lo < hi:  # highest level the new items can fill every shard up to
        level = (lo + hi + 1) // 2
        if np.maximum(level - sizes, 0).sum() <= n_new:
            lo = level
        else:
            hi = level - 1
    counts = np.maximum(lo - sizes, 0)
    rest = int(n_new - counts.sum())  # < number of shards at the level
    at_level = np.flatnonzero(sizes + counts == lo)
    counts[at_level[:rest]] += 1
    return counts


class _StoredRows(np.ndarray):
    """Rows assembled from the shards: already prepared, not to be prepared again."""


class _Shards:
    """The fitted shards and, per shard, the global ids of its rows (ascending)."""

    def __init__(self, indexes, ids):
        self.indexes = indexes
        self.ids = ids

    def sizes(self):
        return np.array([len(i) for i in self.ids])

    def assemble(self, n, d):
        out = np.empty((n, d), dtype=np.float32)
        for shard, ids in zip(self.indexes, self.ids):
            out[ids] = shard.prepared_rows()
        return out.view(_StoredRows)


class _ShardRows:
    """The shards' rows in global id order, read on demand: what ``_fit_X`` is
    for the base class between queries (its shape, or the whole array when
    the queries have the same shape), never kept as a copy."""

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, shards, shape):
        self._shards, self.shape = shards, shape

    def __array__(self, dtype=None, copy=None):
        out = self._shards.assemble(*self.shape).view(np.ndarray)
        return out if dtype is None else out.astype(dtype, copy=False)
