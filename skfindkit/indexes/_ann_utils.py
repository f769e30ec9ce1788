"""Glue shared by the approximate-index backends (annoy, nmslib, hnswlib, faiss).

Small, backend-agnostic helpers: turning ``random_state`` into the integer
seed native libraries take, stacking ragged per-query results into the
``(dist, ind)`` arrays the base expects (``-1`` ids where a backend found
fewer than ``k`` items, which the base completes by exact search). Native
objects <-> bytes: :mod:`skfindkit.utils._native_bytes`.
"""

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["C_INT_MAX", "native_seed", "stack_padded"]

#: The largest value a native library takes as a C ``int`` (counts, search
#: knobs): the upper end of those parameters' constraints, so that a larger
#: one is refused by name instead of overflowing in the binding.
C_INT_MAX = 2**31 - 1
_MAX_SEED = C_INT_MAX


def native_seed(random_state):
    """Integer seed for a native library from an sklearn ``random_state``.

    ``None`` draws a fresh seed (non-reproducible builds, as in scikit-learn);
    an int or a ``RandomState`` gives a reproducible one.
    """
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) % _MAX_SEED
    return int(check_random_state(random_state).randint(_MAX_SEED))


def stack_padded(ids, dists, k):
    """Stack per-query id/distance lists (possibly shorter than ``k``).

    Returns ``(dist, ind)`` of shape ``(n_queries, k)``: float64 distances
    (``inf`` where missing) and intp ids (``-1`` where missing).
    """
    if all(len(i) == k for i in ids):  # the usual case: one conversion, no loop
        return np.asarray(dists, dtype=np.float64), np.asarray(ids, dtype=np.intp)
    n = len(ids)
    ind = np.full((n, k), -1, dtype=np.intp)
    dist = np.full((n, k), np.inf)
    for row, (i, d) in enumerate(zip(ids, dists)):
        m = min(len(i), k)
        ind[row, :m] = i[:m]
        dist[row, :m] = d[:m]
    return dist, ind
