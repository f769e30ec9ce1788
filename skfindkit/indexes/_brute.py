"""Exact (brute-force) k nearest neighbours: arrays in, arrays out.

For a block of queries the scores against every item come from one float32
matrix product (for euclidean, ``<q - c, y - c> - |y - c|^2 / 2`` through an
augmented column, centred so that rows far from the origin keep their
distances). The top ``2k`` of each row are found without sorting the whole
row: the row is cut into ``g`` interleaved groups, the maximum of each group
is taken (one vectorized pass), and only the ``k`` groups with the largest
maxima can hold the ``k`` best items; the ``k`` best groups are found the same
way, recursively.

**What makes it exact.** float32 scores are only a filter, and nothing is
dropped on trust: each score carries a proven error bound (derivation in
:func:`_distance_bounds`; in short, a float32 inner product of length ``n``
errs by at most ``gamma(n) |x| |y|`` whatever the summation order, see
:mod:`skfindkit.indexes._fp_bounds`), so each candidate has a lower and an
upper bound on its true distance. A query is answered from its candidates
only when every item left out provably lies farther than the upper bound of
the candidates' ``k``-th; the candidates that can still be among the ``k``
then get exact distances (float64, from differences of the stored float32
values: no cancellation, 0 between identical rows) and are sorted by
distance, then id. A query the bound cannot settle (near-duplicates within
float32's resolution, a query at 1e20) takes every item whose score is above
the threshold the bound gives, and when those are too many, every item
(exact distances in chunks) -- slower, never wrong.

Bounds grow with the norms of the centred rows. Collections made of groups
far apart from each other (a far outlier, clusters 1e6 apart) would make
every bound too loose, so the rows are cut into such groups once (repeated
2-means splits kept only where the two halves are far apart relative to their
radius, :func:`~skfindkit.indexes._brute_matrix._partition`), each group
centred on its own mean (:mod:`skfindkit.indexes._brute_matrix`).

"Exact" means: the ``k`` nearest of the stored rows (the input rounded to
float32, unit rows for cosine) by their exact distances, ties broken by the
lower id, distances within a float64 sum's rounding (about ``d * 2**-53``
relative). ``tests/indexes/test_exact_oracle.py`` checks this against a float64
brute force on generated data made to defeat float32.

Nothing here knows about estimators: :class:`~skfindkit.ExactIndex` searches
with it, and every index uses it for its exact path
(:meth:`~skfindkit.indexes.BaseIndex.exact_kneighbors`, completion of rows a
backend left short, refine's re-ranking, the proof of flat scans).
"""

import numpy as np
from sklearn import get_config
from threadpoolctl import ThreadpoolController

from ._brute_matrix import BruteForceMatrix, _row_norms
from ._distances import FLOAT32_MAX, exact_distances, gather_rows
from ._fp_bounds import TINY, U32, U64, gamma

__all__ = ["brute_force_kneighbors", "rerank_exact", "verify_flat_scan"]

_GROUP = 32  # items per group in the top-k prefilter
_controller = None


def _blas_limits(n_threads):
    """Context manager limiting BLAS threads (restores the previous setting)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=n_threads, user_api="blas")


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


def _budget(k):
    """Most candidates a row takes to exact distances; a row whose bound leaves
    more is scored again in float64 (then, if still more, every item)."""
    return max(1024, 64 * k)


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
    step = batch_size or _default_batch_size(queries.shape[0], n)
    dist = np.empty((queries.shape[0], k))
    ind = np.empty((queries.shape[0], k), dtype=np.intp)
    if queries.shape[0] == 0:
        return dist, ind
    # one score buffer reused by every block: fresh arrays of this size cost
    # page faults that slow the matrix product by up to 2x
    buffer = np.empty((min(step, queries.shape[0]), n), dtype=np.float32)
    # float32 products of far queries may overflow: their bounds are then
    # infinite and those rows are answered exactly, so no warning is due
    with _blas_limits(n_threads), np.errstate(over="ignore", invalid="ignore"):
        prep = matrix.prepared
        for start in range(0, queries.shape[0], step):
            Qb = queries[start:start + step]
            S = buffer[: Qb.shape[0]]
            qn = matrix.scores(Qb, S)
            dist[start:start + step], ind[start:start + step] = _proven_top_k(
                S, Qb, qn, prep, data, k, metric)
    return dist, ind


def _proven_top_k(S, Q, qn, prep, data, k, metric):
    """The exact k nearest of each row, from float32 scores ``S`` and their bounds.

    The best ``2k`` scores of a row are candidates; the row is answered from
    them only if the bound proves that no other item can be nearer than the
    candidates' ``k``-th (see :func:`_distance_bounds`), and only the
    candidates whose lower bound is within that ``k``-th get exact
    distances. A row where it cannot takes every item whose score is above
    the threshold the bound gives (near-duplicates: the whole cluster), and
    if that is more than ``_budget(k)``, float64 scores under the same proof
    (:func:`_float64_top_k`), and as a last resort every item.
    """
    n, d = S.shape[1], Q.shape[1]
    dist = np.empty((Q.shape[0], k))
    ind = np.empty((Q.shape[0], k), dtype=np.intp)
    rows = np.arange(Q.shape[0])
    # rows whose float32 scores may have overflowed (a query near float32's
    # largest value, products of huge norms) have no bound: every item
    unbounded = _may_overflow(metric, qn, prep)
    if unbounded.any():
        dist[unbounded], ind[unbounded] = _float64_top_k(Q[unbounded], data, k, metric, prep)
        if unbounded.all():
            return dist, ind
        rows = rows[~unbounded]
    pos = _top_candidates(S if rows.size == S.shape[0] else S[rows], min(n, 2 * k))
    for _ in range(4):
        Sr = S if rows.size == S.shape[0] else S[rows]
        qr = qn[rows]
        t = np.take_along_axis(Sr, pos, axis=1).astype(np.float64)
        grp = None if prep.group_of is None else prep.group_of[pos]
        Qg = qr[:, :1] if grp is None else np.take_along_axis(qr, grp, axis=1)
        lo, hi = _distance_bounds(metric, t, Qg, prep.norms[pos], d, prep.n_groups > 1)
        kth_hi = np.partition(hi, k - 1, axis=1)[:, k - 1]
        ok = (pos.shape[1] == n) | (
            _excluded_lower_bound(metric, t.min(axis=1), qr, Sr, prep, d, grp) > kth_hi)
        if ok.any():
            dist[rows[ok]], ind[rows[ok]] = _rerank(
                Q[rows[ok]], data, prep.ids(pos[ok]), lo[ok], kth_hi[ok], k, metric)
        if ok.all():
            return dist, ind
        if ok.any():
            rows, Sr, qr, kth_hi = rows[~ok], Sr[~ok], qr[~ok], kth_hi[~ok]
        # every item the bound cannot rule out: scores above a per-group threshold
        ranked, thr = _above_threshold(metric, Sr, kth_hi, qr, prep, d)
        need = int(np.count_nonzero(ranked >= thr[:, None], axis=1).max()) + k
        if need > _budget(k) or need >= n:
            break  # float32 cannot tell enough of them apart: float64 scores
        pos = _top_candidates(ranked, need)
    dist[rows], ind[rows] = _float64_top_k(Q[rows], data, k, metric, prep)
    return dist, ind


def _float64_top_k(Q, data, k, metric, prep):
    """The float32 bound could not settle these rows: the same proof in float64.

    Scores are float64 products (per group, rows centred on the group's
    centre for euclidean), bounded as in float32 with float64's unit
    roundoff (``2**-53``: a bound 2**29 times tighter); the candidates the
    bound cannot rule out get exact distances. Rows it still cannot settle
    (a query so far from the data that float64 cannot tell the items apart
    either) are answered from every item's exact distance.
    """
    n, d = data.shape
    dist = np.empty((Q.shape[0], k))
    ind = np.empty((Q.shape[0], k), dtype=np.intp)
    step = max(1, min(Q.shape[0], 2**22 // max(1, n)))  # 32 MiB of float64 scores
    todo = []
    for start in range(0, Q.shape[0], step):
        Qb = Q[start:start + step].astype(np.float64)
        lo = np.empty((Qb.shape[0], n))
        hi = np.empty((Qb.shape[0], n))
        for g in range(prep.n_groups):
            a, b = prep.starts[g], prep.starts[g + 1]
            rows = data[a:b] if prep.perm is None else data[prep.perm[a:b]]
            Y = rows.astype(np.float64)
            if metric != "inner_product":  # cosine: |q - y|^2 of the stored unit rows
                c = 0.0 if prep.centres is None else prep.centres[g].astype(np.float64)
                Qc, Y = Qb - c, Y - c
                qq = np.einsum("ij,ij->i", Qc, Qc)
                yy = np.einsum("ij,ij->i", Y, Y)
                D = qq[:, None] + yy[None, :] - 2.0 * (Qc @ Y.T)
                eps = gamma(d + 3, U64) * (np.sqrt(qq)[:, None] + np.sqrt(yy)[None, :]) ** 2
                eps += 1e-300
                # centring rounded q - c and y - c: |q - y| moves by at most u (|q'| + |y'|)
                eta = 2 * U64 * (np.sqrt(qq)[:, None] + np.sqrt(yy)[None, :])
                # in the metric's units, widened by their own rounding: items
                # whose reported distances may round equal stay candidates
                lo_d = np.maximum(np.sqrt(np.maximum(D - eps, 0.0)) - eta, 0.0)
                hi_d = np.sqrt(np.maximum(D + eps, 0.0)) + eta
                if metric == "cosine":
                    lo_d, hi_d = 0.5 * lo_d**2, 0.5 * hi_d**2
                    zero = (qq == 0)[:, None] | (yy == 0)[None, :]  # at distance 1
                    lo_d[zero] = hi_d[zero] = 1.0
                lo[:, a:b], hi[:, a:b] = lo_d * (1 - 8 * U64), hi_d * (1 + 8 * U64)
            else:
                t = Qb @ Y.T
                eps = gamma(d, U64) * np.outer(np.linalg.norm(Qb, axis=1),
                                               np.linalg.norm(Y, axis=1)) + 1e-300
                # 1 - <q, y>, rounded as the reported distance is
                lo[:, a:b] = (1.0 - (t + eps)) - 4 * U64 * np.abs(1.0 - t)
                hi[:, a:b] = (1.0 - (t - eps)) + 4 * U64 * np.abs(1.0 - t)
        ok = np.isfinite(lo).all(axis=1) & np.isfinite(hi).all(axis=1)
        kth_hi = np.partition(hi, k - 1, axis=1)[:, k - 1]
        keep = lo <= kth_hi[:, None]
        ok &= keep.sum(axis=1) <= _budget(k)
        rows_ok = np.flatnonzero(ok)
        if rows_ok.size:
            need = max(k, int(keep[rows_ok].sum(axis=1).max()))
            pos = np.argpartition(lo[rows_ok], need - 1, axis=1)[:, :need]
            dist[start + rows_ok], ind[start + rows_ok] = _rerank(
                Q[start + rows_ok], data, prep.ids(pos),
                np.take_along_axis(lo[rows_ok], pos, axis=1), kth_hi[rows_ok], k, metric)
        todo.extend(start + np.flatnonzero(~ok))
    if todo:
        todo = np.asarray(todo)
        dist[todo], ind[todo] = _exact_over_all(Q[todo], data, k, metric)
    return dist, ind


def _may_overflow(metric, qn, prep):
    """Rows whose float32 scores may exceed float32's range (no bound then)."""
    R = prep.group_max[None, :]
    if metric == "euclidean":
        largest = qn * R + 0.5 * R * R + (0.5 * qn * qn if prep.n_groups > 1 else 0.0)
    else:
        largest = qn * R
    return ~(largest < 0.25 * FLOAT32_MAX).all(axis=1)


def _rerank(Q, data, ids, lo, kth_hi, k, metric):
    """Exact distances of the candidates whose lower bound is within the k-th upper one."""
    need = max(k, int((lo <= kth_hi[:, None]).sum(axis=1).max()))
    if need < ids.shape[1]:
        keep = np.argpartition(lo, need - 1, axis=1)[:, :need]
        ids = np.take_along_axis(ids, keep, axis=1)
    dist = np.empty((Q.shape[0], k))
    ind = np.empty((Q.shape[0], k), dtype=np.intp)
    step = max(1, 2**22 // (need * Q.shape[1]))  # gathered float64 rows: 32 MiB a block
    for start in range(0, Q.shape[0], step):
        block = ids[start:start + step]
        exact = exact_distances(Q[start:start + step], data, block, metric)
        order = np.lexsort((block, exact), axis=1)[:, :k]  # by distance, then id
        dist[start:start + step] = np.take_along_axis(exact, order, axis=1)
        ind[start:start + step] = np.take_along_axis(block, order, axis=1)
    return dist, ind


def _above_threshold(metric, S, kth, qn, prep, d):
    """``(ranked, thr)``: an item may be within ``kth`` (an upper bound of the
    k-th distance) only where ``ranked >= thr[:, None]``.

    The threshold is the smallest score an item of a group needs for its lower
    bound to reach ``kth``; with one group ``ranked`` is ``S`` itself, with
    several it is ``S`` minus each group's threshold."""
    R = prep.group_max[None, :]
    if metric == "euclidean":
        # invert _distance_bounds' lower bound at the group's largest norm
        K = kth[:, None]
        _, eps, eta = _euclidean_terms(qn, R, d, prep.n_groups > 1)
        reach = np.square((K + eta) / (1 - 4 * U64)) + 2 * eps
        base = 0.0 if prep.n_groups > 1 else qn * qn
        thr = 0.5 * (base - reach)
    else:
        eps = gamma(d) * qn * R + d * TINY
        thr = 1.0 - eps - kth[:, None]
        if metric == "cosine":
            smallest = prep.norms[prep.norms > 0].min(initial=1.0)
            thr = thr + np.where(qn > 0, 0.5 * (qn * qn - 1.0), 0.0) + 0.5 * (smallest**2 - 1.0)
            if (prep.norms == 0).any():
                thr = np.where(kth[:, None] >= 1.0, -np.inf, thr)
            thr = np.where(qn > 0, thr, -np.inf)
    # float32 thresholds rounded down: never above the float64 ones
    thr = np.nextafter(np.where(np.isnan(thr), -np.inf, thr).astype(np.float32), -np.inf)
    if prep.n_groups == 1:
        return S, thr[:, 0]  # the same order as S: no new matrix
    margin = np.empty_like(S)
    for g, (a, b) in enumerate(zip(prep.starts[:-1], prep.starts[1:])):
        np.subtract(S[:, a:b], thr[:, g, None], out=margin[:, a:b])
    return margin, np.zeros(S.shape[0], dtype=np.float32)


def _distance_bounds(metric, t, Q, r, d, grouped):
    """Lower and upper bounds of exact distances from float32 scores.

    ``t`` are float32 scores (as float64), ``Q`` the norms of the
    (centred) queries and ``r`` of the (centred) matrix rows, broadcast
    together. Distances are in comparable units: L2 for euclidean,
    ``|q - y|^2 / 2`` of the stored unit rows for cosine, ``1 - <q, y>`` for
    the inner product.

    Euclidean. A matrix row is ``(y', m)`` with ``y' = fl(y - c)`` and ``m =
    fl(-|y'|^2 / 2)``, a query ``(q', 1)``, so ``t = fl(<q', y'> + m)``
    errs by at most ``gamma(d + 1) (|q'| |y'| + |m|)`` plus ``u |y'|^2 / 2``
    for rounding ``m`` (``u = 2**-24``). With one group,
    ``|q' - y'|^2 = |q'|^2 - 2 <q', y'> + |y'|^2``; with several, the
    query also carries ``h = fl(-|q'|^2 / 2)`` against a column of ones, so
    ``t`` sums ``d + 2`` terms and ``|q' - y'|^2 = -2 <(q', 1, h), (y', m,
    1)>`` up to the rounding of ``h``. The centred
    rows themselves are rounded: ``|y' - (y - c)| <= u / (1 - u) |y'|``, the
    same for ``q'``, so ``|q - y|`` lies within ``u / (1 - u) (|q'| + |y'|)``
    of ``|q' - y'|``.

    Inner product and cosine. ``t = fl(<q, y>)`` errs by at most
    ``gamma(d) |q| |y|``; for cosine the exact distance of stored (almost
    unit) rows is ``|q - y|^2 / 2 = 1 - <q, y> + (|q|^2 - 1) / 2 +
    (|y|^2 - 1) / 2``, computed exactly from the norms; a zero row is at 1.

    Every term also allows ``TINY`` per operation for subnormal results.
    """
    if metric != "euclidean":
        eps = gamma(d) * Q * r + d * TINY
        base = 1.0 - t
        if metric == "cosine":
            base = base + np.where(Q > 0, 0.5 * (Q * Q - 1.0), 0.0) + np.where(
                r > 0, 0.5 * (r * r - 1.0), 0.0)
            zero = (Q == 0) | (r == 0)
            return np.where(zero, 1.0, base - eps), np.where(zero, 1.0, base + eps)
        return base - eps, base + eps
    D, eps, eta = _euclidean_terms(Q, r, d, grouped)
    D = D - 2.0 * t
    lo = np.sqrt(np.maximum(D - 2 * eps, 0.0)) * (1 - 4 * U64) - eta
    hi = np.sqrt(np.maximum(D + 2 * eps, 0.0)) * (1 + 4 * U64) + eta
    return np.maximum(lo, 0.0), hi


def _euclidean_terms(Q, r, d, grouped):
    """``(a, eps, eta)`` of :func:`_distance_bounds`: squared distance ``a - 2 t``,
    its error ``2 eps`` and the rounding ``eta`` of the centred rows."""
    half_r2 = 0.5 * r * r
    if grouped:  # one more term in the product: fl(-|q'|^2 / 2)
        half_q2 = 0.5 * Q * Q
        a = 0.0
        eps = (gamma(d + 2) * (Q * r + (half_r2 + half_q2) * (1 + U32))
               + U32 * (half_r2 + half_q2) + (d + 3) * TINY)
    else:
        eps = gamma(d + 1) * (Q * r + half_r2 * (1 + U32)) + U32 * half_r2 + (d + 2) * TINY
        a = Q * Q
        eps = eps + gamma(d + 2, U64) * a
    eta = (U32 / (1 - U32)) * (Q + r) * (1 + 8 * U64)
    return a, eps, eta


def _excluded_lower_bound(metric, t_min, qn, S, prep, d, candidate_groups=None):
    """A lower bound of the distance of every item not among a row's candidates.

    Items left out have scores at most the candidates' smallest ``t_min``
    (and at most their group's largest score, with several groups: needed
    only for the groups none of whose items, ``candidate_groups``, is a
    candidate); their norms are at most their group's largest.
    """
    t = np.repeat(t_min[:, None], prep.n_groups, axis=1)
    if prep.n_groups > 1:
        # a group with a candidate in the row has scores >= t_min: only the
        # others need their largest score (usually the small far groups)
        for g, (a, b) in enumerate(zip(prep.starts[:-1], prep.starts[1:])):
            absent = ~(candidate_groups == g).any(axis=1)
            if absent.any():
                best = S[absent, a:b].max(axis=1) if b > a else -np.inf
                t[absent, g] = np.minimum(t[absent, g], best)
    lo, _ = _distance_bounds(metric, t, qn, prep.group_max[None, :], d, prep.n_groups > 1)
    if metric == "cosine":  # rows of any norm below the largest: the smallest dev
        smallest = prep.norms[prep.norms > 0].min(initial=1.0)
        lo_small, _ = _distance_bounds(metric, t, qn, np.array([[smallest]]), d, False)
        lo = np.minimum(lo, lo_small)
        if (prep.norms == 0).any():
            lo = np.minimum(lo, 1.0)
    lo = np.where(np.isnan(lo), -np.inf, lo)  # inf - inf: no bound
    return lo.min(axis=1)


def _exact_over_all(Q, data, k, metric):
    """Exact k nearest of ``Q`` over every row, item chunks merged (ties by id)."""
    n, d = data.shape
    chunk = max(k, (2**21) // max(1, Q.shape[0] * d))
    dist = np.empty((Q.shape[0], 0))
    ind = np.empty((Q.shape[0], 0), dtype=np.intp)
    for start in range(0, n, chunk):
        ids = np.broadcast_to(np.arange(start, min(n, start + chunk)), (Q.shape[0], min(chunk, n - start)))
        dist = np.hstack([dist, exact_distances(Q, data, ids, metric)])
        ind = np.hstack([ind, ids])
        order = np.lexsort((ind, dist), axis=1)[:, :k]
        dist = np.take_along_axis(dist, order, axis=1)
        ind = np.take_along_axis(ind, order, axis=1)
    return dist, ind


def _gathered_bounds(Q, data, cand, metric, scores, scores_error, zero_rows):
    """Bounds (in comparable units) of the exact distances of candidates ``cand``.

    With a native ``scores`` kernel of relative error ``scores_error``
    (minus float32 squared distances from differences), or numpy's: float32
    squared distances from float32 differences (each difference and square
    rounded once, ``d`` terms summed: relative error at most ``gamma(d + 3)``)
    or float32 inner products (:func:`_distance_bounds`). Missing ids
    (``-1``) are at ``inf``.
    """
    d = Q.shape[1]
    if scores is not None and scores_error is not None and metric != "inner_product":
        D, e = -np.asarray(scores(Q, cand), dtype=np.float64), scores_error
    else:
        Y = gather_rows(data, np.maximum(cand, 0))
        if metric == "inner_product":
            t = np.matmul(Y, Q[:, :, None])[:, :, 0].astype(np.float64)
            r = np.sqrt(np.einsum("qcd,qcd->qc", Y, Y, dtype=np.float64))
            lo, hi = _distance_bounds(metric, t, _row_norms(Q)[:, None], r, d, False)
            lo[cand < 0], hi[cand < 0] = np.inf, np.inf
            return lo, hi
        diff = Y - Q[:, None, :]
        D, e = np.einsum("qcd,qcd->qc", diff, diff).astype(np.float64), gamma(d + 3)
    lo, hi = D / (1 + e) - d * TINY, D / (1 - e) + d * TINY
    if metric == "cosine":  # exact distance 1 (2 in squared-L2 units) at a zero row
        zero = ~Q.any(axis=1)[:, None]
        if zero_rows is not None and zero_rows.size:
            zero = zero | np.isin(cand, zero_rows)
        lo, hi = np.where(zero, 2.0, lo), np.where(zero, 2.0, hi)
    lo[cand < 0], hi[cand < 0] = np.inf, np.inf
    return lo, hi


def rerank_exact(queries, data, cand, k, metric, scores=None, scores_error=None,
                 zero_rows=None):
    """The ``k`` nearest of each query's candidates, by exact distance.

    As the brute force, in two steps: float32 scores of every candidate (one
    gather of its row and a batched product, or a backend's kernel), then
    exact float64 distances for the candidates whose error bound leaves them
    a chance to be among the ``k`` nearest (usually about ``k``; see
    :func:`_gathered_bounds`), never a fixed number.

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
        With ``scores``: the relative error bound of the minus squared
        distances it returns; the kernel is used only with one (and not for
        the inner product, whose bound needs the rows' norms).
    zero_rows : ndarray of int, default=None
        Ids of the indexed all-zero rows (cosine: at distance 1 from
        everything).

    Returns
    -------
    dist : ndarray of shape (n_queries, k), float64
        Exact distances, ascending (ties by id); ``inf`` where fewer than
        ``k`` candidates were given.
    ind : ndarray of shape (n_queries, k), intp
        Their ids (``-1`` with the ``inf`` distances).
    """
    n_q, c = cand.shape
    dist = np.empty((n_q, k))
    ind = np.empty((n_q, k), dtype=np.intp)
    # blocks whose gathered candidate rows stay in cache (about 2 MiB)
    step = max(1, (2 * 2**20) // max(1, 4 * c * data.shape[1]))
    for start in range(0, n_q, step):
        cb, Qb = cand[start:start + step], queries[start:start + step]
        if k < c:
            lo, hi = _gathered_bounds(Qb, data, cb, metric, scores, scores_error, zero_rows)
            kth_hi = np.partition(hi, k - 1, axis=1)[:, k - 1]
            mb = max(k, int((lo <= kth_hi[:, None]).sum(axis=1).max()))
            if mb < c:
                keep = np.argpartition(lo, mb - 1, axis=1)[:, :mb]
                cb = np.take_along_axis(cb, keep, axis=1)
        d = exact_distances(Qb, data, cb, metric)
        order = np.lexsort((cb, d), axis=1)[:, :k]
        dist[start:start + step] = np.take_along_axis(d, order, axis=1)
        ind[start:start + step] = np.take_along_axis(cb, order, axis=1)
    return dist, ind


def verify_flat_scan(Q, data, native, cand, k, metric, unit, max_norm):
    """Exact answers from another library's float32 flat scan, where provable.

    A flat scan (faiss ``IndexFlat``, Milvus ``FLAT``) asked for ``kk > k``
    results returns their float32 values ``native`` in ``unit``: squared L2
    (``|q|^2 + |y|^2 - 2 <q, y>`` or differences, errs by at most
    ``gamma(d + 3) (|q| + R)^2`` with ``R`` the largest stored norm) or the
    inner product (errs by at most ``gamma(d) |q| R``). Every item it left out
    scored no better than its ``kk``-th, so its true distance is at least
    that value less the error; the row is proven when that exceeds the exact
    ``k``-th distance of the returned candidates.

    Returns
    -------
    dist, ind : ndarray of shape (n_queries, k)
        Exact distances of the best ``k`` candidates (ties by id).
    proven : ndarray of bool, shape (n_queries,)
        Rows whose answer is proven exact; the others must be searched
        exactly (their ``dist``/``ind`` are not to be used).
    """
    n_q, kk = cand.shape
    d = Q.shape[1]
    native = np.asarray(native, dtype=np.float64)
    valid = (cand >= 0).all(axis=1) & np.isfinite(native).all(axis=1)
    ids = np.maximum(cand, 0)
    exact = exact_distances(Q, data, ids, metric)
    order = np.lexsort((ids, exact), axis=1)[:, :k]
    dist = np.take_along_axis(exact, order, axis=1)
    ind = np.take_along_axis(ids, order, axis=1)
    qn = _row_norms(Q)
    if unit == "dot":
        worst = native.min(axis=1)  # the kk-th best inner product
        eps = gamma(d) * qn * max_norm + d * TINY
        excluded = 1.0 - (worst + eps)
        kth = dist[:, -1]
    else:
        worst = native.max(axis=1)
        eps = gamma(d + 3) * (qn + max_norm) ** 2 + (d + 3) * TINY
        excluded = worst - eps
        kth = dist[:, -1] ** 2 if metric == "euclidean" else 2.0 * dist[:, -1]
    kth = kth * (1 + 8 * d * U64) + TINY  # float64 rounding of the exact k-th
    return dist, ind, valid & (excluded > kth)
