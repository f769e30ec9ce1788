"""Distances in each metric's true units, shared by every index.

Indexes store *prepared* data: float32 rows, L2-normalized for ``"cosine"``.
Backends report squared L2 or inner products of prepared rows; these
functions turn them into the units every skfindkit index reports --
euclidean (L2, not squared), cosine (``1 - cos``, 1 to and from a zero
vector, as scikit-learn), inner product (``1 - <x, y>``) -- and recompute
exact distances for returned ids where a backend's own are approximate.
"""

import numpy as np

__all__ = [
    "NATIVE_UNITS",
    "exact_distances",
    "from_native",
    "from_similarity",
    "from_sqeuclidean",
    "normalize_rows",
    "zero_vectors_at_distance_one",
]

#: What a backend's search may return, declared by each backend once
#: (``BaseIndex._native_distance``) and converted by :func:`from_native`:
#: squared L2, L2, the inner product ``<x, y>``, its negation, ``1 - <x, y>``,
#: distances already in skfindkit's units (``"exact"``), or values to ignore
#: and recompute exactly from the stored data (``"recompute"``: lossy codes).
NATIVE_UNITS = ("sqeuclidean", "euclidean", "dot", "negdot", "one_minus_dot", "exact", "recompute")


def normalize_rows(X):
    """L2-normalize the rows of a float32 array in place; zero rows stay zero."""
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    nonzero = norms > 0
    X[nonzero] /= norms[nonzero, None].astype(X.dtype)
    return X


def from_sqeuclidean(d2, metric):
    """Squared L2 between prepared rows -> distance in ``metric``'s units (float64)."""
    d2 = np.array(d2, dtype=np.float64)  # a fresh array, changed in place
    np.maximum(d2, 0.0, out=d2)
    if metric == "euclidean":
        return np.sqrt(d2, out=d2)
    if metric == "cosine":
        return np.multiply(d2, 0.5, out=d2)  # |a - b|^2 = 2 - 2 cos for unit rows
    raise ValueError(f"squared L2 has no meaning for metric={metric!r}")


def from_similarity(sim):
    """Inner product of prepared rows -> ``1 - <x, y>`` (cosine on unit rows)."""
    return 1.0 - np.asarray(sim, dtype=np.float64)


def from_native(native, unit, metric):
    """Distances a backend returned in ``unit`` -> ``metric``'s units (float64).

    ``unit`` is one of :data:`NATIVE_UNITS` but ``"recompute"`` (which needs
    the data: :func:`exact_distances`).
    """
    if unit == "exact":
        return np.array(native, dtype=np.float64)
    if unit == "sqeuclidean":
        return from_sqeuclidean(native, metric)
    if unit == "euclidean":
        return from_sqeuclidean(np.square(np.asarray(native, dtype=np.float64)), metric)
    if metric != "inner_product":
        raise ValueError(f"a {unit!r} distance has no meaning for metric={metric!r}")
    if unit == "dot":
        return from_similarity(native)
    if unit == "negdot":
        return from_similarity(-np.asarray(native, dtype=np.float64))
    if unit == "one_minus_dot":
        return np.array(native, dtype=np.float64)
    raise ValueError(f"unknown native distance unit {unit!r}; expected one of {NATIVE_UNITS}")


def exact_distances(Q, data, ind, metric):
    """Exact distances between prepared queries and the indexed rows ``ind``.

    Parameters
    ----------
    Q : ndarray of shape (n_queries, n_features), float32
        Prepared queries.
    data : ndarray of shape (n_samples, n_features), float32
        Prepared indexed rows.
    ind : ndarray of shape (n_queries, n_candidates)
        Ids into ``data``; -1 gives an infinite distance.
    metric : str
        The index's metric.

    Returns
    -------
    dist : ndarray of shape (n_queries, n_candidates), float64
        Computed from float32 differences with float64 sums, so identical
        rows are exactly 0 apart.
    """
    Y = np.take(data, np.maximum(ind, 0), axis=0)  # (n_q, c, d), a fresh array
    if metric == "inner_product":
        dist = 1.0 - np.einsum("qcd,qd->qc", Y, Q, dtype=np.float64)
    else:
        zero = ~Q.any(axis=1)[:, None] | ~Y.any(axis=2) if metric == "cosine" else None
        diff = np.subtract(Y, Q[:, None, :], out=Y).astype(np.float64)  # exact in float64
        dist = from_sqeuclidean(np.einsum("qcd,qcd->qc", diff, diff), metric)
        if zero is not None:
            dist[zero] = 1.0
    dist[ind < 0] = np.inf
    return dist


def zero_vectors_at_distance_one(dist, ind, Q, zero_rows):
    """Set cosine distances from or to a zero vector to 1, in place.

    Backends search unit rows by L2, which puts a zero row at 0.5 from
    everything. ``zero_rows`` are the ids of the indexed zero rows (found
    once at fit); rows of ``dist`` are left for the caller to re-sort.
    """
    dist[~Q.any(axis=1)] = 1.0
    if zero_rows.size:
        dist[np.isin(ind, zero_rows)] = 1.0
