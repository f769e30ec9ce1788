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
    "gather_rows",
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
    """L2-normalize the rows of a float32 array in place; zero rows stay zero.

    Norms and quotients are computed in float64 (a row's norm may exceed
    float32's range while its values do not), then rounded once to float32.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    nonzero = norms > 0
    X[nonzero] = X[nonzero] / norms[nonzero, None]
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
        Computed from float64 differences of the float32 values (exact) with
        float64 pairwise sums, so identical rows are exactly 0 apart, the
        relative error is that of a float64 sum (about ``log2(n_features) *
        2**-53``), and a pair's distance does not depend on the block it is
        computed in.
    """
    Y = gather_rows(data, np.maximum(ind, 0))  # (n_q, c, d), a fresh array
    # sums along the contiguous last axis: numpy's pairwise summation, the same
    # order for a pair of rows whatever the shape of the block, so equal
    # distances compare equal (ties by id are then well defined)
    terms = Y.astype(np.float64)
    if metric == "inner_product":
        terms *= Q[:, None, :]
        dist = 1.0 - terms.sum(axis=2)
    else:
        zero = ~Q.any(axis=1)[:, None] | ~Y.any(axis=2) if metric == "cosine" else None
        # the difference of two float32 values is exact in float64 (not in float32)
        terms -= Q[:, None, :]
        np.square(terms, out=terms)
        dist = from_sqeuclidean(terms.sum(axis=2), metric)
        if zero is not None:
            dist[zero] = 1.0
    dist[ind < 0] = np.inf
    return dist


def gather_rows(data, ids):
    """``data[ids]`` as a fresh array (``np.take`` for arrays: faster than fancy indexing;
    indexing for the stored-rows view of backends that keep the vectors)."""
    if isinstance(data, np.ndarray):
        return np.take(data, ids, axis=0)
    return np.array(data[ids], dtype=np.float32, copy=True)


def zero_vectors_at_distance_one(dist, ind, Q, zero_rows):
    """Set cosine distances from or to a zero vector to 1, in place.

    Backends search unit rows by L2, which puts a zero row at 0.5 from
    everything. ``zero_rows`` are the ids of the indexed zero rows (found
    once at fit); rows of ``dist`` are left for the caller to re-sort.
    """
    dist[~Q.any(axis=1)] = 1.0
    if zero_rows.size:
        dist[np.isin(ind, zero_rows)] = 1.0


#: Largest magnitude float32 holds; indexes store and search float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# outside [2**-40, 2**40] squared distances leave float32's normal range (or
# lose their ordering): such collections are rescaled by a power of two
_SAFE_EXPONENT = 40


def check_float32_range(X, name="X"):
    """Refuse values float32 cannot hold (they would become inf, then NaN distances)."""
    if X.dtype == np.float64 and X.size and (X.max() > FLOAT32_MAX or X.min() < -FLOAT32_MAX):
        raise ValueError(
            f"{name} contains values beyond the float32 range (|x| > {FLOAT32_MAX:.3g}); "
            "skfindkit indexes store and search float32. Rescale the data."
        )


def to_stored(X, scale, name="X"):
    """Dense rows as indexes store them: float32 (C order), times ``scale``.

    The input is rounded to float32 first and then multiplied by the power of
    two, which is exact unless a value leaves float32's range (refused with an
    error naming ``name``); so float64 input gives the same stored values as
    its float32 rounding, whatever the scale.
    """
    check_float32_range(X, name)
    X = np.require(X, dtype=np.float32, requirements=["C"])
    if scale != 1.0:  # in float64: the factor itself may lie beyond float32 (2**147)
        with np.errstate(over="ignore"):
            X = np.multiply(X, scale, dtype=np.float64).astype(np.float32)
        if not np.isfinite(X).all():
            raise ValueError(
                f"{name} (scaled as the indexed data) contains values beyond the float32 "
                f"range (|x| > {FLOAT32_MAX:.3g}); skfindkit indexes store and search "
                "float32. Rescale the data."
            )
    return X


def power_of_two_scale(X, metric="euclidean"):
    """Factor (a power of two) that brings euclidean data's magnitude near 1, losslessly.

    Squared distances of tiny (~1e-30) or huge (~1e20) values underflow or
    overflow float32: the exact search stays exact (its error bounds see it)
    but must then compute every distance in float64. Multiplying every row by
    one power of two keeps the order and ratios of euclidean distances and
    changes no bit of the float32 values -- as long as no value leaves
    float32's normal range, which is checked: the factor maps the largest
    magnitude into ``[1, 2)``, is raised as far as needed to keep the
    smallest non-zero magnitude normal, and is 1.0 when no factor keeps both
    (or the data are already within ``2**±40``).

    Cosine rows are normalized and inner products do not scale back without
    cancellation (``1 - <x, y>`` of tiny products is 1 in float64): both are
    never rescaled (1.0).
    """
    if metric != "euclidean" or not X.size:
        return 1.0
    A = np.abs(np.asarray(X, dtype=np.float64).astype(np.float32))
    max_abs = float(A.max())
    if max_abs == 0.0 or 2.0**-_SAFE_EXPONENT <= max_abs <= 2.0**_SAFE_EXPONENT:
        return 1.0
    exponent = -int(np.floor(np.log2(max_abs)))
    smallest = float(A[A > 0].min())
    floor = int(np.ceil(np.log2(float(np.finfo(np.float32).tiny) / smallest)))  # stay normal
    exponent = max(exponent, floor)
    if max_abs * 2.0**exponent > FLOAT32_MAX / 2:
        return 1.0
    return float(2.0**exponent)


def unscale(dist, scale, metric):
    """Distances between rows scaled by ``scale`` -> distances between the originals."""
    if scale == 1.0 or metric == "cosine":
        return dist
    if metric == "euclidean":
        return dist / scale
    return 1.0 - (1.0 - dist) / (scale * scale)  # 1 - <sx, sy> -> 1 - <x, y>
