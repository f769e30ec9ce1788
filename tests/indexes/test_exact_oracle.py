"""A differential oracle for every exact path: data that breaks floating point.

Each case is generated (hypothesis, seeded) to defeat float32 arithmetic --
far outliers, clusters far apart, near-duplicates, mixed per-feature scales,
large common offsets, integer and binary data (many exact ties), constant
columns, high dimension, float16/float64/int inputs -- and every exact path
is compared with a float64 brute force written here from the definitions.

The reference works on the values the indexes store: the input rounded to
float32 (exact for float16, float32 and integers below 2**24), L2-normalized
in float32 for cosine. The same neighbour sets are required (differences only
among distances tied in the reference, where the lower id must win for exact
ties) and distances within 1e-9 relative.

The fast profile runs in CI; ``-m slow`` runs a larger one.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skfindkit import ExactIndex, ShardedIndex
from skfindkit.indexes._brute import brute_force_kneighbors, rerank_exact

from .._optional import has

METRICS = ("euclidean", "cosine", "inner_product")
FAST = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
LARGE = settings(max_examples=100, deadline=None, derandomize=True,
                 suppress_health_check=list(HealthCheck))


# ----------------------------------------------------------------- reference
def stored(X, metric):
    """The rows as an index stores them (float32; unit rows for cosine)."""
    X32 = np.asarray(X, dtype=np.float64).astype(np.float32)
    if metric != "cosine":
        return X32
    # each row divided by its float64 norm, rounded once to float32
    norms = np.sqrt((X32.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
    return np.where(norms > 0, X32 / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)


def reference_distances(X, Q, metric):
    """Every distance, float64, from the definitions (no shortcuts)."""
    Xs, Qs = stored(X, metric).astype(np.float64), stored(Q, metric).astype(np.float64)
    if metric == "inner_product":
        return 1.0 - np.stack([(Xs * q).sum(axis=1) for q in Qs])
    D = np.empty((Qs.shape[0], Xs.shape[0]))
    for i, q in enumerate(Qs):  # differences: no cancellation
        D[i] = ((Xs - q) ** 2).sum(axis=1)
    if metric == "euclidean":
        return np.sqrt(D)
    D *= 0.5
    D[:, ~Xs.any(axis=1)] = 1.0
    D[~Qs.any(axis=1)] = 1.0
    return D


def identical_rows(X, Q, metric):
    """``(n_queries, n_samples)``: where a query equals an indexed row (as stored)."""
    Xs, Qs = stored(X, metric), stored(Q, metric)
    return (Qs[:, None, :] == Xs[None]).all(axis=2)


def assert_exact(dist, ind, R, k, context="", lower_id_ties=True, own=None):
    """``(dist, ind)`` are the exact k nearest under the reference ``R``.

    ``lower_id_ties=False`` for searches whose candidates come from another
    library, which picks any of several items tied at the k-th distance.
    ``own`` (from :func:`identical_rows`): a query's own item (a row equal to
    it) may take a tied place before a lower id, as documented.
    """
    assert ind.shape == (R.shape[0], k), context
    for row in _rows_to_explain(dist, ind, R, k, lower_id_ties, own):
        d, i, r = dist[row], ind[row], R[row]
        where = f"{context} row {row}"
        assert len(set(i.tolist())) == k, f"{where}: repeated ids {i}"
        truth = np.sort(r, kind="stable")[:k]
        tol = 1e-9 * np.abs(truth).max() + 1e-300
        np.testing.assert_allclose(r[i], d, rtol=1e-9, atol=tol,
                                   err_msg=f"{where}: distances of the returned ids")
        np.testing.assert_allclose(np.sort(r[i]), truth, rtol=1e-9, atol=tol,
                                   err_msg=f"{where}: not the k nearest")
        kth = truth[-1]
        # exact ties at the k-th distance go to the lower ids
        left_out = np.setdiff1d(np.flatnonzero(r == kth), i)
        kept_tied = i[r[i] == kth]
        if own is not None:
            kept_tied = kept_tied[~own[row, kept_tied]]
        if lower_id_ties and left_out.size and kept_tied.size:
            assert left_out.min() > kept_tied.max(), f"{where}: a tie kept a higher id"


def _close(actual, desired, tol):
    # numpy.isclose's rule (|a - d| <= atol + rtol |d|), rtol 1e-9, per-row atol
    return np.abs(actual - desired) <= tol[:, None] + 1e-9 * np.abs(desired)


def _rows_to_explain(dist, ind, R, k, lower_id_ties, own):
    """The rows that :func:`assert_exact` checks one by one, with their messages.

    Every check of the loop made at once on all rows; a row that fails one, or
    holds a non-finite value (``assert_allclose``'s own rules for those), goes
    to the loop, which fails on it.
    """
    dist, ind = np.asarray(dist, dtype=np.float64), np.asarray(ind)
    if ind.size == 0 or ind.min() < 0 or ind.max() >= R.shape[1]:
        return range(R.shape[0])  # the loop says which id is out of range
    Ri = np.take_along_axis(R, ind, axis=1)
    truth = np.sort(R, axis=1, kind="stable")[:, :k]
    explain = ~(np.isfinite(dist).all(axis=1) & np.isfinite(Ri).all(axis=1)
                & np.isfinite(truth).all(axis=1))
    sorted_ind = np.sort(ind, axis=1)
    explain |= (sorted_ind[:, 1:] == sorted_ind[:, :-1]).any(axis=1)
    tol = 1e-9 * np.abs(truth).max(axis=1) + 1e-300
    with np.errstate(invalid="ignore", over="ignore"):
        explain |= ~_close(Ri, dist, tol).all(axis=1)
        explain |= ~_close(np.sort(Ri, axis=1), truth, tol).all(axis=1)
    if lower_id_ties:
        kth = truth[:, -1:]
        returned = np.zeros(R.shape, dtype=bool)
        np.put_along_axis(returned, ind, True, axis=1)
        left_out = (R == kth) & ~returned
        kept = Ri == kth
        if own is not None:
            kept &= ~np.take_along_axis(own, ind, axis=1)
        n = R.shape[1]
        lowest_left_out = np.where(left_out, np.arange(n), n).min(axis=1)
        highest_kept = np.where(kept, ind, -1).max(axis=1)
        explain |= left_out.any(axis=1) & kept.any(axis=1) & (lowest_left_out <= highest_kept)
    return np.flatnonzero(explain)


# ------------------------------------------------------------------- the data
@st.composite
def hard_data(draw, max_dim=24):
    """``(X, Q, k)``: a collection and queries made to defeat float32."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from([
        "outlier", "far_clusters", "near_duplicates", "mixed_scales", "offset",
        "integers", "binary", "constant_columns", "plain",
    ]))
    n = draw(st.integers(30, 300))
    d = draw(st.integers(1, max_dim))
    X = rng.random((n, d))
    if kind == "outlier":
        for _ in range(draw(st.integers(1, 3))):
            X[rng.integers(n), rng.integers(d)] = rng.choice([-1, 1]) * 10.0 ** draw(
                st.floats(3, 8))
    elif kind == "far_clusters":
        labels = rng.integers(0, draw(st.integers(2, 3)), n)
        X += 10.0 ** draw(st.floats(3, 7)) * labels[:, None] * rng.standard_normal(d)
    elif kind == "near_duplicates":
        copies = draw(st.integers(2, 30))
        base = rng.random((max(1, n // copies), d))
        jitter = 10.0 ** -draw(st.floats(3, 7))
        X = np.repeat(base, copies, axis=0)
        X = X * (1 + jitter * rng.standard_normal(X.shape))
    elif kind == "mixed_scales":
        X *= 10.0 ** rng.uniform(-6, 6, d)
    elif kind == "offset":
        X += 10.0 ** draw(st.floats(3, 6))
    elif kind == "integers":
        X = rng.integers(0, draw(st.integers(2, 6)), (n, d)).astype(np.float64)
    elif kind == "binary":
        X = (rng.random((n, d)) < 0.3).astype(np.float64)
    elif kind == "constant_columns":
        X[:, rng.random(d) < 0.5] = rng.standard_normal()
    n_q = draw(st.integers(1, 20))
    Q = X[rng.integers(0, X.shape[0], n_q)].copy()
    # queries: copies of items (ties with themselves), jittered items, far ones
    jitter = draw(st.sampled_from([0.0, 1e-6, 1e-3, 1e-1]))
    Q *= 1 + jitter * rng.standard_normal(Q.shape)
    if draw(st.booleans()):
        Q[0] = rng.choice([-1, 1]) * 10.0 ** draw(st.floats(0, 12)) * rng.random(d)
    dtype = draw(st.sampled_from(["float64", "float32", "float16", "int"]))
    if dtype == "float16":
        X, Q = np.clip(X, -6e4, 6e4).astype(np.float16), np.clip(Q, -6e4, 6e4).astype(np.float16)
    elif dtype == "int":
        X, Q = np.clip(np.round(X), -2**20, 2**20).astype(np.int64), \
            np.clip(np.round(Q), -2**20, 2**20).astype(np.int64)
    else:
        X, Q = X.astype(dtype), Q.astype(dtype)
    k = draw(st.integers(1, min(12, X.shape[0])))
    return X, Q, k


def _oracle(data, metric, makes):
    """Each exact index made by ``makes`` against one float64 reference of ``data``."""
    X, Q, k = data
    R, own = reference_distances(X, Q, metric), identical_rows(X, Q, metric)
    R_self = None
    if X.shape[0] > k and metric != "inner_product":  # X=None: itself excluded
        R_self = reference_distances(X, X, metric)
        np.fill_diagonal(R_self, np.inf)
    for make in makes:
        index = make(metric)
        context = f"{type(index).__name__}({metric})"
        dist, ind = index.fit(X).kneighbors(Q, n_neighbors=k)
        assert_exact(dist, ind, R, k, context, own=own)
        if R_self is not None:
            dist, ind = index.kneighbors(n_neighbors=k)
            assert_exact(dist, ind, R_self, k, f"{context} X=None")


def _exact_index(metric):
    return ExactIndex(metric=metric)


def _sharded(metric):
    return ShardedIndex(ExactIndex(metric=metric), n_shards=3)


def _faiss_flat(metric):
    if not has("faiss"):
        pytest.skip("faiss-cpu is not installed (extra: faiss)")
    from skfindkit import FaissIndex

    return FaissIndex(factory="Flat", metric=metric)


EXACT = [_exact_index, _sharded, _faiss_flat]
EXACT_IDS = ["exact", "sharded", "faiss-flat"]


def _available_exact():
    # every exact path, on the same examples (faiss's where it is installed)
    return [_exact_index, _sharded] + ([_faiss_flat] if has("faiss") else [])


@pytest.mark.parametrize("metric", METRICS)
@FAST
@given(data=hard_data())
def test_exact_indexes_match_the_float64_reference(data, metric):
    _oracle(data, metric, _available_exact())


@pytest.mark.slow
@pytest.mark.parametrize("metric", METRICS)
@LARGE
@given(data=hard_data(max_dim=64))
def test_exact_indexes_match_the_float64_reference_large(data, metric):
    _oracle(data, metric, _available_exact())


@pytest.mark.parametrize("metric", METRICS)
@FAST
@given(data=hard_data(), extra=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_refine_of_exact_candidates_is_exact(data, metric, extra, seed):
    """``rerank_exact`` given a shuffled superset of the true k nearest."""
    X, Q, k = data
    R = reference_distances(X, Q, metric)
    n = X.shape[0]
    c = min(n, k + extra)
    rng = np.random.default_rng(seed)
    cand = np.argsort(R, axis=1, kind="stable")[:, :c]
    cand = rng.permuted(cand, axis=1)
    dist, ind = rerank_exact(stored(Q, metric), stored(X, metric), cand, k, metric)
    assert_exact(dist, ind, R, k, f"rerank_exact({metric})")


@pytest.mark.skipif(not has("faiss"), reason="faiss-cpu is not installed (extra: faiss)")
@pytest.mark.parametrize("metric", METRICS)
@FAST
@given(data=hard_data(), extra=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_refine_with_a_native_kernel_on_exact_candidates_is_exact(data, metric, extra, seed):
    """An approximate backend's refine (faiss's by-id kernel and its error bound)
    given a shuffled superset of the true k nearest."""
    from skfindkit import FaissIndex

    X, Q, k = data
    R = reference_distances(X, Q, metric)
    index = FaissIndex(factory="Flat", metric=metric, refine=2).fit(X)
    c = min(X.shape[0], k + extra)
    cand = np.random.default_rng(seed).permuted(np.argsort(R, axis=1, kind="stable")[:, :c], axis=1)
    scores, error = index._candidate_scorer() or (None, None)
    dist, ind = rerank_exact(stored(Q, metric), stored(X, metric), cand, k, metric,
                             scores=scores, scores_error=error, zero_rows=index._zero_rows)
    assert_exact(dist, ind, R, k, f"faiss kernel rerank({metric})")


@pytest.mark.skipif(not has("hnswlib"), reason="hnswlib is not installed (extra: hnswlib)")
@pytest.mark.parametrize("metric", METRICS)
@FAST
@given(data=hard_data())
def test_exact_kneighbors_of_an_approximate_index(data, metric):
    from skfindkit import HNSWIndex

    X, Q, k = data
    R = reference_distances(X, Q, metric)
    dist, ind = HNSWIndex(metric=metric, random_state=0).fit(X).exact_kneighbors(
        Q, n_neighbors=k)
    assert_exact(dist, ind, R, k, f"HNSWIndex.exact_kneighbors({metric})",
                 own=identical_rows(X, Q, metric))


# ------------------------------------------------- the cases the issue named
def _reference_knn(X, Q, k):
    R = reference_distances(X, Q, "euclidean")
    return R, np.argsort(R, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("make", EXACT, ids=EXACT_IDS)
def test_far_outlier_does_not_hide_the_bulk(make):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.random((200, 8)), np.r_[1e6, np.zeros(7)]])
    Q = rng.random((20, 8))
    R = reference_distances(X, Q, "euclidean")
    dist, ind = make("euclidean").fit(X).kneighbors(Q)
    assert_exact(dist, ind, R, 5)


def test_two_clusters_far_apart():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.random((150, 8)), 1e6 + rng.random((150, 8))])
    Q = np.vstack([rng.random((10, 8)), 1e6 + rng.random((10, 8))])
    R = reference_distances(X, Q, "euclidean")
    dist, ind = ExactIndex().fit(X).kneighbors(Q)
    assert_exact(dist, ind, R, 5)


@pytest.mark.parametrize("jitter", [1e-4, 1e-5])
def test_near_duplicates_within_float32_rounding(jitter):
    # 40 near-copies of each point: the 10 nearest must be told apart within them
    rng = np.random.default_rng(2)
    base = rng.random((50, 16))
    X = np.repeat(base, 40, axis=0) * (1 + jitter * rng.standard_normal((2000, 16)))
    Q = base[:20] * (1 + jitter * rng.standard_normal((20, 16)))
    R = reference_distances(X, Q, "euclidean")
    dist, ind = ExactIndex(n_neighbors=10).fit(X).kneighbors(Q)
    assert_exact(dist, ind, R, 10)


def test_high_dimension_near_duplicates():
    rng = np.random.default_rng(3)
    base = rng.random((20, 2048)).astype(np.float32)
    X = np.repeat(base, 15, axis=0) * (1 + 1e-5 * rng.standard_normal((300, 2048)))
    Q = X[::37] * (1 + 1e-6 * rng.standard_normal((9, 2048)))
    for metric in METRICS:
        R = reference_distances(X, Q, metric)
        dist, ind = ExactIndex(n_neighbors=7, metric=metric).fit(X).kneighbors(Q)
        assert_exact(dist, ind, R, 7, metric)


def test_brute_force_function_on_a_far_query():
    # a query at 1e20 against unit data: every float32 score is swamped
    rng = np.random.default_rng(4)
    X = rng.random((500, 8)).astype(np.float32)
    Q = np.vstack([X[:3], np.full((1, 8), 1e20, dtype=np.float32)])
    for metric in METRICS:
        R = reference_distances(X, Q, metric)
        data, queries = stored(X, metric), stored(Q, metric)
        dist, ind = brute_force_kneighbors(data, queries, 5, metric)
        assert_exact(dist, ind, R, 5, metric)


@pytest.mark.skipif(not has("milvus_lite"), reason="milvus-lite is not installed (extra: milvus)")
@pytest.mark.parametrize("metric", METRICS)
def test_milvus_flat_scan_is_proven_or_searched_exactly(metric):
    from skfindkit import MilvusIndex

    rng = np.random.default_rng(5)
    X = np.vstack([rng.random((300, 8)), np.r_[1e6, np.zeros(7)]])
    base = rng.random((10, 8))
    X = np.vstack([X, np.repeat(base, 20, axis=0) * (1 + 1e-5 * rng.standard_normal((200, 8)))])
    Q = np.vstack([rng.random((5, 8)), base[:5], np.full((1, 8), 1e12)])
    R = reference_distances(X, Q, metric)
    dist, ind = MilvusIndex(n_neighbors=6, metric=metric, index_type="FLAT").fit(X).kneighbors(Q)
    assert_exact(dist, ind, R, 6, f"MilvusIndex(FLAT)({metric})", lower_id_ties=False)


# ------------------------------------- found by a tester reading only the docs
@pytest.mark.parametrize("make", EXACT, ids=EXACT_IDS)
@pytest.mark.parametrize("huge", [1e12, 1e15])
def test_inner_product_with_one_huge_norm(make, huge):
    # the other items' products vanished next to 1 after a power-of-two rescaling
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    X[7] = (huge * rng.normal(size=8)).astype(np.float32)
    Q = X[:3] + np.float32(1e-3)
    R = reference_distances(X, Q, "inner_product")
    dist, ind = make("inner_product").fit(X).kneighbors(Q)
    assert_exact(dist, ind, R, 5)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_tiny_rows_beside_a_huge_one_keep_their_values(metric):
    # rescaling by 2**-128 flushed the 1e-30 rows to zero
    X = np.array([[3e38, 0.0], [1e-30, 0.0], [2e-30, 0.0], [5e-30, 0.0], [0.0, 4e-30]])
    Q = np.array([[4.9e-30, 0.0], [1.0, 0.0]])
    R = reference_distances(X, Q, metric)
    dist, ind = ExactIndex(n_neighbors=4, metric=metric).fit(X).kneighbors(Q)
    assert_exact(dist, ind, R, 4, metric)


@pytest.mark.parametrize("make", EXACT, ids=EXACT_IDS)
def test_cosine_of_a_row_whose_norm_exceeds_float32(make):
    # values within float32, norm beyond it: the row was normalized to zero
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0], [3e38, 3e38]], dtype=np.float32)
    Q = np.array([[3e38, 3e38], [1.0, 0.5]], dtype=np.float32)
    R = reference_distances(X, Q, "cosine")
    index = make("cosine").fit(X)
    dist, ind = index.kneighbors(Q, n_neighbors=3)
    assert_exact(dist, ind, R, 3, own=identical_rows(X, Q, "cosine"))
    R_self = reference_distances(X, X, "cosine")
    np.fill_diagonal(R_self, np.inf)
    dist, ind = index.kneighbors(n_neighbors=2)
    assert_exact(dist, ind, R_self, 2)


@pytest.mark.parametrize("make", EXACT, ids=EXACT_IDS)
def test_queries_near_float32_max_tie_to_the_lowest_ids(make):
    # squared norms beyond float32: scores overflow, the bound must not trust them
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    Q = np.clip(rng.normal(size=(20, 8)) * 1e38, -3.3e38, 3.3e38).astype(np.float32)
    R = reference_distances(X, Q, "euclidean")
    dist, ind = make("euclidean").fit(X).kneighbors(Q)
    assert_exact(dist, ind, R, 5)
    X2 = np.array([[0, 0], [1e30, 0], [-1e30, 0], [2e30, 0], [0, 1e30]], dtype=np.float32)
    Q2 = np.array([[3e38, 3e38]], dtype=np.float32)
    dist, ind = make("euclidean").fit(X2).kneighbors(Q2, n_neighbors=4)
    assert_exact(dist, ind, reference_distances(X2, Q2, "euclidean"), 4)


@pytest.mark.parametrize("make", EXACT, ids=EXACT_IDS)
@pytest.mark.parametrize("scale", [1e19, 1e25])
def test_inner_products_beyond_float32(make, scale):
    rng = np.random.default_rng(2)
    X = (rng.normal(size=(300, 64)) * scale).astype(np.float32)
    Q = (rng.normal(size=(10, 64)) * scale).astype(np.float32)
    R = reference_distances(X, Q, "inner_product")
    dist, ind = make("inner_product").fit(X).kneighbors(Q)
    assert_exact(dist, ind, R, 5)


@pytest.mark.skipif(not has("hnswlib"), reason="hnswlib is not installed (extra: hnswlib)")
def test_exact_kneighbors_of_an_approximate_index_breaks_ties_by_id():
    # a query equal to an indexed item must not displace a lower id at the same distance
    from skfindkit import HNSWIndex

    rng = np.random.default_rng(5)
    X, Q = rng.normal(size=(257, 12)) > 0.3, rng.normal(size=(13, 12)) > 0.3
    R = reference_distances(X, Q, "inner_product")
    dist, ind = HNSWIndex(n_neighbors=5, metric="inner_product", random_state=0).fit(
        X).exact_kneighbors(Q)
    assert_exact(dist, ind, R, 5)


def test_float64_subnormal_input_is_stored_as_its_float32_rounding():
    X = np.array([[1.2e-45], [2.6e-45], [4.9e-45]])
    Q = np.array([[2.0e-45]])
    R = reference_distances(X, Q, "euclidean")
    for data, queries in ((X, Q), (X.astype(np.float32), Q.astype(np.float32))):
        dist, ind = ExactIndex(n_neighbors=3).fit(data).kneighbors(queries)
        assert_exact(dist, ind, R, 3)


def test_inner_products_below_float64_resolution_tie_by_id():
    # every 1 - <q, y> is exactly 1.0 in float64: a tie, the lowest id wins
    X = np.array([[1e-20], [2e-20], [3e-20]])
    dist, ind = ExactIndex(n_neighbors=1, metric="inner_product").fit(X).kneighbors([[1e-20]])
    assert ind.tolist() == [[0]] and dist.tolist() == [[1.0]]


@pytest.mark.skipif(not has("faiss"), reason="faiss-cpu is not installed (extra: faiss)")
def test_faiss_product_quantizer_reduced_for_small_data_still_searches():
    from skfindkit import FaissIndex

    X = np.random.default_rng(7).normal(size=(200, 8)).astype(np.float32)
    with pytest.warns(UserWarning, match="needs more training points"):
        index = FaissIndex(n_neighbors=5, factory="PQ4", refine=40, random_state=0).fit(X)
    dist, ind = index.kneighbors(X[:2])
    assert_exact(dist, ind, reference_distances(X, X[:2], "euclidean"), 5)
    # a factory faiss cannot search: a clear error naming it
    with pytest.raises(ValueError, match="factory='PQ4x2'"):
        FaissIndex(factory="PQ4x2", random_state=0).fit(X).kneighbors(X[:2])
